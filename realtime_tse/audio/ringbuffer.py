"""Single-producer single-consumer ring buffer for audio samples.

One thread writes (e.g. the PortAudio callback), one other thread reads (e.g. the model worker),
without locks: the writer only advances the write counter, the reader only the read counter, each
after its copy is done, and CPython makes the counter assignments atomic. The storage is one
preallocated numpy array; ``write`` and ``read(n, out=...)`` / ``readinto`` copy into or out of it
with at most two slice copies (wrap-around) and never allocate sample memory.

Overflow policy: ``write`` stores what fits and drops the rest (the newest samples), returns how many
it stored and adds the dropped count to ``dropped``/``overflows``. The caller decides what a drop
means (the audio path counts it as an input overflow).

:class:`History` keeps the newest samples of a stream in a ring nobody consumes (the live engine's
input history, read by the distance scan).
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["RingBuffer", "History"]


class RingBuffer:
    """Lock-free SPSC ring buffer of ``capacity`` samples (1-D, ``dtype`` float32 by default)."""

    def __init__(self, capacity: int, dtype=np.float32):
        capacity = int(capacity)
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self._buf = np.zeros(capacity, dtype=dtype)
        self._cap = capacity
        self._w = 0  # total samples ever written (only the producer changes it)
        self._r = 0  # total samples ever read (only the consumer changes it)
        self.dropped = 0  # samples dropped by write() because the buffer was full
        self.overflows = 0  # number of write() calls that dropped something

    # ------------------------------------------------------------------ state
    @property
    def capacity(self) -> int:
        return self._cap

    @property
    def dtype(self):
        return self._buf.dtype

    @property
    def available(self) -> int:
        """Samples ready to read."""
        return self._w - self._r

    @property
    def space(self) -> int:
        """Samples that can be written without dropping."""
        return self._cap - (self._w - self._r)

    @property
    def total_written(self) -> int:
        return self._w

    @property
    def total_read(self) -> int:
        return self._r

    def __len__(self) -> int:
        return self.available

    def __repr__(self) -> str:
        return (f"RingBuffer(capacity={self._cap}, available={self.available}, "
                f"dropped={self.dropped})")

    # ------------------------------------------------------------------ producer
    def write(self, x) -> int:
        """Append ``x`` (1-D); returns the number of samples stored, the rest is dropped."""
        return self._store(len(x), x)

    def write_zeros(self, n: int) -> int:
        """Append ``n`` zeros (silence); same drop policy as ``write``."""
        return self._store(int(n), None)

    def _store(self, n_in: int, x) -> int:
        """Store the first samples of ``x`` (None: zeros) that fit out of ``n_in``; count the rest
        as dropped. Returns how many were stored."""
        n = min(n_in, self._cap - (self._w - self._r))
        if n < n_in:
            self.dropped += n_in - n
            self.overflows += 1
        if n <= 0:
            return 0
        start = self._w % self._cap
        first = min(n, self._cap - start)
        self._buf[start:start + first] = 0 if x is None else x[:first]
        if n > first:
            self._buf[:n - first] = 0 if x is None else x[first:n]
        self._w += n  # publish after the copy
        return n

    # ------------------------------------------------------------------ consumer
    def read(self, n: int, out: np.ndarray | None = None) -> np.ndarray | None:
        """Take exactly ``n`` samples; ``None`` (nothing consumed) if fewer are available.

        With ``out`` (length >= n) the samples go into ``out[:n]`` and ``out`` is returned
        (no allocation); otherwise a new array is returned.
        """
        n = int(n)
        if n > self._w - self._r:
            return None
        if out is None:
            out = np.empty(n, dtype=self._buf.dtype)
        self._copy_out(out, n)
        return out

    def readinto(self, out: np.ndarray) -> int:
        """Take up to ``len(out)`` samples into ``out``; returns how many (the rest is untouched)."""
        n = min(len(out), self._w - self._r)
        if n > 0:
            self._copy_out(out, n)
        return n

    def skip(self, n: int) -> int:
        """Discard up to ``n`` samples; returns how many were discarded."""
        n = max(0, min(int(n), self._w - self._r))
        self._r += n
        return n

    def _copy_out(self, out: np.ndarray, n: int) -> None:
        self.copy_at(self._r, out[:n])
        self._r += n  # release after the copy

    def copy_at(self, pos: int, out: np.ndarray) -> None:
        """Copy ``len(out)`` samples from absolute position ``pos`` (counted like
        ``total_written``) into ``out`` without consuming them. The caller keeps to samples still
        held, ``total_read <= pos`` and ``pos + len(out) <= total_written``; others are whatever
        the storage holds."""
        n = len(out)
        start = int(pos) % self._cap
        first = min(n, self._cap - start)
        out[:first] = self._buf[start:start + first]
        if n > first:
            out[first:n] = self._buf[:n - first]

    def clear(self) -> None:
        """Drop everything readable. Consumer side only (it moves the read counter)."""
        self._r = self._w


class History:
    """The newest ``capacity`` samples of a stream, kept in a :class:`RingBuffer` that nobody
    consumes: :meth:`write` from one thread (the audio worker's tap) overwrites the oldest samples;
    :meth:`latest` and :meth:`read` from others (the distance scan) copy without consuming. A lock
    is held only for the copies (microseconds), never during a computation, so a reader never sees
    samples half overwritten.

    Positions are absolute: sample ``k`` is the ``k``-th written since the last :meth:`clear`
    (:attr:`total` counts them), the contract the scan workers read by.

    Args:
        capacity: samples kept (> 0). Raises ValueError otherwise.
    """

    def __init__(self, capacity: int):
        self._ring = RingBuffer(capacity)
        self._base = 0  # ring position of sample 0 (moved by clear())
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return self._ring.capacity

    @property
    def total(self) -> int:
        """Samples written since the last :meth:`clear`."""
        return self._ring.total_written - self._base

    def write(self, x: np.ndarray) -> None:
        """Append ``x`` ([n] float32), dropping the oldest samples to make room."""
        cap = self._ring.capacity
        x = x[-cap:]
        with self._lock:
            self._ring.skip(len(x) - self._ring.space)  # nobody consumes: the writer makes room
            self._ring.write(x)

    def latest(self, n: int) -> np.ndarray:
        """A copy of the newest ``min(n, total, capacity)`` samples, [n] float32."""
        with self._lock:
            n = int(min(n, self._ring.available, self.total))
            return self._copy(self._ring.total_written - n, n)

    def read(self, pos: int, n: int):
        """Up to ``n`` samples from absolute position ``pos``.

        Returns:
            ``(x [m] float32, start)``: ``start > pos`` when the samples from ``pos`` on were
            already overwritten (``x`` then begins at the oldest kept sample); ``m <= n``.
        """
        with self._lock:
            oldest = self._ring.total_read - self._base
            start = max(int(pos), oldest, 0)
            n = int(max(0, min(n, self.total - start)))
            return self._copy(self._base + start, n), start

    def clear(self) -> None:
        """Forget everything; positions start again at 0."""
        with self._lock:
            self._ring.clear()
            self._base = self._ring.total_written

    def _copy(self, ring_pos: int, n: int) -> np.ndarray:
        """``n`` samples from ring position ``ring_pos`` (kept ones only; caller holds the lock)."""
        out = np.empty(n, self._ring.dtype)
        self._ring.copy_at(ring_pos, out)
        return out
