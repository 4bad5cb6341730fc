"""What a distance scan returns, and the query grids it runs on.

A scan (offline :meth:`realtime_tse.model.TSEModel.scan`, or the live scanners of
:mod:`realtime_tse.scan.live_scan`) measures the normalised iSDR per query distance; :func:`make_result`
turns that level profile into a :class:`ScanResult` through the one detector,
:func:`realtime_tse.models.detection.detect_talkers`: the paper's indicator peaks (``peaks_m``) and the talkers the
product shows (``talkers_m``: peaks standing ``min_contrast_db`` above the profile's median, none
on silence). The window, the CLI and the benchmarks show ``talkers_m``; evaluation reports both.

Grids: ``d_min .. d_max`` of the model in 0.25 m steps for a file (the paper scans 0 to 5 m in
0.5 m steps for Table III; a finer grid costs twice as much and draws a smoother radar); the live
scan uses 0.5 m to update twice as often on a CPU.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from realtime_tse.models.detection import MIN_CONTRAST_DB, detect_talkers

from ..live_config import LIVE_GRID_STEP_M

GRID_STEP_M = 0.25      # default grid step of TSEModel.scan
MIN_SCAN_S = 0.25       # shortest audio a scan accepts (TSEModel.scan and `realtime-tse scan`)

__all__ = ["ScanResult", "make_result", "default_grid", "GRID_STEP_M", "LIVE_GRID_STEP_M",
           "MIN_SCAN_S"]


@dataclass
class ScanResult:
    """One distance scan.

    Attributes:
        distances_m: [Q] query distances in metres, ascending.
        isdr_db: [Q] normalised iSDR per query, ``10 log10(|x_hat|^2/|y|^2 + tau)`` in dB.
        peaks_m: the paper's indicator peaks (Sec. III-C-3), strongest first, up to two; empty only
            for an empty grid (:attr:`realtime_tse.models.detection.Detection.peaks_m`).
        indicator: [Q] the paper's indicator (levels summed within 1 m, shifted to be >= 0).
        input_dbfs: RMS level of the scanned audio in dBFS.
        duration_s: length of the scanned audio in seconds.
        elapsed_s: compute time of the scan in seconds.
        timestamp: ``time.time()`` when the scan finished.
        measured_s: seconds of audio the levels were measured on (``duration_s`` unless a long
            file was scanned in excerpts, :func:`realtime_tse.scan.file_scan.plan_excerpts`).
        talkers_m: the detected talkers the product shows, a subset of ``peaks_m``: empty on
            silence or when no peak stands out (:func:`realtime_tse.models.detection.detect_talkers`).
    """

    distances_m: np.ndarray
    isdr_db: np.ndarray
    peaks_m: list
    indicator: np.ndarray
    input_dbfs: float = float("nan")
    duration_s: float = 0.0
    elapsed_s: float = 0.0
    timestamp: float = field(default_factory=time.time)
    measured_s: float | None = None
    talkers_m: list = field(default_factory=list)

    def __post_init__(self):
        if self.measured_s is None:
            self.measured_s = float(self.duration_s)

    def to_dict(self) -> dict:
        """JSON-able dict (lists of floats)."""
        return {
            "distances_m": [round(float(v), 4) for v in self.distances_m],
            "isdr_db": [round(float(v), 3) for v in self.isdr_db],
            "indicator": [round(float(v), 3) for v in self.indicator],
            "peaks_m": [float(v) for v in self.peaks_m],
            "talkers_m": [float(v) for v in self.talkers_m],
            "input_dbfs": round(float(self.input_dbfs), 2),
            "duration_s": round(float(self.duration_s), 3),
            "elapsed_s": round(float(self.elapsed_s), 3),
            "measured_s": round(float(self.measured_s), 3),
        }


def make_result(distances_m, levels_db, input_dbfs: float, duration_s: float, elapsed_s: float,
                min_contrast_db: float = MIN_CONTRAST_DB) -> ScanResult:
    """A level profile read by :func:`realtime_tse.models.detection.detect_talkers`, as a :class:`ScanResult`.

    Args:
        distances_m: [Q] query distances in metres, ascending.
        levels_db: [Q] normalised iSDR per query, dB.
        input_dbfs: RMS level of the scanned audio (silence: no talkers).
        duration_s, elapsed_s: audio length and compute time, seconds.
        min_contrast_db: how far (dB) a talker's level stands above the profile's median.
    Raises:
        ValueError: levels and distances differ in shape or are not 1-D.
    """
    d = np.asarray(distances_m, dtype=np.float64)
    lv = np.asarray(levels_db, dtype=np.float64)
    det = detect_talkers(lv, d, input_dbfs=float(input_dbfs), min_contrast_db=min_contrast_db)
    return ScanResult(distances_m=d, isdr_db=lv, peaks_m=[float(p) for p in det.peaks_m],
                      indicator=np.asarray(det.indicator), input_dbfs=float(input_dbfs),
                      duration_s=float(duration_s), elapsed_s=float(elapsed_s),
                      talkers_m=[float(p) for p in det.talkers_m])


def default_grid(d_min: float, d_max: float, step: float = GRID_STEP_M) -> np.ndarray:
    """Query distances ``d_min, d_min + step, ..., d_max`` in metres (d_max included when on the
    grid), rounded to 1 um. Raises ValueError when ``step`` <= 0."""
    if step <= 0:
        raise ValueError(f"grid step must be positive, got {step}")
    n = int(np.floor((d_max - d_min) / step + 1e-9)) + 1
    return np.round(d_min + step * np.arange(n), 6)
