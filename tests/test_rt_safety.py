"""realtime_tse.safety: the input rule (dtypes, shapes, NaN/Inf) and the output guard (DC blocker,
peak limiter). No model needed."""
from __future__ import annotations

import numpy as np
import pytest

from realtime_tse.safety import (CEILING_DBFS, MAX_CHANNELS, OutputGuard, PeakLimiter, as_signals,
                                 restore_layout, sanitize, to_float)

CEIL = 10 ** (CEILING_DBFS / 20)


def test_integer_pcm_is_scaled_to_unit_range():
    np.testing.assert_array_equal(to_float(np.array([-32768, 0, 16384], np.int16)),
                                  np.array([-1.0, 0.0, 0.5], np.float32))
    np.testing.assert_array_equal(to_float(np.array([-2 ** 31, 2 ** 30], np.int32)),
                                  np.array([-1.0, 0.5], np.float32))
    np.testing.assert_array_equal(to_float(np.array([0, 128, 192], np.uint8)),
                                  np.array([-1.0, 0.0, 0.5], np.float32))
    np.testing.assert_array_equal(to_float(np.array([-128, 64], np.int8)),
                                  np.array([-1.0, 0.5], np.float32))
    f = np.array([0.25, 2.0], np.float64)
    assert to_float(f).dtype == np.float32 and to_float(f)[1] == 2.0  # floats are not rescaled
    for bad in (np.zeros(3, np.int64), np.zeros(3, np.uint16), np.zeros(3, bool),
                np.zeros(3, np.complex64)):
        with pytest.raises(TypeError, match="int16"):
            to_float(bad)


def test_torch_tensors_follow_the_same_rule():
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(to_float(torch.tensor([16384], dtype=torch.int16)), [0.5])
    np.testing.assert_allclose(to_float(torch.tensor([0.5], dtype=torch.bfloat16)), [0.5])


def test_shape_rule():
    x = np.arange(1000, dtype=np.float32).reshape(500, 2)  # soundfile's [frames, channels]
    y, lay = as_signals(x)
    assert lay == "channels" and y.shape == (1, 500)
    np.testing.assert_array_equal(y[0], x.mean(1))
    assert restore_layout(y, lay).shape == (500,)
    y, lay = as_signals(np.zeros((3, 1000), np.float32))
    assert lay == "batch" and y.shape == (3, 1000)
    y, lay = as_signals(np.zeros(700, np.float32))
    assert lay == "mono" and restore_layout(y, lay).shape == (700,)
    assert as_signals(np.zeros((MAX_CHANNELS + 1, MAX_CHANNELS), np.float32))[1] == "channels"
    for amb in [(8, 8), (1000, MAX_CHANNELS + 1), (2, 2)]:
        with pytest.raises(ValueError, match="ambiguous"):
            as_signals(np.zeros(amb, np.float32))
    with pytest.raises(ValueError, match="one signal"):
        as_signals(np.zeros((2, 1000), np.float32), allow_batch=False)
    assert as_signals(np.zeros((1, 1000), np.float32), allow_batch=False)[0].shape == (1, 1000)
    with pytest.raises(ValueError, match=r"\[N\]"):
        as_signals(np.zeros((2, 3, 100), np.float32))
    with pytest.raises(ValueError, match="empty"):
        as_signals(np.zeros((0, 2), np.float32))


def test_sanitize_counts_and_zeroes():
    x = np.array([0.1, np.nan, np.inf, -np.inf, 0.2], np.float32)
    y, n = sanitize(x)
    assert n == 3 and np.isnan(x[1])  # the input is not modified
    np.testing.assert_array_equal(y, np.array([0.1, 0, 0, 0, 0.2], np.float32))
    clean = np.ones(4, np.float32)
    assert sanitize(clean)[0] is clean and sanitize(clean)[1] == 0


def _glitchy(sr=8000, seconds=3.0, seed=0):
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    x = 0.3 * rng.standard_normal(n).astype(np.float32)
    x[rng.integers(0, n, 50)] = rng.choice([-1e3, 40.0, 8.0, -3.0], 50)  # spikes
    x[n // 2:n // 2 + 800] = 1.0  # a full-scale burst
    x[-4000:] *= 2.0  # volume 2
    return x


def test_limiter_never_exceeds_the_ceiling_and_carries_state_across_blocks():
    sr = 8000
    x = _glitchy(sr)
    for block in (128, 512, 1000):
        lim = PeakLimiter(sr)
        y = np.concatenate([lim.process(x[i:i + block]) for i in range(0, len(x), block)])
        assert float(np.max(np.abs(y))) <= CEIL + 1e-7
        assert lim.limited_samples > 0 and lim.max_reduction_db > 60  # the 1e3 spike: ~61 dB
        # block size does not change the result (the reduction is carried over exactly)
        ref = PeakLimiter(sr).process(x)
        np.testing.assert_allclose(y, ref, atol=1e-6)


def test_limiter_passes_quiet_audio_and_releases_at_its_rate():
    sr = 8000
    lim = PeakLimiter(sr)
    q = (0.5 * np.sin(np.arange(800) / 7.0)).astype(np.float32)
    assert lim.process(q) is q and lim.limited_samples == 0
    loud = np.full(10, 2 * CEIL, np.float32)  # needs 6.02 dB
    y = lim.process(loud)
    np.testing.assert_allclose(y, CEIL, rtol=1e-6)
    ones = np.full(sr, 0.1, np.float32)
    y = lim.process(ones)
    # linear release at 60 dB/s: 6.02 dB are gone after about 0.1 s
    t = np.arange(1, sr + 1) / sr
    want_db = np.maximum(0.0, 20 * np.log10(2.0) - 60.0 * t)
    np.testing.assert_allclose(20 * np.log10(0.1 / y), want_db, atol=1e-3)
    with pytest.raises(ValueError):
        PeakLimiter(sr, ceiling_dbfs=1.0)


def test_output_guard_removes_nan_inf_and_dc():
    sr = 8000
    g = OutputGuard(sr)
    x = np.full(sr, 1.0, np.float32)  # full-scale DC
    x[100] = np.nan
    x[200] = np.inf
    y = np.concatenate([g.process(x[i:i + 512]) for i in range(0, len(x), 512)])
    assert np.all(np.isfinite(y)) and float(np.max(np.abs(y))) <= CEIL + 1e-7
    assert g.nonfinite_samples == 2
    assert float(np.max(np.abs(y[sr // 4:]))) < 1e-3  # the DC is gone after 0.25 s
    g.reset()
    assert g.nonfinite_samples == 0 and g.limiter.limited_samples == 0
