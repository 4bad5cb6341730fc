"""realtime_tse.model: load_model, TSEModel.extract and TSEModel.scan, and the input rule on every
path (channels mixed down, int16 like float, bounded model calls)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_fixtures import pulse_null_sink  # noqa: E402,F401
from rt_fixtures import (DEMO_DIR, DEMO_MIX, SHIPPED, demo_at, demo_model_rate,  # noqa: E402,F401
                         model, one_torch_thread, rand_ckpt)

from realtime_tse.models.checkpoint import CheckpointError  # noqa: E402
from realtime_tse.model import load_model  # noqa: E402
from realtime_tse.streamer import Streamer  # noqa: E402


def _rel_err(a, b):
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))


# ------------------------------------------------------------------------------------ loading
def test_load_model_properties(model, rand_ckpt):
    assert model.sample_rate == model.config.sample_rate
    assert model.distance_range == (model.config.d_min, model.config.d_max)
    assert model.device.type == "cpu" and model.causal
    assert model.provenance == {"note": "random init, tests only"}
    assert model.path == rand_ckpt


def test_load_model_errors(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_model(bad)
    monkeypatch.setenv("REALTIME_TSE_MODEL", str(tmp_path / "nope.safetensors"))
    with pytest.raises(CheckpointError, match="REALTIME_TSE_MODEL"):
        load_model()
    with pytest.raises(ValueError, match="device"):
        load_model(bad, device="tpu9")


def test_default_model_from_env(rand_ckpt, monkeypatch):
    monkeypatch.setenv("REALTIME_TSE_MODEL", str(rand_ckpt))
    m = load_model(device="cpu", warmup=False)
    assert m.path == rand_ckpt


def test_import_is_light():
    import subprocess
    code = ("import sys, realtime_tse; assert 'torch' not in sys.modules; "
            "from realtime_tse import load_model; assert 'PySide6' not in sys.modules; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


@pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped checkpoint not there yet")
def test_shipped_model_loads_and_extracts():
    m = load_model(device="cpu")
    assert m.causal and m.config.preset == "lite-lstm"   # lite-lstm-d1: the file says its network
    x = demo_at(m.sample_rate, 2.0)
    y = m.extract(x, 1.0)
    assert y.shape == x.shape and np.all(np.isfinite(y))


# ------------------------------------------------------------------------------------ extract
def test_extract_shapes_and_dtype(model, demo_model_rate):
    x = demo_model_rate[: model.sample_rate]
    y = model.extract(x, 1.0)
    assert y.shape == x.shape and y.dtype == np.float32
    xb = np.stack([x, 0.5 * x]).astype(np.float64)
    yb = model.extract(xb, [1.0, 3.0])
    assert yb.shape == xb.shape and yb.dtype == np.float32
    np.testing.assert_allclose(yb[0], y, atol=1e-5)
    assert np.all(np.isfinite(yb))
    # one scalar distance for the whole batch
    assert model.extract(xb, 2.0).shape == xb.shape
    # integer PCM is scaled to [-1, 1)
    yi = model.extract((x * 32767).astype(np.int16), 1.0)
    np.testing.assert_allclose(yi, y, atol=2e-3)


def test_extract_errors(model):
    with pytest.raises(ValueError, match=r"outside the model's range \[0, 5\]"):
        model.extract(np.zeros(1000, np.float32), 7.5)
    with pytest.raises(ValueError, match="range"):
        model.extract(np.zeros(1000, np.float32), -1)
    with pytest.raises(ValueError, match="empty"):
        model.extract(np.zeros(0, np.float32), 1.0)
    with pytest.raises(ValueError, match="shape"):
        model.extract(np.zeros((2, 2, 100), np.float32), 1.0)
    with pytest.raises(ValueError, match="batch"):
        model.extract(np.zeros((2, 1000), np.float32), [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="int64"):
        model.extract(np.zeros(1000, np.int64), 1.0)  # a list of Python ints is not PCM


def test_long_input_is_chunked_exactly(model, demo_model_rate):
    x = demo_model_rate[: 3 * model.sample_rate]
    y = model.extract(x, 2.0)
    old = model.max_chunk_s
    try:
        model.max_chunk_s = 0.5  # chunks of 2 s (the floor)
        y2 = model.extract(x, 2.0)
    finally:
        model.max_chunk_s = old
    assert _rel_err(y2, y) < 1e-4


def test_extract_at_another_sample_rate(model):
    x16 = demo_at(16000, 1.0)
    y = model.extract(x16, 1.0, sample_rate=16000)
    assert y.shape == x16.shape and np.all(np.isfinite(y))


# ------------------------------------------------------------------------------------ scan
def test_scan_returns_sorted_grid_and_finite_values(model, demo_model_rate):
    x = demo_model_rate[: model.sample_rate]
    r = model.scan(x, distances_m=[3.0, 0.5, 2.0, 1.0, 4.0])
    assert list(r.distances_m) == [0.5, 1.0, 2.0, 3.0, 4.0]
    assert r.isdr_db.shape == (5,) and np.all(np.isfinite(r.isdr_db))
    assert np.all(r.isdr_db >= -20.0 - 1e-6)  # tau = 1e-2 floors the normalised iSDR at -20 dB
    assert r.indicator.shape == (5,) and np.all(np.isfinite(r.indicator))
    assert 1 <= len(r.peaks_m) <= 2 and all(d in r.distances_m for d in r.peaks_m)
    json.dumps(r.to_dict())


def test_scan_default_grid_and_errors(model, demo_model_rate):
    r = model.scan(demo_model_rate[: model.sample_rate // 2])
    lo, hi = model.distance_range
    assert r.distances_m[0] == lo and r.distances_m[-1] == hi
    np.testing.assert_allclose(np.diff(r.distances_m), 0.25)
    assert np.all(np.isfinite(r.isdr_db))
    silent = model.scan(np.zeros(model.sample_rate, np.float32), [1.0, 2.0, 3.0])
    assert silent.talkers_m == []  # the detector names no talker on silence
    with pytest.raises(ValueError, match="too short"):
        model.scan(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="range"):
        model.scan(np.zeros(model.sample_rate, np.float32), [1.0, 9.0])


# ------------------------------------------------------------------------------------ input rule
def test_frames_by_channels_is_mixed_down_everywhere(model, demo_model_rate):
    """[N, C] (soundfile's layout) is multichannel audio: the same as its mono mixdown in extract,
    scan and Streamer.process; ambiguous shapes and batches where one signal is taken raise."""
    sr = model.sample_rate
    x = demo_model_rate[:sr]
    st = np.stack([x, 0.5 * x], 1)  # [N, 2]
    mono = st.mean(1)
    y = model.extract(st, 1.0)
    assert y.shape == (sr,)
    np.testing.assert_allclose(y, model.extract(mono, 1.0), atol=1e-6)
    r2, r1 = model.scan(st, [1.0, 3.0]), model.scan(mono, [1.0, 3.0])
    np.testing.assert_allclose(r2.isdr_db, r1.isdr_db, atol=1e-4)
    B = 512
    s1, s2 = model.stream(block_ms=64, aligned=True), model.stream(block_ms=64, aligned=True)
    for i in range(0, sr - B + 1, B):
        np.testing.assert_allclose(s2.process(st[i:i + B], 1.0), s1.process(mono[i:i + B], 1.0),
                                   atol=1e-6)
    for amb in [(64, 64), (4000, 16)]:
        with pytest.raises(ValueError, match="ambiguous"):
            model.extract(np.zeros(amb, np.float32), 1.0)
    with pytest.raises(ValueError, match="one signal"):
        model.scan(np.zeros((2, sr), np.float32))
    with pytest.raises(ValueError, match="one signal"):
        model.stream().process(np.zeros((2, 512), np.float32), 1.0)


def test_int16_stream_equals_float_stream(model, demo_model_rate):
    x = demo_model_rate[: model.sample_rate]
    xi = np.round(x * 32767).astype(np.int16)
    xf = xi.astype(np.float32) / 32768.0
    a, b = model.stream(block_ms=16), model.stream(block_ms=16)
    for i in range(0, len(x), 300):  # blocks of any length
        ya = a.process(xi[i:i + 300], 1.0)
        np.testing.assert_allclose(ya, b.process(xf[i:i + 300], 1.0), atol=1e-6)
    assert float(np.max(np.abs(ya))) < 1.0  # scaled, not ~1,500
    np.testing.assert_allclose(model.extract(xi, 1.0), model.extract(xf, 1.0), atol=1e-6)


def test_model_calls_stay_bounded_for_any_shape(model, monkeypatch):
    """No input shape makes one model call hold more than max(max_chunk_s, 2 s x rows) of audio
    (extract) or scan_query_seconds plus a hop per row (scan)."""
    sr, hop = model.sample_rate, model.config.hop
    sizes = []
    fwd, step = model.net.forward, model.net.step
    monkeypatch.setattr(model.net, "forward", lambda x, d: (sizes.append(x.numel()), fwd(x, d))[1])
    monkeypatch.setattr(model.net, "step",
                        lambda x, d, s: (sizes.append(x.numel()), step(x, d, s))[1])
    rng = np.random.default_rng(0)
    model.extract(0.1 * rng.standard_normal((12 * sr, 2)).astype(np.float32), 1.0)
    model.extract(0.1 * rng.standard_normal((6, 3 * sr)).astype(np.float32), 1.0)
    assert max(sizes) <= model.max_chunk_s * sr + 2 * hop
    sizes.clear()
    r = model.scan(0.1 * rng.standard_normal(30 * sr).astype(np.float32))
    assert max(sizes) <= model.scan_query_seconds * sr + len(r.distances_m) * hop
    assert r.duration_s == pytest.approx(30.0) and r.measured_s == pytest.approx(20.0, abs=1e-3)
