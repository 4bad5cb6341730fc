"""Signal metrics and the paper's losses, shared by ``train`` and ``realtime_tse``.

All functions take torch tensors ``[..., N]`` (or numpy arrays, converted) and reduce over the last
axis, returning ``[...]`` values in dB. ``eps`` guards only against log(0).
"""
from __future__ import annotations

import numpy as np
import torch

EPS = 1e-12


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64)) if not isinstance(x, torch.Tensor) else x


def _energy(x: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(-1)


def sdr(est, ref) -> torch.Tensor:
    """Plain SDR = 10 log10(|x|^2 / |x - x_hat|^2) in dB (SPEC.md, Evaluation). est, ref: [..., N]."""
    est, ref = _t(est), _t(ref)
    return 10 * torch.log10((_energy(ref) + EPS) / (_energy(ref - est) + EPS))


def si_sdr(est, ref) -> torch.Tensor:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), zero-mean signals. est, ref: [..., N]."""
    est, ref = _t(est), _t(ref)
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (_energy(ref)[..., None] + EPS)
    target = alpha * ref
    return 10 * torch.log10((_energy(target) + EPS) / (_energy(est - target) + EPS))


def isdr(est, mix, tau: float = 1e-2) -> torch.Tensor:
    """Inactive SDR of eq. 9 used as a metric: 10 log10(|x_hat|^2 + tau |y|^2) in dB (lower is better).

    Depends on the absolute level; see :func:`relative_level` for the level-free version.
    """
    est, mix = _t(est), _t(mix)
    return 10 * torch.log10(_energy(est) + tau * _energy(mix) + EPS)


def relative_level(est, mix, tau: float = 0.0) -> torch.Tensor:
    """Output level relative to the input, 10 log10(|x_hat|^2 / |y|^2 + tau) in dB (SPEC.md: the
    normalised iSDR of the live profile; with tau = 0 the absence-output level of the evaluation)."""
    est, mix = _t(est), _t(mix)
    return 10 * torch.log10(_energy(est) / (_energy(mix) + EPS) + tau + EPS)


def loss_active(est: torch.Tensor, ref: torch.Tensor, tau: float = 1e-3) -> torch.Tensor:
    """Presence loss: the negative of eq. 8, -10 log10(|x|^2 / (|x - x_hat|^2 + tau |x|^2)).

    tau = 10^(-30/10) bounds the loss below at -30 dB. Returns [...] (minimise).
    """
    e_ref = _energy(ref)
    return -10 * torch.log10((e_ref + EPS) / (_energy(ref - est) + tau * e_ref + EPS))


def loss_inactive(est: torch.Tensor, mix: torch.Tensor, tau: float = 1e-2) -> torch.Tensor:
    """Absence loss, eq. 9: 10 log10(|x_hat|^2 + tau |y|^2). Returns [...] (minimise)."""
    return 10 * torch.log10(_energy(est) + tau * _energy(mix) + EPS)


def distance_profile(levels_db, distances_m, window_m: float = 1.0, n_peaks: int = 2):
    """Distance-estimation indicator of the paper (Sec. III-C-3, Table III).

    Args:
        levels_db: [Q] iSDR (or normalised iSDR) per query distance, higher = a talker is present.
        distances_m: [Q] query distances in metres, ascending.
        window_m: the indicator at d sums the levels of queries within +-window_m / 2 of d
            ("the sum of the iSDRs within 1 m").
        n_peaks: how many peaks to return.
    Returns:
        (indicator [Q] numpy, peaks_m list of up to n_peaks distances, highest indicator first).
        Peaks are local maxima of the indicator; on a plateau the query with the highest level wins.
    """
    lv = np.asarray(levels_db, dtype=np.float64)
    d = np.asarray(distances_m, dtype=np.float64)
    if lv.shape != d.shape or lv.ndim != 1 or len(d) == 0:
        raise ValueError("levels_db and distances_m must be 1-D of equal length")
    # shift so every level is >= 0: a sum of negative dB values would favour sparse edges
    lv = lv - lv.min()
    near = np.abs(d[:, None] - d[None, :]) <= window_m / 2 + 1e-9
    ind = (near * lv[None, :]).sum(1)
    # ties on a plateau of the indicator (an isolated high query spreads over the window) are
    # broken by the query's own level
    score = ind + 1e-3 * lv
    peaks = []
    for i in range(len(d)):
        left = score[i - 1] if i > 0 else -np.inf
        right = score[i + 1] if i + 1 < len(d) else -np.inf
        if score[i] > left and score[i] >= right:
            peaks.append(i)
    if not peaks:
        peaks = [int(np.argmax(score))]
    peaks.sort(key=lambda i: -score[i])
    return ind, [float(d[i]) for i in peaks[:n_peaks]]
