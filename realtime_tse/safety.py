"""What audio may go into the engine, and what may come out of it.

Input rule (one rule for ``TSEModel.extract``, ``TSEModel.scan`` and ``Streamer.process``)
-------------------------------------------------------------------------------------------
Samples:
    float16/32/64 are taken as they are (full scale = 1.0); integer PCM is scaled to [-1, 1):
    int8 / int16 / int32 divide by 2**7 / 2**15 / 2**31, uint8 (8-bit WAV) is ``(a - 128) / 128``.
    Other dtypes (int64 from a list of Python ints, uint16, bool, complex, object) raise
    ``TypeError``: they are not a sample format, and guessing a scale would be wrong.
    NaN and +-Inf samples are replaced by 0 (silence) and counted (:func:`sanitize`).
Shapes:
    ``[N]``: one mono signal.
    ``[N, C]`` with ``C <= MAX_CHANNELS`` (8) and ``N > C``: N frames of C channels, the layout
    ``soundfile.read`` returns; mixed down to mono by averaging the channels (as the CLI does).
    ``[B, N]`` with ``B < N`` (and not the case above): B signals of N samples each, a batch;
    only ``extract`` takes batches (``scan`` and ``Streamer.process`` take ``B = 1``).
    Anything else raises ``ValueError`` (ambiguous, e.g. ``[8, 8]`` or ``[1000, 16]``; or more than
    two dimensions). Channels-first audio (``[C, N]``, torchaudio's layout) is therefore a batch of
    C signals: mix it down (``x.mean(0)``) or transpose it (``x.T``) to get one signal.
    No shape makes the engine allocate more than the input's size times a constant: long inputs
    and batches are processed in bounded chunks (``TSEModel.max_chunk_s``).

Output safety (the live path: speakers and recordings)
------------------------------------------------------
:class:`OutputGuard` puts every output block through: non-finite samples -> 0, a DC blocker
(first-order high-pass at ``DC_CUTOFF_HZ`` = 5 Hz, so no constant offset reaches the speakers), and
a peak limiter with ceiling ``CEILING_DBFS`` = -1 dBFS (|sample| <= 0.891): zero look-ahead
(adds no latency), instant attack (the gain drops on the sample that would exceed the ceiling),
linear release of ``RELEASE_DB_PER_S`` = 60 dB/s. Below the ceiling, with no gain reduction
pending, the limiter passes samples unchanged.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["MAX_CHANNELS", "CEILING_DBFS", "RELEASE_DB_PER_S", "DC_CUTOFF_HZ", "to_float",
           "sanitize", "as_signals", "restore_layout", "PeakLimiter", "OutputGuard"]

MAX_CHANNELS = 8          # most channels a [N, C] array may have to count as multichannel audio
CEILING_DBFS = -1.0       # peak ceiling of the live output and the recordings, dBFS
RELEASE_DB_PER_S = 60.0   # limiter release, dB per second
DC_CUTOFF_HZ = 5.0        # DC blocker corner frequency, Hz

_PCM_SCALE = {("i", 1): 2.0 ** 7, ("i", 2): 2.0 ** 15, ("i", 4): 2.0 ** 31, ("u", 1): 128.0}


def to_float(a) -> np.ndarray:
    """Samples -> float32 numpy by the input rule's sample part (module docstring).

    Args:
        a: numpy array, torch tensor (any device; detached) or nested list, any shape.
    Returns:
        float32 array of the same shape (a view when ``a`` is already float32 numpy).
    Raises:
        TypeError: a dtype that is not a sample format (int64, uint16, bool, complex, object...).
    """
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch tensor, without importing torch
        a = a.detach().cpu()
        if a.is_floating_point() and a.dtype.itemsize < 4:  # bfloat16 has no numpy twin
            a = a.float()
        a = a.numpy()
    a = np.asarray(a)
    kind, size = a.dtype.kind, a.dtype.itemsize
    if kind == "f":
        return a.astype(np.float32, copy=False)
    scale = _PCM_SCALE.get((kind, size))
    if scale is None:
        raise TypeError(f"audio samples must be float, or int8/int16/int32/uint8 PCM; got dtype "
                        f"{a.dtype} (convert to float in [-1, 1] first)")
    y = a.astype(np.float32)
    if kind == "u":
        y -= scale
    y *= np.float32(1.0 / scale)
    return y


def sanitize(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Replace NaN and +-Inf samples by 0.

    Args:
        x: float array, any shape.
    Returns:
        ``(clean, n_bad)``: ``x`` itself when every sample is finite (``n_bad = 0``), else a copy
        with the ``n_bad`` non-finite samples set to 0.
    """
    finite = np.isfinite(x)
    if finite.all():
        return x, 0
    n_bad = int(finite.size - np.count_nonzero(finite))
    return np.where(finite, x, 0).astype(x.dtype, copy=False), n_bad


