"""A low-latency streaming resampler for the live path (:class:`PolyphaseStream`).

Why not soxr here: ``soxr.ResampleStream`` (python-soxr 1.1) buffers internally and hands its
output over in large bursts: fed 4 ms chunks, its output lagged the ideal count by up to 8,192
samples (170 ms) from 8 to 48 kHz and 1,258 samples (157 ms) from 48 to 8 kHz at quality 'HQ'
(2,656 / 321 at 'LQ'). The live stream must cover that lag with silence, so opening a 48 kHz
device for the 8 kHz model measured 540 to 570 ms end to end through a 48 kHz null sink, against
90 to 140 ms with the device opened at 8 kHz (``benchmarks/results/realtime.json``,
``end_to_end_periods_jitter_rate``). This resampler is a plain polyphase FIR filter (Kaiser
window design): every output sample is computed as soon as the input it needs has arrived, so
its only delay is the filter's group delay (:attr:`PolyphaseStream.delay_s`) and its output count
never lags the ideal count by more than one sample. Files are still read with soxr
(:mod:`realtime_tse.audio.file_source`), where bursts do not matter.

Phase: the live path uses the minimum-phase version of the filter (``phase="minimum"``, the
default): the same magnitude response (pass band to 0.9 x the lower Nyquist frequency, 80 dB
rejection from it on), but its energy at the start of the impulse response instead of its middle,
so speech comes through about 0.35 ms late each way (the group delay from 100 Hz to 2 kHz) instead
of the linear-phase filter's 6.3 ms for 8 <-> 48 kHz. What it costs is dispersion near the band
edge: the group delay rises to about 0.7 ms at 3 kHz and 1.5 ms at 3.5 kHz (the linear-phase
filter delays every frequency by 6.3 ms). ``benchmarks/bench_resampler.py``
(``benchmarks/results/resampler.json``) measures both, with the shipped model's extraction of
the demo behind each. Where a constant delay matters more than a short one, ask for
``phase="linear"``.
"""
from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["PolyphaseStream", "PHASES", "prototype"]

PHASES = ("minimum", "linear")
# the band (Hz) whose mean group delay is a minimum-phase filter's stated delay: where speech
# has most of its energy, so what a cross-correlation of speech through the filter finds
_DELAY_BAND_HZ = (100.0, 2000.0)


@functools.lru_cache(maxsize=32)
def prototype(in_rate: int, out_rate: int, passband: float = 0.9, atten_db: float = 80.0,
              phase: str = "minimum") -> tuple[np.ndarray, int, float]:
    """The prototype low-pass filter of :class:`PolyphaseStream` (cached: a stream restart does
    not design it again).

    Args:
        in_rate, out_rate: the rates (Hz, positive integers).
        passband: the pass band's edge as a fraction of the lower Nyquist frequency, in (0, 1);
            the stop band starts at that Nyquist frequency.
        atten_db: the stop band's attenuation (dB).
        phase: ``"linear"`` (Kaiser-windowed sinc, symmetric) or ``"minimum"`` (the same
            magnitude response, minimum phase: ``scipy.signal.minimum_phase``, homomorphic).

    Returns:
        ``(h, L, delay_s)``: the taps ``h`` ([k * L] float64, at ``in_rate * L`` Hz, gain ``L``
        at 0 Hz), the upsampling factor ``L`` and the group delay in seconds (linear: the same
        at every frequency; minimum: the mean over :data:`_DELAY_BAND_HZ`).

    Raises:
        ValueError: a rate not positive, ``passband`` outside (0, 1), an unknown ``phase``.
    """
    in_rate, out_rate = int(in_rate), int(out_rate)
    if in_rate <= 0 or out_rate <= 0:
        raise ValueError(f"rates must be positive, got {in_rate} and {out_rate}")
    if not 0.0 < passband < 1.0:
        raise ValueError(f"passband must be within (0, 1), got {passband}")
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    g = math.gcd(in_rate, out_rate)
    L = out_rate // g
    fs_up = float(in_rate) * L
    edge = 0.5 * min(in_rate, out_rate)  # the lower Nyquist frequency (Hz)
    width = (1.0 - passband) * edge  # transition band below it (Hz)
    # Kaiser's estimates: length for the attenuation over the transition band, and beta
    a = float(atten_db)
    n = int(math.ceil((a - 7.95) / (14.36 * width / fs_up))) + 1
    beta = 0.1102 * (a - 8.7) if a > 50 else 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    k = int(math.ceil(n / L))  # taps per phase
    n = k * L
    t = np.arange(n) - (n - 1) / 2.0
    fc = (edge - 0.5 * width) / fs_up  # cutoff, cycles per upsampled sample
    h = 2.0 * fc * np.sinc(2.0 * fc * t) * np.kaiser(n, beta)
    delay_s = (n - 1) / 2.0 / fs_up
    if phase == "minimum" and n > 1:
        from scipy.signal import group_delay, minimum_phase  # noqa: PLC0415
        # 16x the length: the cepstrum's aliasing stays below the stop band's level
        n_fft = 1 << (int(math.ceil(math.log2(n))) + 4)
        h = minimum_phase(h, method="homomorphic", n_fft=n_fft, half=False)
        h = np.concatenate([h, np.zeros(n - len(h))])[:n]
        hz = np.linspace(*_DELAY_BAND_HZ, 32)
        delay_s = float(np.mean(group_delay((h, [1.0]), w=hz, fs=fs_up)[1])) / fs_up
    h = h * (L / h.sum())  # unity gain after zero-stuffing by L
    h.setflags(write=False)
    return h, L, delay_s


