"""realtime_tse.streamer.Streamer: streaming equals offline delayed, any block length, aligned blocks,
distance changes, the sliding window of bidirectional models, NaN input and non-finite state."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_fixtures import pulse_null_sink  # noqa: E402,F401
from rt_fixtures import (DEMO_DIR, DEMO_MIX, SHIPPED, demo_at, demo_model_rate,  # noqa: E402,F401
                         model, one_torch_thread, rand_ckpt)

from realtime_tse.model import load_model  # noqa: E402
from realtime_tse.streamer import Streamer  # noqa: E402


def _rel_err(a, b):
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))


# ------------------------------------------------------------------------------------ streaming
@pytest.mark.parametrize("block_ms", [16, 64])
def test_streaming_equals_offline_delayed(model, demo_model_rate, block_ms):
    x = demo_model_rate[: 4 * model.sample_rate]
    y = model.extract(x, 1.0)
    s = model.stream(block_ms=block_ms)
    assert isinstance(s, Streamer)
    B = s.block_samples
    assert B % model.config.hop == 0 and abs(B / model.sample_rate * 1e3 - block_ms) <= 8
    out = np.concatenate([s.process(x[i:i + B], 1.0) for i in range(0, len(x), B)])
    assert out.shape == x.shape and out.dtype == np.float32
    D = s.delay_samples
    assert D == model.config.n_fft  # hop of buffering + the model's look-ahead (n_fft - hop)
    # the algorithmic latency: block + frame - hop (this streamer buffers one hop more)
    assert s.latency_s == pytest.approx((B + model.config.n_fft - model.config.hop) / model.sample_rate)
    assert np.all(out[:s.prefill] == 0) and np.max(np.abs(out[:D])) < 1e-4 * np.max(np.abs(y))
    assert _rel_err(out[D:], y[:len(x) - D]) < 1e-4


def test_streaming_any_block_length(model, demo_model_rate):
    x = demo_model_rate[: 2 * model.sample_rate]
    y = model.extract(x, 2.5)
    s = model.stream(block_ms=64)
    rng = np.random.default_rng(0)
    outs, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 700))
        o = s.process(x[i:i + n], 2.5)
        assert len(o) == len(x[i:i + n])
        outs.append(o)
        i += n
    out = np.concatenate(outs)
    D = s.delay_samples
    assert _rel_err(out[D:], y[:len(x) - D]) < 1e-4
    s.reset()
    out2 = np.concatenate([s.process(x[i:i + 512], 2.5) for i in range(0, len(x), 512)])
    assert _rel_err(out2[D:], y[:len(x) - D]) < 1e-4


def test_aligned_streamer_has_no_buffering_delay(model, demo_model_rate):
    x = demo_model_rate[: model.sample_rate]
    y = model.extract(x, 1.0)
    s = model.stream(block_ms=32, aligned=True)
    D = s.delay_samples
    assert D == model.config.n_fft - model.config.hop
    B = s.block_samples
    out = np.concatenate([s.process(x[i:i + B], 1.0) for i in range(0, len(x) - len(x) % B, B)])
    assert _rel_err(out[D:], y[:len(out) - D]) < 1e-4
    with pytest.raises(ValueError, match="aligned"):
        s.process(np.zeros(B + 1, np.float32), 1.0)


def test_distance_change_takes_effect_in_the_next_block(model, demo_model_rate):
    x = demo_model_rate[: 2 * model.sample_rate]
    s_same, s_change, s_ref = (model.stream(block_ms=64) for _ in range(3))
    B, D = s_same.block_samples, s_same.delay_samples
    k = (len(x) // B) // 2
    for i in range(k):
        blk = x[i * B:(i + 1) * B]
        s_same.process(blk, 1.0)
        s_change.process(blk, 1.0)
        s_ref.process(blk, 4.0)  # a stream at 4 m all along

    def rel(a, b):
        return float(np.sum((a - b) ** 2) / np.sum(b ** 2))

    # the block that carries the change: its output past the delay (the samples computed from
    # this block's frames) moves away from the 1 m stream, towards the 4 m stream
    blk = x[k * B:(k + 1) * B]
    o_same, o_change, o_ref = s_same.process(blk, 1.0), s_change.process(blk, 4.0), \
        s_ref.process(blk, 4.0)
    changed, to_ref = rel(o_change[D:], o_same[D:]), rel(o_change[D:], o_ref[D:])
    assert changed > 1e-4 and to_ref < changed, (changed, to_ref)
    # the next block is the 4 m stream (re-primed state), not the 1 m one
    blk = x[(k + 1) * B:(k + 2) * B]
    o_same, o_change, o_ref = s_same.process(blk, 1.0), s_change.process(blk, 4.0), \
        s_ref.process(blk, 4.0)
    changed, to_ref = rel(o_change, o_same), rel(o_change, o_ref)
    assert changed > 1e-4 and to_ref < 0.1 * changed, (changed, to_ref)
    with pytest.raises(ValueError, match="range"):
        s_change.process(blk, 12.0)


def test_sliding_window_for_bidirectional_models(tmp_path):
    from realtime_tse.models import ModelConfig, build_model
    from realtime_tse.models.checkpoint import save_checkpoint
    torch.manual_seed(0)
    cfg = ModelConfig.preset("paper", sample_rate=8000, n_fft=256, hop=128, d_model=8, hidden=8,
                             n_dq=1, n_ts=1)
    p = save_checkpoint(tmp_path / "tiny-paper.safetensors", build_model(cfg).eval())
    m = load_model(p, device="cpu")
    assert not m.causal
    x = demo_at(8000, 1.0)
    y = m.extract(x, 1.0)
    # a window that holds the whole signal: the last block is the offline output itself
    s = m.stream(block_ms=64, window_frames=200, aligned=True)
    B = s.block_samples
    n = len(x) - len(x) % B
    x, y = x[:n], m.extract(x[:n], 1.0)
    out = np.concatenate([s.process(x[i:i + B], 1.0) for i in range(0, n, B)])
    D = s.delay_samples
    assert D == cfg.n_fft - cfg.hop and out.shape == x.shape
    assert _rel_err(out[-B:], y[n - B - D:n - D]) < 1e-4
    # earlier blocks saw only the past (the model is bidirectional): close, not equal
    c = np.corrcoef(out[D:], y[:n - D])[0, 1]
    assert c > 0.5, c
    # the default window, any block length
    s2 = m.stream(block_ms=64)
    assert s2.delay_samples == B + D
    out2 = np.concatenate([s2.process(x[i:i + 300], 1.0) for i in range(0, n, 300)])
    assert out2.shape == x.shape and np.all(np.isfinite(out2))
    c = np.corrcoef(out2[B + D:], y[:n - B - D])[0, 1]
    assert c > 0.5, c
    # long offline input of a bidirectional model: overlapping chunks, cross-faded
    x3 = demo_at(8000, 5.0)
    y3 = m.extract(x3, 2.0)
    m.max_chunk_s = 0.5  # 2 s chunks (the floor), 0.5 s overlaps
    y3c = m.extract(x3, 2.0)
    assert y3c.shape == x3.shape and np.all(np.isfinite(y3c))
    assert np.corrcoef(y3c, y3)[0, 1] > 0.8  # each chunk has its own global norm


# ------------------------------------------------------------------------------------ NaN / state
def test_nan_block_does_not_poison_the_stream(model, demo_model_rate):
    B = 512
    x = demo_model_rate[: 8 * B].copy()
    bad = x.copy()
    bad[B + 7] = np.nan
    bad[B + 9] = np.inf
    clean = bad.copy()
    clean[B + 7] = clean[B + 9] = 0.0
    s, ref = model.stream(block_ms=64), model.stream(block_ms=64)
    y = np.concatenate([s.process(bad[i:i + B], 1.0) for i in range(0, len(x), B)])
    want = np.concatenate([ref.process(clean[i:i + B], 1.0) for i in range(0, len(x), B)])
    assert np.all(np.isfinite(y)) and s.nonfinite_samples == 2
    np.testing.assert_allclose(y, want, atol=1e-6)
    assert float(np.sqrt(np.mean(y[-B:] ** 2))) > 1e-4  # still extracting, not silence


def test_non_finite_state_is_reset_to_a_fresh_stream(model, demo_model_rate):
    B = 512
    x = demo_model_rate[: 8 * B]
    s = model.stream(block_ms=64, aligned=True)
    for i in range(0, 3 * B, B):
        s.process(x[i:i + B], 1.0)
    ola = s._state["ola"] if isinstance(s._state, dict) else s._state.ola
    with torch.inference_mode():
        ola.fill_(float("nan"))  # a corrupted state (as after an overflow)
    fresh = model.stream(block_ms=64, aligned=True)
    for i in range(3 * B, len(x), B):
        y = s.process(x[i:i + B], 1.0)
        assert np.all(np.isfinite(y))
        np.testing.assert_allclose(y, fresh.process(x[i:i + B], 1.0), atol=1e-5)
    assert s.state_resets == 1