def as_signals(a, allow_batch: bool = True) -> tuple[np.ndarray, str]:
    """Apply the input rule (module docstring): samples to float32, shape to ``[B, N]`` signals.

    Args:
        a: audio in any accepted dtype and shape.
        allow_batch: False for callers that take one signal (``[B, N]`` with ``B > 1`` refused).
    Returns:
        ``(x, layout)``: ``x`` float32 ``[B, N]`` (``B = 1`` unless a batch), non-finite samples
        NOT yet replaced (see :func:`sanitize`); ``layout`` is ``"mono"`` ([N] in),
        ``"channels"`` ([N, C] in, mixed down) or ``"batch"`` ([B, N] in).
    Raises:
        TypeError: not a sample dtype.
        ValueError: more than 2 dimensions, an ambiguous 2-D shape, a batch where one signal is
            expected, or no samples.
    """
    shape = tuple(np.shape(a)) if not hasattr(a, "shape") else tuple(a.shape)
    if len(shape) > 2:
        raise ValueError(f"audio must be [N], [N, C] (C <= {MAX_CHANNELS} channels) or [B, N]; "
                         f"got shape {shape}")
    x = to_float(a)
    if x.size == 0:
        raise ValueError(f"audio is empty (shape {shape})")
    if x.ndim <= 1:
        return x.reshape(1, -1), "mono"
    rows, cols = x.shape
    if cols <= MAX_CHANNELS and rows > cols:
        mono = x[:, 0].copy() if cols == 1 else x.mean(axis=1, dtype=np.float32)
        return mono.reshape(1, -1), "channels"
    if rows < cols:
        if rows > 1 and not allow_batch:
            raise ValueError(
                f"this takes one signal: [N] or [N, C] with C <= {MAX_CHANNELS}; got {shape}, a "
                f"batch of {rows} signals (channels-first audio? pass x.mean(0) or x.T)")
        return x, "batch"
    raise ValueError(
        f"ambiguous audio shape {shape}: use [N] mono, [N, C] frames x channels with "
        f"C <= {MAX_CHANNELS} and N > C, or [B, N] signals with B < N")


def restore_layout(y: np.ndarray, layout: str) -> np.ndarray:
    """Output ``[B, N]`` -> the caller's layout: ``[N]`` for "mono" and "channels" (the
    extraction is mono), ``[B, N]`` for "batch"."""
    return y[0] if layout in ("mono", "channels") else y


def db_to_gain(db: float) -> float:
    """dB -> linear amplitude factor."""
    return 10.0 ** (db / 20.0)