class PolyphaseStream:
    """Streaming rational resampler ``in_rate`` -> ``out_rate`` (Hz, integers) for mono float32.

    The prototype low-pass filter (:func:`prototype`) runs at ``in_rate * L`` (``out_rate /
    in_rate = L / M`` in lowest terms), passes up to ``passband`` x the lower Nyquist frequency,
    and reaches ``atten_db`` of stop-band attenuation at the lower Nyquist frequency (Kaiser
    window design), with ``phase`` ``"minimum"`` (the default: a short delay) or ``"linear"``.
    ``resample_chunk`` takes any number of samples and returns every output sample whose input
    has arrived:
    after ``n`` input samples in all, ``ceil(n * L / M)`` output samples in all (the start is
    primed with zeros, so the first outputs are the filter's fade-in).

    Attributes:
        delay_s: the filter's group delay (seconds): the same at every frequency with linear
            phase; with minimum phase its mean from 100 Hz to 2 kHz (where speech's energy is).
        taps: filter taps per output sample.
        phase: ``"minimum"`` or ``"linear"``.

    Raises:
        ValueError: a rate not positive, ``passband`` outside (0, 1), an unknown ``phase``.
    """

    def __init__(self, in_rate: int, out_rate: int, passband: float = 0.9,
                 atten_db: float = 80.0, phase: str = "minimum"):
        in_rate, out_rate = int(in_rate), int(out_rate)
        h, L, delay_s = prototype(in_rate, out_rate, float(passband), float(atten_db), phase)
        g = math.gcd(in_rate, out_rate)
        self.in_rate, self.out_rate, self.phase = in_rate, out_rate, phase
        self.L, self.M = L, in_rate // g
        k = len(h) // L
        # phase p, tap j: h[p + j * L] (applied to x[n0 - j])
        self._poly = np.ascontiguousarray(h.reshape(k, L).T, dtype=np.float64)
        self.taps = k
        self.delay_s = delay_s
        self._buf = np.zeros(k - 1, np.float64)  # the last k - 1 inputs (zeros before the start)
        self._n_in = 0   # input samples received in all
        self._j = 0      # next output sample (global index)
        self._back = np.arange(k)[None, :]

    def resample_chunk(self, x: np.ndarray) -> np.ndarray:
        """Resample the next ``x`` (1-D, any length, float) and return the output samples it
        completes (float32, 1-D; possibly empty)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        k = self.taps
        buf = np.concatenate([self._buf, x])  # buf[i] is input sample (n_in - k + 1 + i)
        self._n_in += len(x)
        # outputs j whose newest input floor(j * M / L) has arrived: j * M < n_in * L
        j_end = (self._n_in * self.L + self.M - 1) // self.M
        if j_end > self._j:
            js = np.arange(self._j, j_end, dtype=np.int64)
            t = js * self.M
            n0, p = t // self.L, t % self.L
            base = self._n_in - len(buf)  # input index of buf[0]
            idx = (n0 - base)[:, None] - self._back  # n0 - j for each tap j
            y = np.einsum("ij,ij->i", buf[idx], self._poly[p])
            self._j = int(j_end)
        else:
            y = np.zeros(0)
        self._buf = buf[len(buf) - (k - 1):] if k > 1 else buf[:0]
        return y.astype(np.float32)
