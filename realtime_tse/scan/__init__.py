"""Where the talkers are: the distance scan of a file and the live scanners."""
