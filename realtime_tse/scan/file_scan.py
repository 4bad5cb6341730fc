"""Distance scan of a file, in bounded memory: all queries batched over the audio; long files measured
on evenly spread excerpts.

:func:`plan_excerpts` picks where a long file is measured (at most ``SCAN_MAX_S`` seconds in
excerpts of about ``SCAN_SEGMENT_S``, each after ``SCAN_WARMUP_S`` of unmeasured audio);
:func:`file_scan_levels` measures the normalised iSDR of :mod:`realtime_tse.models.detection` there. Used by
:meth:`realtime_tse.model.TSEModel.scan`; the live scanners are in :mod:`realtime_tse.scan.live_scan`.
"""
from __future__ import annotations

import math
import threading

import numpy as np
import torch

from realtime_tse.models.detection import TAU, ScanCancelled

from ..progress import progress_bar

SCAN_MAX_S = 20.0       # a file scan measures at most this much audio (excerpts spread evenly)
SCAN_SEGMENT_S = 4.0    # ... in excerpts of about this length
SCAN_WARMUP_S = 0.5     # ... each after this much unmeasured audio (the causal state settles)
SCAN_QUERY_SECONDS = 2.7  # audio seconds x query rows per model call of a file scan (memory bound)

__all__ = ["plan_excerpts", "file_scan_levels", "SCAN_MAX_S", "SCAN_SEGMENT_S", "SCAN_WARMUP_S",
           "SCAN_QUERY_SECONDS"]


