"""A low-latency streaming resampler for the live path (:class:`PolyphaseStream`).

Why not soxr here: ``soxr.ResampleStream`` (python-soxr 1.1) buffers internally and hands its
output over in large bursts: fed 4 ms chunks, its output lagged the ideal count by up to 8,192
samples (170 ms) from 8 to 48 kHz and 1,258 samples (157 ms) from 48 to 8 kHz at quality 'HQ'
(2,656 / 321 at 'LQ'). The live stream must cover that lag with silence, so opening a 48 kHz
device for the 8 kHz model measured 540 to 570 ms end to end through a 48 kHz null sink, against
90 to 140 ms with the device opened at 8 kHz (``benchmarks/results/realtime.json``,
``end_to_end_periods_jitter_rate``). This resampler is a plain polyphase FIR filter (Kaiser window): every
output sample is computed as soon as the input it needs has arrived, so its only delay is the
filter's group delay (:attr:`PolyphaseStream.delay_s`, 3 ms for 8 <-> 48 kHz) and its output
count never lags the ideal count by more than one sample. Files are still read with soxr
(:mod:`realtime_tse.audio.file_source`), where bursts do not matter.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["PolyphaseStream"]


class PolyphaseStream:
    """Streaming rational resampler ``in_rate`` -> ``out_rate`` (Hz, integers) for mono float32.

    The prototype low-pass filter runs at ``in_rate * L`` (``out_rate / in_rate = L / M`` in lowest
    terms), passes up to ``passband`` x the lower Nyquist frequency, and reaches ``atten_db`` of
    stop-band attenuation at the lower Nyquist frequency (Kaiser window design). ``resample_chunk``
    takes any number of samples and returns every output sample whose input has arrived:
    after ``n`` input samples in all, ``ceil(n * L / M)`` output samples in all (the start is
    primed with zeros, so the first outputs are the filter's fade-in).

    Attributes:
        delay_s: the filter's group delay (seconds), the same at every frequency (linear phase).
        taps: filter taps per output sample.
    """

    def __init__(self, in_rate: int, out_rate: int, passband: float = 0.9,
                 atten_db: float = 80.0):
        in_rate, out_rate = int(in_rate), int(out_rate)
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"rates must be positive, got {in_rate} and {out_rate}")
        if not 0.0 < passband < 1.0:
            raise ValueError(f"passband must be within (0, 1), got {passband}")
        g = math.gcd(in_rate, out_rate)
        self.in_rate, self.out_rate = in_rate, out_rate
        self.L, self.M = out_rate // g, in_rate // g
        L, M = self.L, self.M
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
        h *= L / h.sum()  # unity gain after zero-stuffing by L
        # phase p, tap j: h[p + j * L] (applied to x[n0 - j])
        self._poly = np.ascontiguousarray(h.reshape(k, L).T, dtype=np.float64)
        self.taps = k
        self.delay_s = (n - 1) / 2.0 / fs_up
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
