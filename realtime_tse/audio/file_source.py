"""A sound file read as a real-time stream at the model rate (:class:`FileSource`): what stands in
for the microphone when the live path plays a file."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..audio_file import soundfile_name

__all__ = ["FileSource"]


class FileSource:
    """A sound file read as a real-time stream at ``rate`` Hz (mono, float32).

    Any format soundfile reads; channels are averaged; the file is resampled to ``rate`` with a
    streaming soxr resampler, chunk by chunk (long files are never loaded whole). ``read(n)`` gives
    the next ``n`` samples without pacing (the final block may be shorter, then ``None``);
    ``blocks(n)`` yields blocks paced in real time by a monotonic clock (block k is released when
    it would have been fully captured by a microphone, at ``t0 + (k+1) n / rate``); ``start(n, fn)``
    does the same from its own thread. Needs no sound card and no PortAudio.
    """

    def __init__(self, path: str | Path, rate: int, loop: bool = False, quality: str = "HQ",
                 chunk_s: float = 0.1):
        import soundfile as sf  # noqa: PLC0415
        self.path = Path(path)
        try:
            self._sf = sf.SoundFile(soundfile_name(self.path))  # any name the file system holds
        except Exception as e:  # noqa: BLE001  (LibsndfileError, RuntimeError, OSError)
            raise ValueError(f"cannot read audio file {self.path}: {e}") from e
        self.rate = int(rate)
        self.file_rate = int(self._sf.samplerate)
        self.channels = int(self._sf.channels)
        self.frames = int(self._sf.frames)
        self.loop = bool(loop)
        self._quality = quality
        self._chunk = max(1, int(round(chunk_s * self.file_rate)))
        self._rs = None  # the soxr resampler, made on the first read (:meth:`_resampler`)
        self._pending = np.zeros(0, dtype=np.float32)
        self._file_done = False  # no more file input (not looping, EOF reached)
        self.position = 0  # samples delivered at self.rate
        self._wraps = 0  # times the reader wrapped around (reads ahead of delivery)
        self.late = 0  # paced blocks released more than max_lag_s late (clock reset)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        if self.frames == 0:
            self._file_done = True

    def _resampler(self):
        """The streaming soxr resampler file rate -> ``rate`` (None when they are equal), made on
        first use: a source that is built and never read holds none."""
        if self._rs is None and self.file_rate != self.rate:
            import soxr  # noqa: PLC0415
            self._rs = soxr.ResampleStream(self.file_rate, self.rate, 1, dtype="float32",
                                           quality=self._quality)
        return self._rs

    # ---------------------------------------------------------------- info
    @property
    def duration_s(self) -> float:
        """Length of the file in seconds (one pass)."""
        return self.frames / self.file_rate

    @property
    def loops(self) -> int:
        """Complete passes over the file delivered so far."""
        pass_len = self.frames * self.rate / self.file_rate
        return int(self.position // pass_len) if pass_len > 0 else 0

    @property
    def position_s(self) -> float:
        return self.position / self.rate

    @property
    def eof(self) -> bool:
        """True once everything has been delivered (never with ``loop``)."""
        return self._file_done and len(self._pending) == 0

    # ---------------------------------------------------------------- reading
    def _fill(self) -> None:
        x = self._sf.read(self._chunk, dtype="float32", always_2d=True)
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
        last = False
        if len(x) < self._chunk:  # end of file
            if self.loop:
                self._sf.seek(0)
                self._wraps += 1
                if len(x) == 0:
                    x = self._sf.read(self._chunk, dtype="float32", always_2d=True).mean(
                        axis=1, dtype=np.float32)
            else:
                self._file_done = True
                last = True
        rs = self._resampler()
        if rs is not None:
            x = rs.resample_chunk(np.ascontiguousarray(x, dtype=np.float32), last=last)
        if len(x):
            self._pending = np.concatenate([self._pending, x.astype(np.float32, copy=False)])

    def read(self, n: int) -> np.ndarray | None:
        """The next ``n`` samples (fewer at the very end of a non-looping file), or ``None``."""
        n = int(n)
        while len(self._pending) < n and not self._file_done:
            self._fill()
        if len(self._pending) == 0:
            return None
        out, self._pending = self._pending[:n].copy(), self._pending[n:]
        self.position += len(out)
        return out

    def rewind(self) -> None:
        self._sf.seek(0)
        self._rs = None  # a fresh resampler state from the start of the file
        self._pending = np.zeros(0, dtype=np.float32)
        self._file_done = self.frames == 0
        self.position = 0

    # ---------------------------------------------------------------- pacing
    def blocks(self, n: int, realtime: bool = True, pad: bool = True, max_lag_s: float = 1.0,
               stop_event: threading.Event | None = None) -> Iterator[np.ndarray]:
        """Yield blocks of ``n`` samples, paced in real time when ``realtime``.

        The last block is zero-padded to ``n`` when ``pad``. A consumer more than ``max_lag_s``
        behind makes the clock restart (counted in ``late``) instead of bursting to catch up.
        ``stop_event`` interrupts the pacing wait.
        """
        n = int(n)
        period = n / self.rate
        t0 = time.monotonic()
        k = 0
        while True:
            blk = self.read(n)
            if blk is None:
                return
            if pad and len(blk) < n:
                blk = np.concatenate([blk, np.zeros(n - len(blk), np.float32)])
            if realtime:
                deadline = t0 + (k + 1) * period
                d = deadline - time.monotonic()
                if d > 0:
                    if stop_event is not None:
                        if stop_event.wait(d):
                            return
                    else:
                        time.sleep(d)
                elif -d > max_lag_s:
                    self.late += 1
                    t0 = time.monotonic() - (k + 1) * period
            if stop_event is not None and stop_event.is_set():
                return
            k += 1
            yield blk

    def start(self, n: int, callback: Callable[[np.ndarray], None],
              on_end: Callable[[], None] | None = None) -> threading.Thread:
        """Call ``callback(block)`` for each real-time paced block from a daemon thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("FileSource already started")
        self._stop.clear()

        def run():
            for blk in self.blocks(n, stop_event=self._stop):
                callback(blk)
            if on_end is not None and not self._stop.is_set():
                on_end()

        self._thread = threading.Thread(target=run, name="FileSource", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 2.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def close(self) -> None:
        """Stop the pacing thread, close the file and free the resampler (idempotent). A soxr
        resampler still referenced when the interpreter exits makes nanobind print "leaked
        instances" lines, so it is released here rather than left to the garbage collector."""
        self.stop()
        self._sf.close()
        self._rs = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return (f"FileSource({str(self.path)!r}, rate={self.rate}, file_rate={self.file_rate}, "
                f"loop={self.loop}, position_s={self.position_s:.2f})")