class PeakLimiter:
    """Zero-latency peak limiter: ``|out| <= 10**(ceiling_dbfs / 20)`` for every sample.

    The gain reduction ``A[n]`` (dB, >= 0) follows the reduction each sample needs,
    ``T[n] = max(0, 20 log10(|x[n]| / ceiling))``, at once when it rises and falls back at
    ``release_db_per_s`` when it drops: ``A[n] = max(T[n], A[n-1] - r)``, computed for a whole block
    with one running maximum. Output ``x[n] * 10**(-A[n] / 20)``, then clipped to the ceiling
    against float rounding. State (the pending reduction) carries across blocks.

    Args:
        sample_rate: Hz.
        ceiling_dbfs: the peak ceiling, dBFS (<= 0).
        release_db_per_s: release rate, dB per second (> 0).
    Attributes:
        limited_samples: samples whose gain was reduced since :meth:`reset`.
        max_reduction_db: largest gain reduction since :meth:`reset`, dB.
    Raises:
        ValueError: ceiling above 0 dBFS, or a release rate <= 0.
    """

    def __init__(self, sample_rate: int, ceiling_dbfs: float = CEILING_DBFS,
                 release_db_per_s: float = RELEASE_DB_PER_S):
        if ceiling_dbfs > 0:
            raise ValueError(f"limiter ceiling must be <= 0 dBFS, got {ceiling_dbfs}")
        if release_db_per_s <= 0:
            raise ValueError(f"limiter release must be > 0 dB/s, got {release_db_per_s}")
        self.ceiling_dbfs = float(ceiling_dbfs)
        self.ceiling = db_to_gain(self.ceiling_dbfs)
        self.release_db_per_sample = float(release_db_per_s) / float(sample_rate)
        self.reset()

    def reset(self) -> None:
        """No gain reduction pending; counters to 0."""
        self._a = 0.0
        self.limited_samples = 0
        self.max_reduction_db = 0.0

    def process(self, x: np.ndarray) -> np.ndarray:
        """Limit one block ``x`` ([n] float32, finite) -> [n] float32 (``x`` itself when nothing
        needs limiting)."""
        n = len(x)
        if n == 0:
            return x
        peak = float(np.max(np.abs(x)))
        if self._a <= 0.0 and peak <= self.ceiling:
            return x
        r = self.release_db_per_sample
        need = 20.0 * np.log10(np.maximum(np.abs(x.astype(np.float64)), 1e-30) / self.ceiling)
        np.maximum(need, 0.0, out=need)
        k = np.arange(n, dtype=np.float64)
        red = np.maximum.accumulate(need + r * k) - r * k          # max_k<=n (T[k] - r (n - k))
        red = np.maximum(red, self._a - r * (k + 1.0))             # the reduction carried in
        np.maximum(red, 0.0, out=red)
        self._a = float(red[-1])
        on = red > 0
        self.limited_samples += int(np.count_nonzero(on))
        self.max_reduction_db = max(self.max_reduction_db, float(red.max()))
        y = (x * np.power(10.0, -red / 20.0)).astype(np.float32)
        np.clip(y, -self.ceiling, self.ceiling, out=y)
        return y


class OutputGuard:
    """Everything that goes to the speakers or into a recording passes here (module docstring):
    non-finite -> 0, DC blocker, :class:`PeakLimiter`. One instance per stream (it has state).

    Args:
        sample_rate: Hz.
        ceiling_dbfs: limiter ceiling, dBFS.
        dc_cutoff_hz: DC blocker corner, Hz (0 disables it).
    Attributes:
        nonfinite_samples: NaN/Inf output samples replaced by 0 since :meth:`reset`.
        limiter: the :class:`PeakLimiter` (its ``limited_samples`` and ``max_reduction_db``).
    """

    def __init__(self, sample_rate: int, ceiling_dbfs: float = CEILING_DBFS,
                 dc_cutoff_hz: float = DC_CUTOFF_HZ):
        self.sample_rate = int(sample_rate)
        self.limiter = PeakLimiter(self.sample_rate, ceiling_dbfs)
        self.dc_cutoff_hz = float(dc_cutoff_hz)
        # y[n] = x[n] - x[n-1] + R y[n-1]; R = exp(-2 pi fc / sr)
        self._r = math.exp(-2.0 * math.pi * self.dc_cutoff_hz / self.sample_rate) \
            if self.dc_cutoff_hz > 0 else None
        if self._r is not None:
            from scipy.signal import lfilter  # noqa: PLC0415
            self._lfilter = lfilter
        self.reset()

    @property
    def ceiling(self) -> float:
        """Peak ceiling as a linear amplitude."""
        return self.limiter.ceiling

    def reset(self) -> None:
        """Fresh filter and limiter state; counters to 0."""
        self.limiter.reset()
        self.nonfinite_samples = 0
        self._zi = np.zeros(1, np.float64)

    def process(self, x) -> np.ndarray:
        """One output block ([n] float) -> [n] float32, finite, ``|y| <= ceiling``."""
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        x, bad = sanitize(x)
        self.nonfinite_samples += bad
        if self._r is not None and len(x):
            y, self._zi = self._lfilter([1.0, -1.0], [1.0, -self._r], x.astype(np.float64),
                                  zi=self._zi)
            x = y.astype(np.float32)
        return self.limiter.process(x)
