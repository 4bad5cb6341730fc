"""realtime_tse.scan.live_scan: the incremental, batched streaming distance scan (StreamingScan and its
worker). Timing targets live in benchmarks/bench_realtime.py; these tests count, never time."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rt_fixtures import demo_at, model, one_torch_thread, rand_ckpt  # noqa: E402,F401

from realtime_tse.scan.live_scan import (TAU, StreamingScan, StreamingScanWorker,  # noqa: E402
                                  default_grid)


class _Cfg:
    hop = 64


class FakeNet(torch.nn.Module):
    """Causal stand-in: row q outputs ``gain(d_q) * input``, delayed by ``stream_delay`` like the
    real net. ``gain(d) = 1`` at d = 2 m and falls off linearly elsewhere."""

    cfg = _Cfg()
    stream_delay = 192

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.steps = 0

    @staticmethod
    def gain(d):
        return torch.clamp(1.0 - 0.5 * torch.abs(torch.as_tensor(d) - 2.0), min=0.0)

    def init_state(self, d_q):
        d_q = torch.as_tensor(d_q, dtype=torch.float32).reshape(-1)
        return {"d_q": d_q.clone(), "buf": torch.zeros(len(d_q), self.stream_delay)}

    def step(self, block, d_q, state):
        assert block.shape[1] % self.cfg.hop == 0
        self.steps += 1
        x = torch.cat([state["buf"], block], 1)
        out = x[:, :block.shape[1]] * self.gain(d_q)[:, None]
        return out, {"d_q": d_q, "buf": x[:, block.shape[1]:]}


class ListSource:
    """A history the test fills by hand: ``total`` and ``read(pos, n) -> (x, start)``."""

    def __init__(self, capacity: int | None = None):
        self.x = np.zeros(0, np.float32)
        self.capacity = capacity
        self.lock = threading.Lock()

    def write(self, x):
        with self.lock:
            self.x = np.concatenate([self.x, np.asarray(x, np.float32)])

    @property
    def total(self):
        return len(self.x)

    def read(self, pos, n):
        with self.lock:
            lo = 0 if self.capacity is None else max(0, len(self.x) - self.capacity)
            start = max(pos, lo)
            return self.x[start:start + n].copy(), start


def _noise(seconds, sr=8000, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


# ------------------------------------------------------------------------------------ StreamingScan
def test_pieces_equal_one_go_real_model(model):
    x = demo_at(model.sample_rate, 3.0)
    grid = default_grid(*model.distance_range, 0.5)
    one = StreamingScan(model.net, model.sample_rate, grid, window_s=2.0, max_step_s=10.0)
    one.feed(x)
    pieces = StreamingScan(model.net, model.sample_rate, grid, window_s=2.0)
    rng = np.random.default_rng(1)
    i = 0
    while i < len(x):
        n = int(rng.integers(1, 3000))
        pieces.feed(x[i:i + n])
        i += n
    assert one.hops_fed == pieces.hops_fed == len(x) // model.config.hop
    a, b = one.levels(), pieces.levels()
    assert a.shape == (len(grid),) and np.all(np.isfinite(a))
    assert np.max(np.abs(a - b)) < 0.1, (a, b)
    ra, rb = one.result(), pieces.result()
    assert ra.peaks_m == rb.peaks_m
    assert ra.duration_s == pytest.approx(2.0, abs=0.02)
    assert np.allclose(ra.distances_m, grid)


def test_window_is_the_last_window_s_of_input():
    """Window of 1 s: after loud then quiet audio, the profile reflects only the quiet part, and the
    energies are aligned with the output delay (no leak of the loud part through the delay)."""
    net = FakeNet()
    sc = StreamingScan(net, 8000, [1.0, 2.0, 3.0], window_s=1.0)
    sc.feed(_noise(2.0) * 10)
    sc.feed(_noise(1.5, seed=3))
    assert sc.input_dbfs() == pytest.approx(10 * np.log10(0.01), abs=0.5)
    lv = sc.levels()
    g = FakeNet.gain(torch.tensor([1.0, 2.0, 3.0])).numpy().astype(np.float64)
    assert np.allclose(lv, 10 * np.log10(g ** 2 + TAU), atol=0.01)


def test_identity_query_is_about_0_db_and_peak_found():
    net = FakeNet()
    grid = default_grid(0.0, 5.0, 0.5)
    sc = StreamingScan(net, 8000, grid, window_s=3.0)
    assert sc.result() is None  # nothing fed yet
    sc.feed(_noise(4.0))
    r = sc.result()
    i2 = int(np.argmin(np.abs(grid - 2.0)))
    assert abs(r.isdr_db[i2]) < 0.1                     # output == input: ~0 dB
    assert r.isdr_db.min() == pytest.approx(10 * np.log10(TAU), abs=0.01)  # floor where gain 0
    assert r.peaks_m and r.peaks_m[0] == pytest.approx(2.0)
    assert r.talkers_m and r.talkers_m[0] == pytest.approx(2.0)  # the detector agrees
    assert net.steps == 4  # one batched step per second of audio (max_step_s=1), not per query


def test_silence_and_flat_profile_have_no_talkers():
    sc = StreamingScan(FakeNet(), 8000, [1.0, 2.0, 3.0], window_s=1.0)
    sc.feed(np.zeros(16000, np.float32))
    r = sc.result()
    assert r.talkers_m == [] and np.all(np.isfinite(r.isdr_db))

    class Flat(FakeNet):
        @staticmethod
        def gain(d):
            return torch.ones_like(torch.as_tensor(d))
    r = StreamingScan(Flat(), 8000, [1.0, 2.0, 3.0], window_s=1.0)
    r.feed(_noise(1.0))
    assert r.result().talkers_m == []


# ------------------------------------------------------------------------------------ worker
def test_worker_updates_at_least_once_per_second_of_audio_fed_in_real_time(model):
    """File audio released in real time (64 ms blocks), the real (random) model and the 11-query
    live grid: count the updates per second of audio, no timing assertions."""
    x = demo_at(model.sample_rate, 3.0)
    src = ListSource()
    w = StreamingScanWorker(model, src, window_s=3.0)
    assert len(w.distances_m) == 11
    w.start()
    try:
        blk = 512
        t0 = time.monotonic()
        for i in range(0, len(x), blk):
            src.write(x[i:i + blk])
            lag = (i + blk) / model.sample_rate - (time.monotonic() - t0)
            if lag > 0:
                time.sleep(lag)
        deadline = time.monotonic() + 10
        while w.audio_s < 2.5 and time.monotonic() < deadline and w.error is None:
            time.sleep(0.05)
    finally:
        w.stop()
    assert w.error is None
    audio_s = len(x) / model.sample_rate
    assert w.count >= int(audio_s), w.stats()
    assert w.latest is not None and np.all(np.isfinite(w.latest.isdr_db))


def test_worker_skips_ahead_when_behind():
    net = FakeNet()
    model = type("M", (), {"net": net, "sample_rate": 8000, "distance_range": (0.0, 5.0),
                           "device": torch.device("cpu")})()
    src = ListSource(capacity=8000 * 3)
    w = StreamingScanWorker(model, src, window_s=2.0, update_s=0.25, max_lag_s=1.0)
    assert w.update() is False  # nothing yet; starts at the current end of the source
    src.write(_noise(0.5))
    assert w.update() is True and w.count == 1 and w.skips == 0
    steps = net.steps
    src.write(_noise(5.0, seed=2))  # 5 s behind: more than max_lag, and partly overwritten
    assert w.update() is True
    assert w.skips == 1 and w.scan.restarts == 1
    assert w.audio_s == pytest.approx(0.5 + w.update_samples / 8000)  # only the newest update_s
    assert net.steps == steps + 1
    assert w._pos == src.total
    assert w.update() is False  # caught up
    # a restarted source (engine restart: history cleared) starts a fresh window
    src.x = np.zeros(0, np.float32)
    src.write(_noise(0.1))
    assert w.update() is False and w.scan.window_filled_s == 0.0


def test_worker_caps_one_update_to_its_compute_budget():
    """When the measured cost per audio second is high, one update takes only what max_update_s
    of compute covers (at least update_s), oldest first, without a skip; the rest follows."""
    net = FakeNet()
    model = type("M", (), {"net": net, "sample_rate": 8000, "distance_range": (0.0, 5.0),
                           "device": torch.device("cpu")})()
    src = ListSource()
    w = StreamingScanWorker(model, src, window_s=2.0, update_s=0.25, max_lag_s=1.0,
                            max_update_s=0.5)
    w.update()
    src.write(_noise(0.9))
    w._rtf = 4.0  # 4 s of compute per audio second: 0.125 s fits, update_s (0.248 s) is taken
    assert w.update() is True
    assert w.skips == 0 and w.audio_s == pytest.approx(w.update_samples / 8000)
    w._rtf = 1.0  # 0.5 s fits
    assert w.update() is True and w.skips == 0
    assert w.audio_s == pytest.approx((w.update_samples + 4000 // 64 * 64) / 8000)
