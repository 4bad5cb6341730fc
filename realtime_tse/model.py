"""The model facade: load a checkpoint, extract offline, scan distances, hand out streamers.

Public API (ARCHITECTURE.md, "Public interfaces")::

    m = load_model(path=None, device="auto")        # TSEModel, warmed up
    y = m.extract(mix, distance_m)                   # [N] or [B, N] -> same shape, float32
    p = m.scan(mix)                                  # ScanResult(distances_m, isdr_db, peaks_m, talkers_m, ...)
    s = m.stream(block_ms=64)                        # realtime_tse.streamer.Streamer

All audio handed to :class:`TSEModel` is at ``model.sample_rate`` unless a ``sample_rate=`` is
given (then it is resampled with soxr on the way in and back on the way out). The live path
(microphone -> model -> speakers) is :class:`realtime_tse.live.engine.LiveEngine`.
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from realtime_tse.models.checkpoint import CheckpointError, load_checkpoint
from realtime_tse.models.config import ModelConfig

from .scan.file_scan import SCAN_MAX_S, file_scan_levels, plan_excerpts
from .paths import SHIPPED_MODEL_NAME, former_name_hint, shipped_model_path
from .progress import progress_bar, show_progress
from .modes import check_mode
from .safety import as_signals, restore_layout, sanitize
from .scan.result import GRID_STEP_M, MIN_SCAN_S, ScanResult, default_grid, make_result
from .streamer import DEFAULT_BLOCK_MS, Streamer

__all__ = ["load_model", "default_model_path", "resolve_device", "TSEModel", "CheckpointError",
           "resample", "SHIPPED_MODEL_NAME", "MODEL_ENV"]

MODEL_ENV = "REALTIME_TSE_MODEL"


def default_model_path() -> Path:
    """``$REALTIME_TSE_MODEL`` if set, else the shipped ``lite-lstm-d1.safetensors``
    (the repository's ``assets/models/`` or, installed from a wheel, the package's copy:
    :func:`realtime_tse.paths.shipped_model_path`)."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env).expanduser()
    return shipped_model_path()


