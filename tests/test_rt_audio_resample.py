"""PolyphaseStream (realtime_tse/audio/resample.py): the live path's low-latency resampler.
Exact output counts, chunking that does not change the output, unity gain with the stated delay,
stop-band attenuation, and the live stream's start-up compensation it implies. No timing."""
from __future__ import annotations

import math

import numpy as np
import pytest

from realtime_tse.audio.base import _resampler_lag
from realtime_tse.audio.resample import PolyphaseStream

RATES = [(8000, 48000), (48000, 8000), (8000, 44100), (44100, 8000), (16000, 8000),
         (8000, 16000), (16000, 48000)]


def _tone(rate: int, hz: float, seconds: float) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate).astype(np.float32)


@pytest.mark.parametrize("a,b", RATES)
def test_counts_and_chunking(a, b):
    x = np.random.default_rng(1).standard_normal(int(0.5 * a)).astype(np.float32)
    whole = PolyphaseStream(a, b).resample_chunk(x)
    assert len(whole) == math.ceil(len(x) * b / a)
    r = PolyphaseStream(a, b)
    parts, i, total = [], 0, 0
    for n in np.random.default_rng(2).integers(0, 400, 10_000):
        if i >= len(x):
            break
        y = r.resample_chunk(x[i:i + n])
        i += n
        total += len(y)
        assert total == math.ceil(min(i, len(x)) * b / a)  # every sample as soon as it can be
        parts.append(y)
    chunked = np.concatenate(parts)
    assert chunked.dtype == np.float32
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


@pytest.mark.parametrize("a,b", RATES)
def test_tone_keeps_its_level_and_is_delayed_by_delay_s(a, b):
    r = PolyphaseStream(a, b)
    y = r.resample_chunk(_tone(a, 1000.0, 1.0))
    t = np.arange(len(y)) / b - r.delay_s
    ref = np.sin(2 * np.pi * 1000.0 * t)
    core = slice(int(0.05 * b), len(y))
    err = np.sqrt(np.mean((y[core] - ref[core]) ** 2))
    assert err < 1e-3  # -60 dB: gain 1 and the delay exactly as stated
    assert 0.001 < r.delay_s < 0.010  # a few ms, not soxr's bursts (up to 170 ms)


@pytest.mark.parametrize("a,b,hz", [(48000, 8000, 6000.0), (44100, 8000, 5000.0),
                                    (16000, 8000, 4600.0)])
def test_down_sampling_removes_what_would_alias(a, b, hz):
    y = PolyphaseStream(a, b).resample_chunk(_tone(a, hz, 1.0))[int(0.05 * b):]
    assert 20 * np.log10(np.sqrt(np.mean(y ** 2)) / np.sqrt(0.5)) < -60.0


@pytest.mark.parametrize("a,b,hz", [(8000, 48000, 1000.0), (8000, 44100, 3000.0)])
def test_up_sampling_leaves_no_images(a, b, hz):
    """Zero-stuffing makes images at k * a +- hz: the filter must remove them (in-band tone
    subtracted, what is left is more than 60 dB down)."""
    r = PolyphaseStream(a, b)
    y = r.resample_chunk(_tone(a, hz, 1.0)).astype(np.float64)
    t = np.arange(len(y)) / b - r.delay_s
    core = slice(int(0.05 * b), len(y))
    rest = y[core] - np.sin(2 * np.pi * hz * t[core])
    assert 20 * np.log10(np.sqrt(np.mean(rest ** 2)) / np.sqrt(0.5)) < -60.0


def test_live_stream_compensation_is_at_most_a_sample():
    # device periods of 4 ms at 48 kHz into an 8 kHz model, and 32 ms blocks back out
    assert _resampler_lag(48000, 8000, 192)[0] <= 1
    assert _resampler_lag(8000, 48000, 256)[0] <= 1
    assert _resampler_lag(44100, 8000, 176)[0] <= 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        PolyphaseStream(0, 8000)
    with pytest.raises(ValueError, match="passband"):
        PolyphaseStream(8000, 16000, passband=1.2)
    y = PolyphaseStream(8000, 8000).resample_chunk(np.ones(100, np.float32))
    assert len(y) == 100 and abs(float(y[-1]) - 1.0) < 1e-3  # same rate: a delayed copy
