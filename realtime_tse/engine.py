"""The extraction engine: load a checkpoint, extract offline, scan distances, stream live.

Public API (ARCHITECTURE.md, "Public interfaces")::

    m = load_model(path=None, device="auto")        # TSEModel, warmed up
    y = m.extract(mix, distance_m)                   # [N] or [B, N] -> same shape, float32
    p = m.scan(mix)                                  # ScanResult(distances_m, isdr_db, peaks_m, indicator)
    s = m.stream(block_ms=64)                        # Streamer
    out = s.process(block, distance_m)               # [n] -> [n] float32
    eng = LiveEngine(m, input_device=..., output_device=...)   # the live app's audio path
    eng.start(); eng.distance_m = 2.0; eng.stop()

All audio handed to :class:`TSEModel` and :class:`Streamer` is at ``model.sample_rate`` unless a
``sample_rate=`` is given (then it is resampled with soxr on the way in and back on the way out).

Latency, measured in samples (``Streamer.delay_samples``): ``process()`` output equals the offline
``extract()`` output delayed by ``delay_samples``. For a causal checkpoint that is
``n_fft - hop`` (the model's own look-ahead: a hop of output is final once the next frame has
arrived) plus ``hop`` of internal buffering so that blocks of any length can be accepted
(``aligned=True`` drops it for callers that always pass whole hops, as the live engine does).
``Streamer.latency_s`` adds the caller's block buffering: ``(block + delay_samples) / sr``. With the
default buffering that is one frame plus one block, SPEC.md's figure; the live engine's aligned
streamer is one hop less (block + frame - hop), and that is what it reports.

Bidirectional checkpoints (preset ``paper``) stream through a sliding causal window: each block of
``block_samples`` is processed together with the last ``window_frames`` frames of input, and the
newest finished samples are kept (slower; it lets a user hear the paper model).
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import CheckpointError, load_checkpoint
from models.config import ModelConfig

from .file_scan import SCAN_MAX_S, file_scan_levels, plan_excerpts
from .profile import ScanWorker, StreamingScanWorker
from .progress import progress_bar as _bar
from .scan_result import GRID_STEP_M, MIN_SCAN_S, ScanResult, default_grid, make_result
from .safety import OutputGuard, as_signals, restore_layout, sanitize

__all__ = ["load_model", "default_model_path", "TSEModel", "Streamer", "LiveEngine", "ScanResult",
           "CheckpointError", "resample", "SHIPPED_MODEL_NAME"]

SHIPPED_MODEL_NAME = "tse-lite-causal-d1.safetensors"
MODEL_ENV = "REALTIME_TSE_MODEL"
PROGRESS_MIN_S = 10.0  # offline extract / scan show a progress bar (on a terminal) from this length

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------- helpers
def default_model_path() -> Path:
    """``$REALTIME_TSE_MODEL`` if set, else the shipped ``tse-lite-causal-d1.safetensors``
    (the repository's ``assets/models/`` or, installed from a wheel, the package's copy:
    :func:`realtime_tse.paths.shipped_model_path`)."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env).expanduser()
    from .paths import shipped_model_path
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


def _show_progress(progress: bool | None, seconds: float) -> bool | None:
    """``progress`` None (auto): a bar only for audio of ``PROGRESS_MIN_S`` or more (and then only
    on a terminal, tqdm's ``disable=None``)."""
    if progress is None and seconds < PROGRESS_MIN_S:
        return False
    return progress


def _level_db(x: np.ndarray) -> float:
    """Block RMS level in dBFS, floored at -120."""
    if len(x) == 0:
        return -120.0
    e = float(np.dot(x, x)) / len(x)
    return max(-120.0, 10.0 * math.log10(e + 1e-12))


# ------------------------------------------------------------------------------------- loading
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
    if shipped and not p.is_file():
        raise CheckpointError(
            f"{p}: no such checkpoint file (the shipped model is missing; pass a checkpoint with "
            f"--model / load_model(path), or set {MODEL_ENV})")
    net, meta = load_checkpoint(p, device=dev)
    model = TSEModel(net, meta, dev, path=p)
    if warmup:
        model.warmup()
    return model


