"""Block-wise streaming extraction with carried state (:class:`Streamer`, from ``TSEModel.stream``).

Latency, measured in samples (``Streamer.delay_samples``): ``process()`` output equals the offline
``extract()`` output delayed by ``delay_samples``. For a causal checkpoint that is
``n_fft - hop`` (the model's own look-ahead: a hop of output is final once the next frame has
arrived) plus ``hop`` of internal buffering so that blocks of any length can be accepted
(``aligned=True`` drops it for callers that always pass whole hops, as the live engine does).
``Streamer.latency_s`` is the algorithmic latency, block + frame - hop
(:meth:`realtime_tse.models.config.ModelConfig.algorithmic_latency_s`, the one definition the engine, the CLI and
the window report). An aligned streamer's output lags the offline output by exactly the look-ahead
(frame - hop); one that accepts blocks of any length holds one more hop back (``delay_samples``).

Bidirectional checkpoints (preset ``paper``) stream through a sliding causal window: each block of
``block_samples`` is processed together with the last ``window_frames`` frames of input, and the
newest finished samples are kept (slower; it lets a user hear the paper model).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

from .live_config import DEFAULT_BLOCK_MS
from .modes import check_mode
from .safety import as_signals, sanitize

if TYPE_CHECKING:
    from .model import TSEModel

__all__ = ["Streamer", "DEFAULT_BLOCK_MS"]

log = logging.getLogger(__name__)


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
        dry: the input of the last :meth:`process` call delayed like its output ([n] float32): what
            a dry/wet mix or a bypass plays beside the output, sample-aligned.
        latency_s: the algorithmic latency ``(block_samples + n_fft - hop) / sr`` (s).
        nonfinite_samples: NaN/Inf input samples replaced by 0 since construction.
        state_resets: times the model state turned non-finite and was started afresh.
        reprimes: model steps whose query distance differed from the step before (each re-runs
            the last ``reprime_frames`` frames: at most one per ``process`` call of up to
            ``max_step`` samples, whatever the rate of changes between calls).
    """

    def __init__(self, model: "TSEModel", block_ms: float = DEFAULT_BLOCK_MS, aligned: bool = False,
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
        self.reprimes = 0
        self.reset()

    @property
    def latency_s(self) -> float:
        """The algorithmic latency in seconds: the block plus the model's look-ahead (frame - hop),
        :meth:`realtime_tse.models.config.ModelConfig.algorithmic_latency_s`."""
        return self.model.config.algorithmic_latency_s(self.block_samples)

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
        self._dry = np.zeros(self.delay_samples, np.float32)  # the input, delayed like the output
        self.dry = np.zeros(0, np.float32)

    def process(self, block, distance_m, mode: str = "extract") -> np.ndarray:
        """Feed ``block`` at the model rate with query ``distance_m`` (metres).

        ``mode`` (:mod:`realtime_tse.modes`): ``"extract"`` returns the talkers at the distance,
        ``"suppress"`` the input delayed by :attr:`delay_samples` minus that extraction (everyone
        else), sample-exactly aligned; the mode may change from one call to the next.

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
        mode = check_mode(mode)
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
        dry = np.concatenate([self._dry, x.astype(np.float32, copy=False)])
        self.dry, self._dry = dry[:n], dry[n:].copy()
        if mode == "suppress":
            res = self.dry - res
        return np.asarray(res, dtype=np.float32)

    def _step(self, seg: np.ndarray, d: float) -> np.ndarray:
        if self._d is not None and d != self._d and self._state is not None:
            self.reprimes += 1
        self._d = d
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
    ``is_finite()`` when it has one, e.g. ``realtime_tse.models.net.StreamState``; else nested dict/list)."""
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
