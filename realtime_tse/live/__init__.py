"""The live engine: input -> Streamer -> output, its statistics and recordings."""
