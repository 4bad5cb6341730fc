"""The live audio path: device and file streams of each mode, resampling, rings, threads."""