# ------------------------------------------------------------------------------------- model
class TSEModel:
    """A loaded extraction model.

    Attributes:
        net: the torch module (eval mode, on :attr:`device`).
        config: its :class:`models.config.ModelConfig`.
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
                progress: bool | None = None) -> np.ndarray:
        """Extract every talker within ``r_spk`` of ``distance_m`` (eq. 3; silence if none, eq. 4).

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
        Returns:
            float32 ``[N]`` for ``[N]`` and ``[N, C]`` input (the extraction is mono), ``[B, N]``
            for a batch. Memory: the input and output plus one chunk (:attr:`max_chunk_s`).
        Raises:
            TypeError: samples of a dtype that is not a sample format (e.g. int64).
            ValueError: empty input, more than 2 dimensions or an ambiguous 2-D shape, a
                distance outside the model's range, or distances that do not match the batch.
        """
        x2, layout = _signals(mix, True, "extract")
        d = self.check_distance(distance_m)
        if d.size == 1:
            d = np.repeat(d, x2.shape[0])
        elif d.size != x2.shape[0]:
            raise ValueError(f"{d.size} distances for a batch of {x2.shape[0]}")
        n_in = x2.shape[-1]
        sr = self.sample_rate if sample_rate is None else int(sample_rate)
        if sr != self.sample_rate:
            x2 = resample(x2, sr, self.sample_rate)
        y = self._extract_model_rate(x2, d, _show_progress(progress, x2.size / self.sample_rate))
        if sr != self.sample_rate:
            y = resample(y, self.sample_rate, sr)
            y = _fit_length(y, n_in)
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
        with _bar(b * n / self.sample_rate, progress, "extract") as bar, torch.inference_mode():
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
        through ``net.step`` in short steps (:func:`realtime_tse.profile.file_scan_levels`),
        bidirectional ones run on pieces of at most 8 s. Audio longer than ``max_seconds`` is
        measured on evenly spread excerpts totalling ``max_seconds`` (4 s each, every one after
        0.5 s of unmeasured warm-up; :func:`realtime_tse.profile.plan_excerpts`): the compute is
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
                raises :class:`realtime_tse.profile.ScanCancelled`.
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
            progress=_show_progress(progress, measured_s))
        res = make_result(grid, levels, float(10 * np.log10(e_in / max(n_meas, 1) + 1e-20)),
                          len(x) / self.sample_rate, time.perf_counter() - t0)
        res.measured_s = n_meas / self.sample_rate
        return res

    # -- streaming -----------------------------------------------------------------------------
    def stream(self, block_ms: float = 64, aligned: bool = False,
               window_frames: int | None = None) -> "Streamer":
        """A :class:`Streamer` with blocks of about ``block_ms`` (rounded to whole hops)."""
        return Streamer(self, block_ms=block_ms, aligned=aligned, window_frames=window_frames)


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    if y.shape[-1] >= n:
        return y[..., :n]
    pad = [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])]
    return np.pad(y, pad)


# ------------------------------------------------------------------------------------- streaming
class Streamer:
    """Block-wise streaming extraction with carried state.

    ``process(block, distance_m)`` takes any number of samples at the model rate and returns as
    many: the offline output delayed by :attr:`delay_samples`. Internally it runs the model on
    whole hops (causal checkpoints, ``net.step``) or on whole blocks (bidirectional checkpoints,
    sliding window of the last ``window_frames`` frames). A new ``distance_m`` applies from the next
    model step on (``net.step`` re-primes the time LSTMs), i.e. within one block.

    Args:
        model: the :class:`TSEModel`.
        block_ms: nominal block length; rounded to whole hops (at least one).
        aligned: the caller promises block lengths that are multiples of the processing unit (hop,
            or ``block_samples`` for a sliding window); then no extra buffering delay is added.
        window_frames: sliding-window length in frames for bidirectional checkpoints
            (default 32 frames, 0.5 s at a 16 ms hop).
    Attributes:
        block_samples: nominal block in samples (k hops).
        delay_samples: output delay relative to ``model.extract`` in samples.
        latency_s: algorithmic latency ``(block_samples + delay_samples) / sr``.
        nonfinite_samples: NaN/Inf input samples replaced by 0 since construction.
        state_resets: times the model state turned non-finite and was started afresh.
    """

    def __init__(self, model: TSEModel, block_ms: float = 64, aligned: bool = False,
                 window_frames: int | None = None):
        if block_ms <= 0:
            raise ValueError(f"block_ms must be positive, got {block_ms}")
        self.model = model
        cfg = model.config
        self.hop, self.n_fft, self.sr = cfg.hop, cfg.n_fft, cfg.sample_rate
        k = max(1, int(round(block_ms * 1e-3 * self.sr / self.hop)))
        self.block_samples = k * self.hop
        self.causal = model.causal
        self.aligned = bool(aligned)
        self.window_frames = int(window_frames or 32)
        self.unit = self.hop if self.causal else self.block_samples
        self.prefill = 0 if self.aligned else self.unit
        self.delay_samples = self.prefill + self.n_fft - self.hop
        self.max_step = max(self.block_samples, (2 * self.sr) // self.hop * self.hop)
        self.nonfinite_samples = 0
        self.state_resets = 0
        self.reset()

    @property
    def latency_s(self) -> float:
        """Algorithmic latency: the caller's block plus :attr:`delay_samples`, in seconds."""
        return (self.block_samples + self.delay_samples) / self.sr

    @property
    def block_ms(self) -> float:
        return 1e3 * self.block_samples / self.sr

    def reset(self) -> None:
        """Forget all state (the next block starts a fresh stream)."""
        self._in = np.zeros(0, np.float32)
        self._out = np.zeros(self.prefill, np.float32)
        self._state = None
        self._hist = np.zeros(0, np.float32)  # sliding window: recent input
        self._d = None

    def process(self, block, distance_m) -> np.ndarray:
        """Feed ``block`` at the model rate with query ``distance_m`` (metres).

        ``block`` is one signal by the input rule of :mod:`realtime_tse.safety`: ``[n]``,
        ``[n, C]`` (C <= 8 channels, mixed down) or ``[1, n]``; float, or int8/int16/int32/uint8
        PCM scaled to [-1, 1) (the same numbers as ``extract``). NaN/Inf samples are replaced by 0
        and counted in :attr:`nonfinite_samples`. When the model's output or state turns non-finite
        anyway (e.g. overflow on absurd input), the state is started afresh and the step re-run
        (counted in :attr:`state_resets`; zeros if it fails again), so one bad block never
        poisons the blocks after it.

        Returns:
            [n] float32, finite.
        Raises:
            TypeError: not a sample dtype.
            ValueError: a distance outside the model's range, a batch or ambiguous shape, or
                (``aligned``) a block that is not a whole number of units.
        """
        d = float(self.model.check_distance(distance_m)[0])
        if np.size(block) == 0:
            return np.zeros(0, np.float32)
        x2, _ = as_signals(block, allow_batch=False)
        x, bad = sanitize(x2[0])
        if bad:
            if self.nonfinite_samples == 0:
                log.warning("streaming input: %d non-finite samples (NaN/Inf) replaced by 0 "
                            "(further ones only counted)", bad)
            self.nonfinite_samples += bad
        n = len(x)
        if self.aligned and (n % self.unit or len(self._in)):
            raise ValueError(f"aligned streamer needs blocks of whole {self.unit}-sample units, "
                             f"got {n}")
        buf = np.concatenate([self._in, x]) if len(self._in) else x
        usable = len(buf) - len(buf) % self.unit
        outs = [self._out] if len(self._out) else []
        with torch.inference_mode():
            for i in range(0, usable, self.max_step if self.causal else self.unit):
                seg = buf[i:min(usable, i + (self.max_step if self.causal else self.unit))]
                outs.append(self._step(seg, d))
        self._in = buf[usable:].copy()
        out = np.concatenate(outs) if len(outs) > 1 else (outs[0] if outs else np.zeros(0, np.float32))
        res, self._out = out[:n], out[n:].copy()
        if len(res) < n:  # cannot happen with the prefill, kept as a guard
            res = np.concatenate([np.zeros(n - len(res), np.float32), res])
        return np.asarray(res, dtype=np.float32)

    def _step(self, seg: np.ndarray, d: float) -> np.ndarray:
        y = self._model_step(seg, d)
        if np.isfinite(y).all() and (self._state is None or _finite_state(self._state)):
            return y
        self.state_resets += 1
        log.warning("streaming model state turned non-finite; started afresh (reset %d)",
                    self.state_resets)
        self._state = None
        self._hist = np.zeros(0, np.float32)
        y = self._model_step(seg, d)
        if np.isfinite(y).all() and (self._state is None or _finite_state(self._state)):
            return y
        self._state = None
        self._hist = np.zeros(0, np.float32)
        return np.zeros(len(seg), np.float32)

    def _model_step(self, seg: np.ndarray, d: float) -> np.ndarray:
        net, dev = self.model.net, self.model.device
        dt = torch.tensor([d], dtype=torch.float32, device=dev)
        xt = torch.from_numpy(np.ascontiguousarray(seg)).to(dev)[None]
        if self.causal:
            if self._state is None:
                self._state = net.init_state(dt)
            y, self._state = net.step(xt, dt, self._state)
            return y[0].float().cpu().numpy()
        # sliding causal window over a bidirectional net: the window is the last window_frames
        # frames of real input plus this block; the newest samples whose frames are complete
        # (all but the last n_fft - hop) are kept, so the delay matches the causal stream
        win = np.concatenate([self._hist, seg]) if len(self._hist) else seg
        y = net(torch.from_numpy(np.ascontiguousarray(win)).to(dev)[None], dt)[0]
        y = y.float().cpu().numpy()
        lag = self.n_fft - self.hop
        start = len(win) - len(seg) - lag
        out = y[max(0, start): len(win) - lag]
        if start < 0:  # the first block: the look-ahead part is still empty
            out = np.concatenate([np.zeros(-start, np.float32), out])
        keep = self.window_frames * self.hop
        self._hist = win[-keep:] if len(win) > keep else win
        return out