def plan_excerpts(n: int, sample_rate: int, max_seconds: float | None,
                  segment_s: float = SCAN_SEGMENT_S, warmup_s: float = SCAN_WARMUP_S) -> list:
    """Where a file scan measures: ``[(warm_start, start, end), ...]`` in samples.

    The whole signal (``[(0, 0, n)]``) when ``max_seconds`` is None or ``n`` is at most
    ``max_seconds`` of audio; else ``k = ceil(max_seconds / segment_s)`` excerpts of
    ``max_seconds / k`` seconds each, spread evenly from the start to the end, each preceded by
    up to ``warmup_s`` of audio that the model runs on but that is not measured.

    Raises:
        ValueError: ``max_seconds`` <= 0.
    """
    if max_seconds is None or n <= max_seconds * sample_rate:
        return [(0, 0, int(n))]
    if max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive (or None for the whole file), "
                         f"got {max_seconds}")
    k = max(1, int(math.ceil(max_seconds / segment_s - 1e-9)))
    seg = int(max_seconds * sample_rate / k)
    warm = int(warmup_s * sample_rate)
    starts = np.linspace(0, n - seg, k).round().astype(int) if k > 1 else [(n - seg) // 2]
    return [(max(0, int(s) - warm), int(s), int(s) + seg) for s in starts]



@torch.inference_mode()
def file_scan_levels(net: torch.nn.Module, x: np.ndarray, sample_rate: int, distances_m,
                     excerpts: list, causal: bool, device=None,
                     query_seconds: float = SCAN_QUERY_SECONDS,
                     chunk_s: float = 8.0, cancel: threading.Event | None = None,
                     progress: bool | None = False) -> tuple[np.ndarray, float, int]:
    """Normalised iSDR per query over the measured parts of ``excerpts``, in bounded memory.

    All Q queries run as one batch (the audio replicated over Q rows). Causal nets stream each
    excerpt through ``net.step`` in steps of about ``query_seconds / Q`` seconds (whole hops), the
    output aligned with the input by dropping ``net.stream_delay`` samples (the same numbers as the
    offline forward, up to float rounding); bidirectional nets run the offline forward on pieces
    of at most ``chunk_s`` measured seconds with ``1 s`` of context on each side, in groups of
    queries so that one forward holds at most ``max(query_seconds, piece)`` seconds x rows. Peak
    memory therefore does not grow with the file's length or the grid's size.

    Args:
        net: the model; x: [N] float32 at ``sample_rate``, finite; distances_m: [Q] metres.
        excerpts: from :func:`plan_excerpts`.
        cancel: checked between steps; when set, :class:`ScanCancelled` is raised.
        progress: a tqdm bar over the audio seconds processed (None: only on a terminal).
    Returns:
        ``(levels_db [Q], input_energy, measured_samples)``: ``10 log10(E_out / E_in + tau)``
        summed over the measured samples, the input energy and sample count they cover.
    """
    if device is None:
        device = next(net.parameters()).device
    d = np.asarray(distances_m, dtype=np.float32).reshape(-1)
    q = len(d)
    sr = int(sample_rate)
    e_out = np.zeros(q, np.float64)
    e_in = 0.0
    measured = 0
    total = sum(e - s for _, s, e in excerpts) / sr
    with progress_bar(total, progress, "scan") as bar:
        for w, s, e in excerpts:
            seg_in = x[s:e].astype(np.float64)
            e_in += float(np.dot(seg_in, seg_in))
            measured += e - s
            if causal:
                e_out += _causal_excerpt_energy(net, x, d, w, s, e, sr, device, query_seconds,
                                                cancel, bar)
            else:
                e_out += _offline_excerpt_energy(net, x, d, s, e, sr, device, query_seconds,
                                                 chunk_s, cancel, bar)
    levels = 10 * np.log10(e_out / (e_in + 1e-12) + TAU)
    return levels, e_in, measured


def _check_cancel(cancel) -> None:
    if cancel is not None and cancel.is_set():
        raise ScanCancelled()


def _causal_excerpt_energy(net, x, d, w, s, e, sr, device, query_seconds, cancel, bar):
    hop, delay = int(net.cfg.hop), int(net.stream_delay)
    q = len(d)
    step = max(1, int(query_seconds / q * sr) // hop) * hop
    seg = x[w:min(len(x), e + delay)]
    total = (e - w) + delay
    total += (-total) % hop
    if len(seg) < total:
        seg = np.concatenate([seg, np.zeros(total - len(seg), np.float32)])
    dq = torch.from_numpy(d).to(device)
    st = net.init_state(dq)
    xt = torch.from_numpy(np.ascontiguousarray(seg)).to(device)
    acc = torch.zeros(q, dtype=torch.float64, device=device)
    lo, hi = (s - w) + delay, (e - w) + delay  # measured part, in stream output samples
    for i in range(0, total, step):
        _check_cancel(cancel)
        j = min(total, i + step)
        out, st = net.step(xt[i:j][None].expand(q, -1), dq, st)
        a, b = max(lo, i), min(hi, j)
        if b > a:
            acc += out[:, a - i:b - i].double().pow(2).sum(1)
            bar.update((b - a) / sr)
    return acc.cpu().numpy()


def _offline_excerpt_energy(net, x, d, s, e, sr, device, query_seconds, chunk_s, cancel, bar):
    q = len(d)
    acc = np.zeros(q, np.float64)
    piece = int(chunk_s * sr)
    ctx = sr
    whole = s == 0 and e == len(x) and len(x) <= piece
    for ps in range(s, e, piece):
        pe = min(e, ps + piece)
        a, b = (ps, pe) if whole else (max(0, ps - ctx), min(len(x), pe + ctx))
        xt = torch.from_numpy(np.ascontiguousarray(x[a:b])).to(device)
        rows = max(1, int(max(query_seconds, (b - a) / sr) / ((b - a) / sr)))
        for g in range(0, q, rows):
            _check_cancel(cancel)
            dq = torch.from_numpy(d[g:g + rows]).to(device)
            y = net(xt[None].expand(len(dq), -1), dq)
            acc[g:g + rows] += y[:, ps - a:pe - a].double().pow(2).sum(1).cpu().numpy()
            bar.update((pe - ps) / sr * len(dq) / q)
    return acc
