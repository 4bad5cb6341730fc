"""Room calibration: sweeps, measured RIRs, the work folder and its figures."""
