"""Talker distances from a scan over query distances: the one definition used by evaluation, the
live engine, the CLI and the window.

A scan runs the model once per query distance ``d_q`` on the same audio and measures the output
level relative to the input, the normalised iSDR of SPEC.md, ``10 log10(|x_hat|^2 / |y|^2 + tau)``
in dB (tau = 1e-2, the tau_inactive of eq. 9, so a silent output reads -20 dB). Where a talker
stands, the model passes speech and the level is high; elsewhere it falls silent.

Two readings of a level profile:

* the paper's indicator (Sec. III-C-3, Table III): the levels summed within 1 m around each query,
  its highest peak the distance estimate (:func:`realtime_tse.models.metrics.distance_profile`);
* the detector the product shows (:func:`detect_talkers`): the indicator's peaks, kept only where the
  profile's own level stands ``min_contrast_db`` above its median, and none on silence. A model that
  only applies a distance-dependent gain gives a smooth profile with one broad maximum; the rule keeps
  such a maximum only when it really stands out.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from .metrics import distance_profile, relative_level

TAU = 1e-2              # floor of the normalised iSDR (-20 dB), the tau_inactive of eq. 9
WINDOW_M = 1.0          # the paper's indicator window (sum of levels within 1 m)
MIN_CONTRAST_DB = 3.0   # a talker's level stands this far above the profile's median
SILENCE_DBFS = -60.0    # below this input RMS nothing is detected
MAX_TALKERS = 2


class ScanCancelled(Exception):
    """A scan was abandoned because its ``cancel`` event was set."""


@torch.inference_mode()
def scan_levels(net: torch.nn.Module, mix: torch.Tensor, distances_m, batch_size: int | None = None,
                cancel: threading.Event | None = None) -> np.ndarray:
    """Normalised iSDR per query distance (dB), running the offline model on ``mix``.

    Args:
        net: a model with ``forward(mix [B, N], d_q [B]) -> [B, N]``.
        mix: [N] float tensor on the model's device, at the model's sample rate.
        distances_m: [Q] query distances in metres.
        batch_size: queries per forward call (None: all Q in one call).
        cancel: checked between calls; when set, :class:`ScanCancelled` is raised.
    Returns:
        [Q] float64 numpy array, dB, >= 10 log10(tau) = -20 dB.
    Raises:
        ValueError: ``mix`` is not 1-D.
    """
    if mix.dim() != 1:
        raise ValueError(f"mix must be [N], got shape {tuple(mix.shape)}")
    d = torch.as_tensor(np.asarray(distances_m, dtype=np.float32), device=mix.device)
    bs = len(d) if not batch_size else max(1, int(batch_size))
    out = []
    for i in range(0, len(d), bs):
        if cancel is not None and cancel.is_set():
            raise ScanCancelled()
        dq = d[i:i + bs]
        y = mix[None, :].expand(len(dq), -1)
        out.append(relative_level(net(y, dq).double(), y.double(), tau=TAU).cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


@dataclass
class Detection:
    """What a level profile says about talker distances.

    Attributes:
        indicator: [Q] the paper's indicator (levels shifted to >= 0, summed within ``window_m``).
        peaks_m: the indicator's peaks, strongest first (up to ``n_max``): the paper's estimate is
            ``peaks_m[0]``; empty only for an empty profile.
        talkers_m: the detected talkers the product shows (subset of ``peaks_m``): empty on silence
            or when no peak stands ``min_contrast_db`` above the profile's median.
    """

    indicator: np.ndarray
    peaks_m: list
    talkers_m: list


def detect_talkers(levels_db, distances_m, input_dbfs: float | None = None,
                   min_contrast_db: float = MIN_CONTRAST_DB, window_m: float = WINDOW_M,
                   n_max: int = MAX_TALKERS) -> Detection:
    """Talker distances from a level profile (see the module docstring).

    Args:
        levels_db: [Q] normalised iSDR per query (dB), from :func:`scan_levels` or the live scan.
        distances_m: [Q] query distances in metres, ascending.
        input_dbfs: RMS level of the scanned audio; below :data:`SILENCE_DBFS` nothing is detected
            (None: not checked).
        min_contrast_db: how far (dB) a talker's level stands above the profile's median.
        window_m: the indicator's window (the paper: 1 m).
        n_max: most talkers reported.
    Returns:
        :class:`Detection`.
    Raises:
        ValueError: levels and distances differ in shape or are not 1-D.
    """
    lv = np.asarray(levels_db, dtype=np.float64)
    d = np.asarray(distances_m, dtype=np.float64)
    if lv.shape != d.shape or lv.ndim != 1:
        raise ValueError(f"levels_db {lv.shape} and distances_m {d.shape} must be 1-D of equal length")
    if len(d) == 0:
        return Detection(np.zeros(0), [], [])
    if not np.all(np.isfinite(lv)):
        return Detection(np.zeros_like(lv), [], [])
    ind, peaks = distance_profile(lv, d, window_m=window_m, n_peaks=n_max)
    silent = input_dbfs is not None and not input_dbfs >= SILENCE_DBFS
    med = float(np.median(lv))
    talkers = [] if silent else [p for p in peaks if float(np.interp(p, d, lv)) - med >= min_contrast_db]
    return Detection(np.asarray(ind), list(peaks), talkers)
