"""realtime_tse.scan.process: the live distance scan in a child process (out of the audio
process's GIL). These tests count and compare values, never time; their deadlines are generous
(a child imports torch, seconds on a loaded 2-core machine). Timing lives in
benchmarks/bench_realtime.py."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rt_fixtures import DEMO_MIX, demo_at, model, one_torch_thread, rand_ckpt  # noqa: E402,F401

from realtime_tse.scan import process as scan_process  # noqa: E402
from realtime_tse.scan.live_scan import StreamingScan, StreamingScanWorker  # noqa: E402
from realtime_tse.scan.child import SharedRingReader, ring_write  # noqa: E402
from realtime_tse.scan.process import ScanProcessWorker  # noqa: E402

DEADLINE_S = 120.0  # for a child to start and deliver on a busy machine


class Source:
    """The engine's input history contract: ``total`` and ``read(pos, n) -> (x, start)``."""

    def __init__(self):
        self.x = np.zeros(0, np.float32)
        self.lock = threading.Lock()

    def write(self, x):
        with self.lock:
            self.x = np.concatenate([self.x, np.asarray(x, np.float32)])

    @property
    def total(self) -> int:
        return len(self.x)

    def read(self, pos, n):
        with self.lock:
            return self.x[pos:pos + n].copy(), pos


def _wait(cond, timeout=DEADLINE_S):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.05)
    return cond()


def _scan_children() -> list[int]:
    """Pids of this process's children that run the scan process."""
    me = str(os.getpid())
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = (d / "stat").read_text().rsplit(")", 1)[1].split()[1]
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if ppid == me and b"realtime_tse.scan.child" in cmd:
            found.append(int(d.name))
    return found


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ------------------------------------------------------------------------------- the shared ring
def test_shared_ring_reads_what_was_written_across_the_wrap_and_reports_overwrites():
    buf = bytearray(16 + 4 * 10)  # header + 10 samples
    r = SharedRingReader(buf)
    hdr = np.frombuffer(buf, np.int64, 2, 0)
    ring = np.frombuffer(buf, np.float32, 10, 16)
    assert r.capacity == 10 and r.total == 0 and not r.stop_requested
    ring_write(hdr, ring, np.arange(7, dtype=np.float32))
    x, start = r.read(2, 100)
    assert start == 2 and x.tolist() == [2, 3, 4, 5, 6]
    ring_write(hdr, ring, np.arange(7, 13, dtype=np.float32))  # wraps: slots 7..9, 0..2
    assert r.total == 13
    x, start = r.read(5, 4)
    assert start == 5 and x.tolist() == [5, 6, 7, 8]
    x, start = r.read(1, 100)  # 1, 2 were overwritten: starts at the oldest kept, 3
    assert start == 3 and x.tolist() == list(range(3, 13))
    ring_write(hdr, ring, np.arange(13, 38, dtype=np.float32))  # longer than the ring
    x, start = r.read(0, 100)
    assert r.total == 38 and start == 28 and x.tolist() == list(range(28, 38))
    hdr[1] = 1
    assert r.stop_requested
    with pytest.raises(ValueError):
        SharedRingReader(bytearray(16))


