"""realtime_tse.audio.ringbuffer: RingBuffer (single producer, single consumer, lock-free) and
History (the newest samples, read by position)."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np

from realtime_tse.audio.ringbuffer import RingBuffer


# ----------------------------------------------------------------------------------- RingBuffer
def test_ringbuffer_wraparound_keeps_order():
    rb = RingBuffer(10)
    assert rb.write(np.arange(7, dtype=np.float32)) == 7
    np.testing.assert_array_equal(rb.read(5), [0, 1, 2, 3, 4])
    # 2 left at positions 5,6; 6 more wrap around the end of the storage
    assert rb.write(np.arange(7, 13, dtype=np.float32)) == 6
    assert rb.available == 8 and rb.space == 2
    out = np.full(12, -1, np.float32)
    assert rb.read(8, out=out) is out
    np.testing.assert_array_equal(out[:8], np.arange(5, 13))
    assert out[8] == -1  # nothing written past n
    assert rb.available == 0 and rb.dropped == 0


def test_ringbuffer_overflow_and_underflow_accounting():
    rb = RingBuffer(10)
    assert rb.write(np.arange(12, dtype=np.float32)) == 10  # 2 newest dropped
    assert (rb.dropped, rb.overflows) == (2, 1)
    assert rb.write(np.ones(3, np.float32)) == 0
    assert (rb.dropped, rb.overflows) == (5, 2)
    assert rb.read(11) is None and rb.available == 10  # not enough: nothing consumed
    np.testing.assert_array_equal(rb.read(4), [0, 1, 2, 3])
    buf = np.zeros(8, np.float32)
    assert rb.readinto(buf) == 6  # partial read reports how many
    np.testing.assert_array_equal(buf[:6], [4, 5, 6, 7, 8, 9])
    assert rb.write_zeros(3) == 3 and rb.skip(1) == 1 and rb.available == 2
    assert rb.total_written == 13 and rb.total_read == 11


def test_ringbuffer_hot_path_does_not_allocate_sample_memory():
    rb = RingBuffer(4096)
    block = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    out = np.empty(1000, np.float32)
    for _ in range(10):  # warm up
        rb.write(block)
        rb.read(1000, out=out)
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    for _ in range(2000):  # 2 M samples = 8 MB moved
        rb.write(block)
        rb.read(1000, out=out)
    snap = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in snap.compare_to(base, "filename") if s.size_diff > 0)
    assert grown < 20_000, f"ring buffer hot path allocated {grown} bytes"
    np.testing.assert_array_equal(out, block)


def test_ringbuffer_spsc_threads_keep_every_sample_in_order():
    rb = RingBuffer(257)
    n_total = 100_000
    src = np.arange(n_total, dtype=np.float64) % 65536
    got = np.empty(n_total, np.float32)
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 250, 4000)  # <= capacity

    def producer():
        i, k = 0, 0
        while i < n_total:
            n = min(int(sizes[k % len(sizes)]), n_total - i)
            k += 1
            while rb.space < n and time.monotonic() < deadline:
                time.sleep(0.0002)
            assert rb.write(src[i:i + n].astype(np.float32)) == n
            i += n

    deadline = time.monotonic() + 20
    t = threading.Thread(target=producer, daemon=True)
    t.start()
    j = 0
    while j < n_total and time.monotonic() < deadline:
        k = rb.readinto(got[j:j + 200])
        if k == 0:
            time.sleep(0.0002)
        j += k
    t.join(5)
    assert j == n_total and rb.dropped == 0
    np.testing.assert_array_equal(got, src.astype(np.float32))


def test_history_keeps_the_newest_samples_and_reads_by_absolute_position():
    """The live engine's input history (a RingBuffer nobody consumes): the writer overwrites the
    oldest samples; latest(n) and read(pos, n) copy without consuming; clear() restarts positions."""
    from realtime_tse.audio.ringbuffer import History
    h = History(8)
    x = np.arange(20, dtype=np.float32)
    h.write(x[:5])
    assert h.total == 5 and np.array_equal(h.latest(3), x[2:5]) and np.array_equal(h.latest(99), x[:5])
    h.write(x[5:13])                                   # 13 written, the newest 8 kept (5..12)
    got, start = h.read(2, 4)
    assert start == 5 and np.array_equal(got, x[5:9])  # 2..4 were overwritten: starts at 5
    got, start = h.read(10, 99)
    assert start == 10 and np.array_equal(got, x[10:13])
    h.write(x[:20])          # longer than the capacity: only its last 8 are written (and counted)
    assert h.total == 21 and np.array_equal(h.latest(8), x[12:20])
    h.clear()
    assert h.total == 0 and len(h.latest(4)) == 0 and h.read(0, 4)[0].size == 0
    h.write(x[:3])
    assert np.array_equal(h.read(0, 8)[0], x[:3])