def resolve_device(device="auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; otherwise ``torch.device(device)``.

    Raises:
        ValueError: an unknown device string, or CUDA asked for but not available.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown torch device {device!r} (use 'auto', 'cpu' or 'cuda')") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but CUDA is not available here")
    return dev


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample along the last axis with soxr (HQ). ``x``: [N] or [B, N] float. Returns float32."""
    x = np.asarray(x, dtype=np.float32)
    if int(sr_in) == int(sr_out):
        return x
    import soxr  # noqa: PLC0415
    if x.ndim == 1:
        return soxr.resample(x, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)
    y = soxr.resample(np.ascontiguousarray(x.T), sr_in, sr_out, quality="HQ")
    return np.ascontiguousarray(np.asarray(y, dtype=np.float32).reshape(-1, x.shape[0]).T)


def _signals(mix, allow_batch: bool, what: str) -> tuple[np.ndarray, str]:
    """:func:`realtime_tse.safety.as_signals`, then NaN/Inf -> 0 with one warning naming the count."""
    x, layout = as_signals(mix, allow_batch=allow_batch)
    x, bad = sanitize(x)
    if bad:
        warnings.warn(f"{what}: {bad} non-finite samples (NaN/Inf) in the input were replaced by 0",
                      RuntimeWarning, stacklevel=3)
    return x, layout


def load_model(path=None, device="auto", warmup: bool = True) -> "TSEModel":
    """Load a checkpoint as a :class:`TSEModel`, warmed up.

    Args:
        path: a ``.safetensors`` checkpoint; None = :func:`default_model_path` (the shipped model,
            or ``$REALTIME_TSE_MODEL``).
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        warmup: run one short forward (and one streaming step) before returning.
    Raises:
        CheckpointError: missing, unreadable or mismatching checkpoint (message names the file;
            for the shipped model it also says how to get one).
        ValueError: unknown device.
    """
    dev = resolve_device(device)
    shipped = path is None
    p = default_model_path() if shipped else Path(path).expanduser()
    hint = former_name_hint(p)
    if hint:
        raise CheckpointError(f"{p}: no such checkpoint file; {hint}")
    if shipped and not p.is_file():
        raise CheckpointError(
            f"{p}: no such checkpoint file (the shipped model is missing; pass a checkpoint with "
            f"--model / load_model(path), or set {MODEL_ENV})")
    net, meta = load_checkpoint(p, device=dev)
    model = TSEModel(net, meta, dev, path=p)
    if warmup:
        model.warmup()
    return model


class TSEModel:
    """A loaded extraction model.

    Attributes:
        net: the torch module (eval mode, on :attr:`device`).
        config: its :class:`realtime_tse.models.config.ModelConfig`.
        provenance: the checkpoint's provenance dict.
        device: ``torch.device``.
        path: the checkpoint file (or None).
        scan_query_seconds: audio seconds x query rows per model call of :meth:`scan`.
        max_chunk_s: audio seconds (summed over batch rows, at least 2 s per row) in one model
            call of :meth:`extract`; longer inputs and larger batches are processed in chunks and
            groups of rows, so memory does not grow with the input. Causal models: 4 s, streamed
            exactly (``net.step``); bidirectional: 20 s, overlapping chunks cross-faded.
    """

    def __init__(self, net: torch.nn.Module, meta: dict, device: torch.device, path=None):
        self.net = net.eval()
        self.config: ModelConfig = meta["config"]
        self.provenance: dict = dict(meta.get("provenance") or {})
        self.device = torch.device(device)
        self.path = Path(path) if path is not None else None
        self.max_chunk_s = 4.0 if self.causal else 20.0
        # audio seconds x query rows per model call of a file scan: bounds its memory; on this
        # CPU, 21 queries x 0.128 s steps ran 1.3x faster per query-second than 0.256 s steps
        self.scan_query_seconds = 64.0 if self.device.type == "cuda" else 2.7

    # -- info ------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self.config.sample_rate)

    @property
    def distance_range(self) -> tuple[float, float]:
        """(d_min, d_max) in metres: the query range the model was trained for."""
        return float(self.config.d_min), float(self.config.d_max)

    @property
    def causal(self) -> bool:
        return bool(self.config.causal)

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else f"<{self.config.preset}>"

    def __repr__(self) -> str:
        return (f"TSEModel({self.name}, preset={self.config.preset}, {self.sample_rate} Hz, "
                f"range={self.distance_range} m, device={self.device})")

    def check_distance(self, distance_m) -> np.ndarray:
        """Validate query distance(s); returns float32 array. Raises ValueError outside the range."""
        d = np.atleast_1d(np.asarray(distance_m, dtype=np.float64))
        lo, hi = self.distance_range
        if d.size == 0 or not np.all(np.isfinite(d)):
            raise ValueError(f"distance must be a finite number of metres in [{lo:g}, {hi:g}]")
        bad = d[(d < lo - 1e-9) | (d > hi + 1e-9)]
        if bad.size:
            raise ValueError(f"distance {bad[0]:g} m is outside the model's range "
                             f"[{lo:g}, {hi:g}] m")
        return d.astype(np.float32)

    def warmup(self) -> None:
        """One short forward (and one streaming step for causal models)."""
        n = max(self.config.n_fft * 4, self.sample_rate // 4)
        n -= n % self.config.hop
        x = torch.zeros(1, n, device=self.device)
        d = torch.full((1,), float(np.mean(self.distance_range)), device=self.device)
        with torch.inference_mode():
            self.net(x, d)
            if self.causal:
                st = self.net.init_state(d)
                self.net.step(x[:, : 4 * self.config.hop], d, st)

    # -- offline ---------------------------------------------------------------------------------
    def extract(self, mix, distance_m, sample_rate: int | None = None,
                progress: bool | None = None, mode: str = "extract") -> np.ndarray:
        """Extract every talker within ``r_spk`` of ``distance_m`` (eq. 3; silence if none, eq. 4),
        or, with ``mode="suppress"``, keep everyone else (:mod:`realtime_tse.modes`).

        Args:
            mix: audio by the input rule of :mod:`realtime_tse.safety`: ``[N]`` mono, ``[N, C]``
                frames x channels (C <= 8, N > C; mixed down), or ``[B, N]`` a batch (B < N);
                float, or int8/int16/int32/uint8 PCM (scaled to [-1, 1)). NaN/Inf samples are
                replaced by 0 (a ``RuntimeWarning`` gives the count).
            distance_m: query distance in metres (scalar, or [B] for a batch).
            sample_rate: rate of ``mix``; None = the model's rate. Another rate is resampled to the
                model's rate and the output back to ``sample_rate``.
            progress: a tqdm bar on stderr; None = only for ``PROGRESS_MIN_S`` (10 s) of audio or
                more, and only on a terminal.
            mode: ``"extract"`` (default) or ``"suppress"``: the (mixed-down) input minus the
                extraction, at the input's rate.
        Returns:
            float32 ``[N]`` for ``[N]`` and ``[N, C]`` input (the extraction is mono), ``[B, N]``
            for a batch. Memory: the input and output plus one chunk (:attr:`max_chunk_s`).
        Raises:
            TypeError: samples of a dtype that is not a sample format (e.g. int64).
            ValueError: empty input, more than 2 dimensions or an ambiguous 2-D shape, a
                distance outside the model's range, distances that do not match the batch, or an
                unknown mode.
        """
        mode = check_mode(mode)
        x2, layout = _signals(mix, True, "extract")
        d = self.check_distance(distance_m)
        if d.size == 1:
            d = np.repeat(d, x2.shape[0])
        elif d.size != x2.shape[0]:
            raise ValueError(f"{d.size} distances for a batch of {x2.shape[0]}")
        n_in = x2.shape[-1]
        x_in = x2
        sr = self.sample_rate if sample_rate is None else int(sample_rate)
        if sr != self.sample_rate:
            x2 = resample(x2, sr, self.sample_rate)
        y = self._extract_model_rate(x2, d, show_progress(progress, x2.size / self.sample_rate))
        if sr != self.sample_rate:
            y = resample(y, self.sample_rate, sr)
            y = _fit_length(y, n_in)
        if mode == "suppress":
            y = x_in - y
        y = y.astype(np.float32, copy=False)
        return restore_layout(y, layout)

    def _extract_model_rate(self, x: np.ndarray, d: np.ndarray,
                            progress: bool | None = False) -> np.ndarray:
        """[B, N] at the model rate -> [B, N], in groups of rows and chunks of samples that hold
        at most ``max(max_chunk_s, 2 s x rows)`` of audio per model call."""
        b, n = x.shape
        rows = max(1, min(b, int(self.max_chunk_s // 2.0)))
        chunk = int(max(2.0, self.max_chunk_s / rows) * self.sample_rate)
        out = np.empty((b, n), np.float32)
        with progress_bar(b * n / self.sample_rate, progress, "extract") as bar, torch.inference_mode():
            for g in range(0, b, rows):
                xt = torch.from_numpy(np.ascontiguousarray(x[g:g + rows])).to(self.device)
                dt = torch.from_numpy(np.ascontiguousarray(d[g:g + rows])).to(self.device)
                if n <= chunk:
                    y = self.net(xt, dt)
                    bar.update(xt.numel() / self.sample_rate)
                elif self.causal:
                    y = self._causal_chunked(xt, dt, chunk, bar)
                else:
                    y = self._overlap_chunked(xt, dt, chunk, bar)
                out[g:g + rows] = y.float().cpu().numpy()
        return out

    def _causal_chunked(self, x: torch.Tensor, d: torch.Tensor, chunk: int,
                        bar=None) -> torch.Tensor:
        """Exact chunked form of the offline forward for causal nets: streaming steps of ``chunk``
        samples over the input padded by ``stream_delay``, then the delay removed."""
        hop = self.config.hop
        delay = self.net.stream_delay
        b, n = x.shape
        total = n + delay
        total += (-total) % hop
        xp = torch.nn.functional.pad(x, (0, total - n))
        chunk -= chunk % hop
        st = self.net.init_state(d)
        outs = []
        for i in range(0, total, chunk):
            o, st = self.net.step(xp[:, i:i + chunk], d, st)
            outs.append(o)
            if bar is not None:
                bar.update(o.numel() / self.sample_rate)
        return torch.cat(outs, 1)[:, delay:delay + n]

    def _overlap_chunked(self, x: torch.Tensor, d: torch.Tensor, chunk: int,
                         bar=None) -> torch.Tensor:
        """Bidirectional nets: chunks overlapping by 1 s, cross-faded linearly."""
        b, n = x.shape
        ov = min(self.sample_rate, chunk // 4)
        step = chunk - ov
        out = torch.zeros_like(x)
        wsum = torch.zeros(n, device=x.device)
        ramp = torch.linspace(0, 1, ov + 2, device=x.device)[1:-1]
        for s in range(0, n, step):
            e = min(n, s + chunk)
            y = self.net(x[:, s:e], d)
            w = torch.ones(e - s, device=x.device)
            if s > 0:
                w[:ov] = ramp[: min(ov, e - s)]
            if e < n:
                w[-ov:] = torch.minimum(w[-ov:], ramp.flip(0))
            out[:, s:e] += y * w
            wsum[s:e] += w
            if bar is not None:
                bar.update(b * (e - s) / self.sample_rate)
            if e == n:
                break
        return out / wsum.clamp_min(1e-6)

    # -- distance scan -------------------------------------------------------------------------
    def scan(self, mix, distances_m=None, sample_rate: int | None = None, cancel=None,
             max_seconds: float | None = SCAN_MAX_S, progress: bool | None = None) -> ScanResult:
        """Distance profile of one signal: normalised iSDR per query, indicator and peaks.

        All queries run as one batch over the audio, in bounded memory: causal models stream it
        through ``net.step`` in short steps (:func:`realtime_tse.scan.file_scan.file_scan_levels`),
        bidirectional ones run on pieces of at most 8 s. Audio longer than ``max_seconds`` is
        measured on evenly spread excerpts totalling ``max_seconds`` (4 s each, every one after
        0.5 s of unmeasured warm-up; :func:`realtime_tse.scan.file_scan.plan_excerpts`): the compute is
        about Q x seconds x the model's per-query cost (lite-causal, 21 queries, one thread of this
        2-core CPU: 1.3 to 2.5 s per audio second), so a whole 3-minute file would take 4 to 8
        minutes; ``max_seconds=None`` measures the whole signal anyway.

        Args:
            mix: one signal by the input rule of :mod:`realtime_tse.safety`: ``[N]``, ``[N, C]``
                (C <= 8 channels, mixed down) or ``[1, N]``; NaN/Inf samples count as 0 (with a
                ``RuntimeWarning``).
            distances_m: query grid in metres (None: ``d_min .. d_max`` in 0.25 m steps); must lie
                in the model's range; returned sorted.
            sample_rate: rate of ``mix`` (None = the model's rate).
            cancel: optional ``threading.Event``; when set, the scan stops between model calls and
                raises :class:`realtime_tse.models.detection.ScanCancelled`.
            max_seconds: most audio measured, seconds (default ``SCAN_MAX_S`` = 20 s; None: all).
            progress: a tqdm bar on stderr; None = only for 10 s or more of measured audio, and
                only on a terminal.
        Returns:
            :class:`ScanResult`; ``duration_s`` is the signal's length, ``measured_s`` the audio
            the levels were measured on.
        Raises:
            TypeError: not a sample dtype.
            ValueError: a batch or an ambiguous shape, shorter than 0.25 s, a distance out of
                range, ``max_seconds`` <= 0.
        """
        x2, _ = _signals(mix, False, "scan")
        x = x2[0]
        sr = self.sample_rate if sample_rate is None else int(sample_rate)
        if len(x) < MIN_SCAN_S * sr:
            raise ValueError(f"audio too short for a distance scan ({len(x) / sr:.2f} s; need at "
                             f"least {MIN_SCAN_S} s)")
        if sr != self.sample_rate:
            x = resample(x, sr, self.sample_rate)
        if distances_m is None:
            grid = default_grid(*self.distance_range, GRID_STEP_M)
        else:
            grid = np.sort(self.check_distance(distances_m).astype(np.float64))
        t0 = time.perf_counter()
        excerpts = plan_excerpts(len(x), self.sample_rate, max_seconds)
        measured_s = sum(e - s for _, s, e in excerpts) / self.sample_rate
        levels, e_in, n_meas = file_scan_levels(
            self.net, x, self.sample_rate, grid, excerpts, self.causal, device=self.device,
            query_seconds=self.scan_query_seconds, cancel=cancel,
            progress=show_progress(progress, measured_s))
        res = make_result(grid, levels, float(10 * np.log10(e_in / max(n_meas, 1) + 1e-20)),
                          len(x) / self.sample_rate, time.perf_counter() - t0)
        res.measured_s = n_meas / self.sample_rate
        return res

    # -- streaming -----------------------------------------------------------------------------
    def stream(self, block_ms: float = DEFAULT_BLOCK_MS, aligned: bool = False,
               window_frames: int | None = None) -> "Streamer":
        """A :class:`Streamer` with blocks of about ``block_ms`` (rounded to whole hops)."""
        return Streamer(self, block_ms=block_ms, aligned=aligned, window_frames=window_frames)


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` ([..., M]) cut or zero-padded to ``n`` samples on the last axis."""
    if y.shape[-1] >= n:
        return y[..., :n]
    pad = [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])]
    return np.pad(y, pad)