def _finite_state(state) -> bool:
    """True when every floating tensor in a streaming state is finite (the state's own
    ``is_finite()`` when it has one, e.g. ``models.net.StreamState``; else nested dict/list)."""
    if hasattr(state, "is_finite"):
        return bool(state.is_finite())
    if isinstance(state, torch.Tensor):
        if not (state.is_floating_point() or state.is_complex()):
            return True
        return bool(torch.isfinite(state).all())
    if isinstance(state, dict):
        return all(_finite_state(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return all(_finite_state(v) for v in state)
    return True


# ------------------------------------------------------------------------------------- live engine
def _set_thread_nice(nice: int) -> bool:
    """Best effort: set the calling thread's nice value (Linux threads have their own)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), int(nice))
        return True
    except (AttributeError, OSError, PermissionError):
        return False


class _History:
    """The newest ``capacity`` samples of a stream; ``write`` from one thread, ``latest`` from
    another. The lock is held only for the copies (microseconds), never during a computation."""

    def __init__(self, capacity: int):
        self._buf = np.zeros(int(capacity), np.float32)
        self._n = 0
        self._lock = threading.Lock()

    def write(self, x: np.ndarray) -> None:
        cap = len(self._buf)
        x = x[-cap:]
        with self._lock:
            s = self._n % cap
            first = min(len(x), cap - s)
            self._buf[s:s + first] = x[:first]
            if len(x) > first:
                self._buf[:len(x) - first] = x[first:]
            self._n += len(x)

    def latest(self, n: int) -> np.ndarray:
        cap = len(self._buf)
        with self._lock:
            n = int(min(n, cap, self._n))
            s = (self._n - n) % cap
            if s + n <= cap:
                return self._buf[s:s + n].copy()
            return np.concatenate([self._buf[s:], self._buf[:n - (cap - s)]])

    @property
    def total(self) -> int:
        """Samples written since the last :meth:`clear`."""
        return self._n

    def read(self, pos: int, n: int):
        """Up to ``n`` samples from absolute position ``pos``; returns ``(x, start)`` where
        ``start > pos`` when the samples from ``pos`` on were already overwritten."""
        cap = len(self._buf)
        with self._lock:
            start = max(int(pos), self._n - cap, 0)
            n = int(max(0, min(n, self._n - start)))
            s = start % cap
            if s + n <= cap:
                return self._buf[s:s + n].copy(), start
            return np.concatenate([self._buf[s:], self._buf[:n - (cap - s)]]), start

    def clear(self) -> None:
        with self._lock:
            self._n = 0


class LiveEngine:
    """Live extraction: microphone (or a file paced in real time) -> model -> speakers.

    Built on :class:`realtime_tse.audio_io.DuplexStream`: its worker thread calls this engine's
    block processor (the :class:`Streamer`, then bypass / dry-wet / volume), taps feed the distance
    scan and the recorder. The distance scan runs in its own low-priority thread: for causal
    checkpoints :class:`realtime_tse.profile.StreamingScanWorker` (one batched streaming state for
    the query grid, fed with the new input every ``scan_update_s``; the profile covers the last
    ``scan_seconds``), for bidirectional ones :class:`realtime_tse.profile.ScanWorker` (the offline
    model on the last ``scan_seconds`` of input, every cycle).

    Settable from any thread (plain attribute writes): ``distance_m`` (validated; applied within
    one block), ``bypass`` (the dry input, delayed like the extraction, goes out), ``wet``
    (0..1 dry/wet mix), ``volume`` (output gain, 0..2).

    Read-only stats: ``rtf`` (smoothed processing time / block duration), ``xruns``,
    ``algorithmic_latency_ms``, ``device_latency_ms``, ``total_latency_ms`` (algorithmic +
    buffers + device, as the devices report it), ``input_level_db``, ``output_level_db``,
    ``device`` ("cpu"/"cuda"), ``model_sample_rate``, ``device_sample_rate``, ``latest_scan``,
    ``scan_count``, ``scan_rate_hz``, ``scan_skips``, ``error``, ``notice`` (one line, e.g. NaN
    input), ``nonfinite_in``.

    Output safety: every block that goes to the speakers (and so into a recording) passes
    :class:`realtime_tse.safety.OutputGuard` (``output_guard``): NaN/Inf -> 0, a 5 Hz DC blocker
    and a zero-latency peak limiter with a -1 dBFS ceiling; the input's NaN/Inf samples are replaced
    by 0 before the model, the dry path and the scan.

    Args:
        model: a :class:`TSEModel`.
        block_ms: block length (rounded to whole hops).
        input_device / output_device: PortAudio index or name (None = default); output ``"null"``
            = no output device (taps only).
        input_file: a file that stands in for the microphone, paced in real time.
        loop: restart the file at its end.
        distance_m: initial query distance (default: the middle of the model's range).
        scan: run the distance scan; ``scan_seconds`` of audio per scan, query grid
            ``scan_distances_m`` (default ``d_min .. d_max`` in ``scan_step_m`` steps); causal
            models: an update every ``scan_update_s`` of new audio; bidirectional: duty cycle
            ``scan_duty`` (fraction of one core at most).
        torch_threads: intra-op threads for the model on CPU (set process-wide at start; 1 keeps
            the audio worker and the scan on separate cores of a small CPU). None = leave as is.
        audio_nice: nice value asked for the audio worker thread (best effort: lowering it needs
            CAP_SYS_NICE; without it the thread keeps its priority). None = leave as is. The scan
            thread asks for +5 (``ScanWorker.nice``).
        on_error(message), on_scan(ScanResult), on_end(): callbacks from worker threads.
        stream_kwargs: extra keyword arguments for ``DuplexStream`` (device_rate, prefill_blocks,
            latency, ...).
    Raises (constructor): ValueError (bad distance / block), AudioDeviceError (unknown device,
    no PortAudio), ValueError from an unreadable input file.
    """

    def __init__(self, model: TSEModel, block_ms: float = 64, input_device=None,
                 output_device=None, input_file=None, loop: bool = True,
                 distance_m: float | None = None, scan: bool = True, scan_seconds: float = 3.0,
                 scan_step_m: float = 0.5, scan_distances_m=None, scan_duty: float = 0.5,
                 scan_update_s: float = 0.25,
                 torch_threads: int | None = 1, audio_nice: int | None = -10, on_error=None,
                 on_scan=None, on_end=None, **stream_kwargs):
        self.model = model
        self.streamer = Streamer(model, block_ms=block_ms, aligned=True)
        self.block_samples = self.streamer.block_samples
        self._input_device, self._output_device = input_device, output_device
        self.input_file = str(input_file) if input_file is not None else None
        self.loop = bool(loop)
        self._stream_kwargs = dict(stream_kwargs)
        self.torch_threads = torch_threads
        self.audio_nice = audio_nice
        self.on_error = on_error
        self.on_scan = on_scan
        self.on_end = on_end
        lo, hi = model.distance_range
        self._distance = float(self.model.check_distance(
            (lo + hi) / 2 if distance_m is None else distance_m)[0])
        self.bypass = False
        self._wet = 1.0
        self._volume = 1.0
        self.error: str | None = None
        self.notice: str | None = None  # a one-line, non-fatal remark for the status bar / log
        self.nonfinite_in = 0           # NaN/Inf input samples replaced by 0 since start()
        self.output_guard = OutputGuard(model.sample_rate)  # DC blocker + -1 dBFS peak limiter
        self.input_level_db = -120.0
        self.output_level_db = -120.0
        self._rtf = 0.0
        self._blocks = 0
        sr = model.sample_rate
        # dry path delayed like the extraction so that dry/wet mixes line up
        self._dry = np.zeros(self.streamer.delay_samples, np.float32)
        self._recorder = None
        self._rec_tap = None  # the bound method added as a tap (kept: remove_tap compares identity)
        self._rec_lock = threading.Lock()
        self.scan_enabled = bool(scan)
        self.scan_seconds = float(scan_seconds)
        # the streaming scan (causal models) reads new audio from here, up to ~1 s behind; the
        # window scan (bidirectional) the last scan_seconds
        self._history = _History(int(max(self.scan_seconds, 2.0) * sr) + self.block_samples)
        grid = scan_distances_m if scan_distances_m is not None else \
            default_grid(lo, hi, scan_step_m)
        self.scan_distances_m = np.sort(model.check_distance(grid).astype(np.float64))
        self._scanner: StreamingScanWorker | ScanWorker | None = None
        self._scan_duty = scan_duty
        self.scan_update_s = float(scan_update_s)
        self._stream = self._make_stream()  # resolves devices now: errors surface here
        self._started = False

    # -- settable controls -----------------------------------------------------------------------
    @property
    def distance_m(self) -> float:
        return self._distance

    @distance_m.setter
    def distance_m(self, value: float) -> None:
        d = float(self.model.check_distance(value)[0])
        if d != self._distance:
            self._distance = d
            rec = self._recorder
            if rec is not None:
                rec.note_distance(d)

    @property
    def wet(self) -> float:
        return self._wet

    @wet.setter
    def wet(self, value: float) -> None:
        self._wet = min(max(float(value), 0.0), 1.0)

    @property
    def volume(self) -> float:
        return self._volume

    @volume.setter
    def volume(self, value: float) -> None:
        self._volume = min(max(float(value), 0.0), 2.0)

    # -- read-only stats -------------------------------------------------------------------------
    @property
    def rtf(self) -> float:
        """Processing time / block duration, exponentially smoothed (about 1 s)."""
        return self._rtf

    @property
    def xruns(self) -> int:
        return int(self._stream.xruns) if self._stream is not None else 0

    def xrun_events(self) -> list:
        """(device seconds since start, kind) per xrun, from the stream."""
        return self._stream.xrun_events() if self._stream is not None else []

    @property
    def algorithmic_latency_ms(self) -> float:
        """Block + model look-ahead (frame - hop), ms: what the extraction itself adds."""
        return 1e3 * self.streamer.latency_s

    @property
    def device_latency_ms(self) -> float:
        """PortAudio's reported input + output latency, ms (0 without devices)."""
        return 1e3 * self._stream.device_latency_s if self._stream is not None else 0.0

    @property
    def estimated_latency_ms(self) -> float:
        """Input-to-output latency the design implies: capture block, jitter buffer, resampler
        compensation, device latency and the model's look-ahead (ms)."""
        if self._stream is None:
            return float("nan")
        return 1e3 * (self._stream.estimated_latency_s
                      + (self.streamer.n_fft - self.streamer.hop) / self.model.sample_rate)

    @property
    def total_latency_ms(self) -> float:
        """Input-to-output delay, ms, from what the devices report now: the captured audio's age,
        the block, the output queued ahead of the device (jitter buffer), the device's output
        delay (PortAudio ``time_info``) and the model's look-ahead (frame - hop). The
        resamplers' filter delay is not in it; ``benchmarks/results/realtime.json`` sets it beside
        the delay measured by cross-correlation through a null-sink loopback
        (``reported_total_ms`` vs ``delay_ms``). For a file or without an output device: the
        algorithmic latency."""
        st = self._stream
        if st is None or st.mode != "duplex":
            return self.algorithmic_latency_ms
        return 1e3 * (st.live_latency_s + self.streamer.delay_samples / self.model.sample_rate)

    @property
    def device(self) -> str:
        return self.model.device.type

    @property
    def model_sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def device_sample_rate(self) -> int:
        return int(self._stream.device_rate) if self._stream is not None else self.model.sample_rate

    @property
    def latest_scan(self) -> ScanResult | None:
        return self._scanner.latest if self._scanner is not None else None

    @property
    def scan_count(self) -> int:
        return self._scanner.count if self._scanner is not None else 0

    @property
    def scan_rate_hz(self) -> float:
        return self._scanner.rate_hz if self._scanner is not None else 0.0

    @property
    def scan_skips(self) -> int:
        """Times the streaming scan fell behind and skipped to the newest audio (0 for the window
        scan of bidirectional models)."""
        return int(getattr(self._scanner, "skips", 0)) if self._scanner is not None else 0

    @property
    def running(self) -> bool:
        return self._started and self._stream is not None and self._stream.running

    @property
    def stream(self):
        """The underlying :class:`realtime_tse.audio_io.DuplexStream`."""
        return self._stream

    def stats(self) -> dict:
        s = self._stream.stats() if self._stream is not None else {}
        s.update(rtf=self.rtf, distance_m=self.distance_m, bypass=self.bypass, wet=self.wet,
                 volume=self.volume, algorithmic_latency_ms=self.algorithmic_latency_ms,
                 estimated_latency_ms=self.estimated_latency_ms,
                 total_latency_ms=self.total_latency_ms, device=self.device,
                 scan_count=self.scan_count, scan_rate_hz=self.scan_rate_hz,
                 scan_skips=self.scan_skips, nonfinite_in=self.nonfinite_in,
                 state_resets=self.streamer.state_resets,
                 limited_samples=self.output_guard.limiter.limited_samples,
                 limiter_max_db=self.output_guard.limiter.max_reduction_db,
                 model=self.model.name)
        return s

    # -- start / stop ---------------------------------------------------------------------------
    def _make_stream(self):
        from .audio_io import DuplexStream  # noqa: PLC0415
        return DuplexStream(self._process_block, self.model.sample_rate, self.block_samples,
                            input_device=self._input_device, output_device=self._output_device,
                            input_file=self.input_file, loop=self.loop,
                            on_error=self._on_stream_error, on_end=self._on_stream_end,
                            **self._stream_kwargs)

    def start(self) -> "LiveEngine":
        """Start audio (and the distance scan). Raises AudioDeviceError if the device fails."""
        if self.running:
            return self
        fresh = self._started or self._stream is None
        if fresh:
            self._stream = self._make_stream()
        self.error = None
        self.streamer.reset()
        self._dry[:] = 0
        self.output_guard.reset()
        self.nonfinite_in = 0
        self.notice = None
        self._history.clear()
        self._rtf = 0.0
        self._blocks = 0
        if self.torch_threads and self.model.device.type == "cpu":
            torch.set_num_threads(int(self.torch_threads))
        self._stream.add_tap(self._tap)
        rec, tap = self._recorder, self._rec_tap
        if fresh and rec is not None and not rec.closed and tap is not None:
            self._stream.add_tap(tap)  # (start_recording added it to the previous stream)
        self._started = True
        self._stream.start()
        if self.scan_enabled:
            if self.model.causal:
                # in a child process, out of this process's GIL (RTSE_SCAN_PROCESS=0: a thread;
                # it falls back to the thread by itself when no process can start)
                from .scan_process import ScanProcessWorker  # noqa: PLC0415
                self._scanner = ScanProcessWorker(
                    self.model, self._history, window_s=self.scan_seconds,
                    distances_m=self.scan_distances_m, on_result=self.on_scan,
                    update_s=self.scan_update_s, torch_threads=self.torch_threads)
            else:
                self._scanner = ScanWorker(self.model, self._history.latest,
                                           seconds=self.scan_seconds,
                                           distances_m=self.scan_distances_m,
                                           on_result=self.on_scan, duty=self._scan_duty,
                                           torch_threads=self.torch_threads)
            self._scanner.start()
        return self

    def stop(self) -> None:
        """Stop audio and scan; close a recording in progress (the file is kept). Idempotent."""
        sc = self._scanner
        if sc is not None:
            sc._stop.set()  # a scan in progress ends after its current query
        if self._stream is not None:
            self._stream.stop()
        self.stop_recording()
        if sc is not None:
            sc.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the stream ends (non-looping file played out, error, stop())."""
        return self._stream.wait(timeout) if self._stream is not None else True

    def __enter__(self) -> "LiveEngine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- recording -------------------------------------------------------------------------------
    def start_recording(self, path=None, record_input: bool = False):
        """Record the output (what goes to the speakers) at the model rate to ``path`` (default a
        time-stamped WAV in the recordings dir; never overwrites). Returns the Recorder."""
        from .recorder import Recorder, default_recordings_dir  # noqa: PLC0415
        with self._rec_lock:
            if self._recorder is not None and not self._recorder.closed:
                raise RuntimeError(f"already recording to {self._recorder.path}")
            if path is None:
                stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
                path = default_recordings_dir() / f"tse-{stamp}.wav"
            rec = Recorder(path, self.model.sample_rate, model_name=self.model.name,
                           record_input=record_input,
                           extra={"block_ms": self.streamer.block_ms,
                                  "input": self.input_file or str(self._input_device),
                                  "checkpoint": str(self.model.path) if self.model.path else None})
            rec.note_distance(self._distance)
            self._recorder, self._rec_tap = rec, rec.tap
            if self._stream is not None:
                self._stream.add_tap(self._rec_tap)
            return rec

    def stop_recording(self):
        """Stop recording (file and sidecar finalised and kept); returns the Recorder or None."""
        with self._rec_lock:
            rec, self._recorder = self._recorder, None
            tap, self._rec_tap = self._rec_tap, None
        if rec is None:
            return None
        if self._stream is not None and tap is not None:
            self._stream.remove_tap(tap)
        rec.close()
        return rec

    @property
    def recorder(self):
        return self._recorder

    # -- worker side -----------------------------------------------------------------------------
    def _process_block(self, block: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        if self._blocks == 0 and self.audio_nice is not None:
            _set_thread_nice(self.audio_nice)  # the stream's worker thread, once per stream
        block, bad = sanitize(np.asarray(block, dtype=np.float32).reshape(-1))
        if bad:
            self._note_nonfinite(bad)
        y = self.streamer.process(block, self._distance)
        nd = len(self._dry)
        if nd:
            dry = np.concatenate([self._dry, block])
            self._dry = dry[-nd:]
            dry = dry[:len(block)]
        else:
            dry = block
        if self.bypass:
            out = dry
        else:
            w = self._wet
            out = y if w >= 1.0 else w * y + (1.0 - w) * dry
        v = self._volume
        if v != 1.0:
            out = out * v
        out = self.output_guard.process(out)  # finite, no DC, |out| <= the -1 dBFS ceiling
        self.input_level_db = _level_db(block)
        self.output_level_db = _level_db(out)
        dt = time.perf_counter() - t0
        r = dt * self.model.sample_rate / len(block)
        self._blocks += 1
        a = max(0.05, min(1.0, len(block) / self.model.sample_rate))  # ~1 s time constant
        self._rtf = r if self._blocks == 1 else (1 - a) * self._rtf + a * r
        return out

    def _tap(self, inp: np.ndarray, out: np.ndarray) -> None:
        self._history.write(sanitize(inp)[0])

    def _note_nonfinite(self, n: int) -> None:
        """Count NaN/Inf input samples; the first time, log it and set :attr:`notice`."""
        first = self.nonfinite_in == 0
        self.nonfinite_in += int(n)
        if first:
            self.notice = "input has NaN/Inf samples: replaced by silence"
            log.warning("live input: %d non-finite samples (NaN/Inf) replaced by 0 (further "
                        "ones only counted in stats()['nonfinite_in'])", n)

    def _on_stream_error(self, message: str) -> None:
        self.error = message.splitlines()[0] if message else "audio stream failed"
        if self._scanner is not None:
            self._scanner._stop.set()
        try:
            self.stop_recording()
        except Exception:  # noqa: BLE001
            pass
        cb = self.on_error
        if cb is not None:
            try:
                cb(self.error)
            except Exception:  # noqa: BLE001
                pass

    def _on_stream_end(self) -> None:
        if self._scanner is not None:
            self._scanner._stop.set()
        cb = self.on_end
        if cb is not None:
            try:
                cb()
            except Exception:  # noqa: BLE001
                pass