# ------------------------------------------------------------------------------- the process
def test_scan_process_gives_the_in_process_profile_and_leaves_no_process(model):
    """2 s of the demo mixture (a real signal) scanned in the child equals the same audio scanned
    by an in-process StreamingScan; stop() ends and reaps the child."""
    src = Source()
    w = ScanProcessWorker(model, src, window_s=2.0, max_lag_s=5.0, use_process=True)
    assert isinstance(w, StreamingScanWorker)  # the engine's, CLI's and window's interface
    w.start()
    try:
        assert _wait(lambda: w.ready or w.mode != "process"), w.stats()
        assert w.mode == "process" and w.fallback_reason is None
        pid = w.pid
        assert pid is not None and pid != os.getpid() and pid in _scan_children()
        x = demo_at(model.sample_rate, 2.0)
        src.write(x)  # one write: the child takes it in one update (max_lag 5 s: no skip)
        assert _wait(lambda: w.audio_s >= len(x) / model.sample_rate - 1e-9 or w.error), \
            w.stats()
        assert w.error is None and w.skips == 0 and w.count >= 1
    finally:
        w.stop()
    ref = StreamingScan(model.net, model.sample_rate, w.distances_m, window_s=2.0,
                        max_step_s=6.0)
    ref.feed(x)
    want = ref.result()
    got = w.latest
    assert len(got.distances_m) == 11 and np.array_equal(got.distances_m, want.distances_m)
    np.testing.assert_allclose(got.isdr_db, want.isdr_db, atol=1e-3)
    assert got.input_dbfs == pytest.approx(want.input_dbfs, abs=1e-3) and got.input_dbfs > -40
    assert got.peaks_m == want.peaks_m
    assert w.stats()["updates"] == w.count and w.busy_s > 0
    # stopped: the child ended and was reaped, nothing of ours is left
    assert w.pid is None and _gone(pid) and _scan_children() == []
    assert w.mode == "process" and not w.ready


def test_engine_keeps_running_when_the_scan_process_is_killed(model):
    """SIGKILL the scan child of a running engine: the audio goes on without an error, the child
    is restarted and delivers again, and stop() leaves no scan process."""
    from realtime_tse.live.engine import LiveEngine
    eng = LiveEngine(model, block_ms=64, input_file=DEMO_MIX, output_device="null",
                     distance_m=1.0, scan_seconds=1.0)
    eng.start()
    try:
        sc = eng._scanner
        assert isinstance(sc, ScanProcessWorker)
        assert _wait(lambda: (sc.ready and eng.scan_count >= 1) or sc.mode != "process"), \
            sc.stats()
        assert sc.mode == "process"
        pid, n0, blocks0 = sc.pid, eng.scan_count, eng.stream.blocks_processed
        os.kill(pid, signal.SIGKILL)
        assert _wait(lambda: sc.process_restarts >= 1 and sc.ready
                     and eng.scan_count > n0 + 1), sc.stats()
        assert sc.pid not in (None, pid) and _gone(pid)
        assert eng.running and eng.error is None
        assert eng.stream.blocks_processed > blocks0
        assert np.all(np.isfinite(eng.latest_scan.isdr_db))
        new_pid = sc.pid
    finally:
        eng.stop()
    assert _gone(new_pid) and _scan_children() == []


def test_falls_back_to_the_thread_when_no_process_can_start(model, monkeypatch):
    def no_process(*a, **k):
        raise OSError("no processes here")
    monkeypatch.setattr(scan_process.subprocess, "Popen", no_process)
    src = Source()
    w = ScanProcessWorker(model, src, window_s=2.0, max_lag_s=5.0, use_process=True)
    w.start()
    try:
        assert _wait(lambda: w.mode == "thread", 30), w.stats()
        assert "cannot start the scan process" in w.fallback_reason
        assert "no processes here" in w.fallback_reason and w.pid is None
        # keep feeding: the thread takes its start position in the history when it first runs,
        # which may be after a single write (it would then wait for audio that never comes)
        audio = demo_at(model.sample_rate, 1.0)
        step = model.sample_rate // 4

        def fed_and_done():
            if w.count >= 1 or w.error is not None:
                return True
            src.write(audio[:step])
            return False
        assert _wait(fed_and_done), w.stats()
        assert w.error is None and np.all(np.isfinite(w.latest.isdr_db))
    finally:
        w.stop()
    assert _scan_children() == []


def test_env_switch_runs_the_scan_in_a_thread(model, monkeypatch):
    monkeypatch.setenv("RTSE_SCAN_PROCESS", "0")
    w = ScanProcessWorker(model, Source())
    w.start()
    try:
        assert w.mode == "thread" and w.fallback_reason is None and w.pid is None
        assert w._thread is not None and w._thread.is_alive() and w._pump is None
    finally:
        w.stop()
    assert w._thread is None
