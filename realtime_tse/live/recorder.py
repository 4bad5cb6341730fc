"""Record the extracted output (and optionally the raw input) of a live session.

``Recorder`` is fed from the audio worker's tap (``write`` / ``write_input`` only copy the block
into a queue, so the audio path never waits for the disk); its own writer thread writes the
blocks with soundfile (libsndfile: WAV and FLAC with one API, bundled in the wheel, and
``SoundFile.flush()`` pushes the data and the WAV header to the file system). The files are
flushed at least every ``flush_interval_s`` (default 0.5 s), so a crash loses at most about a
second: a WAV file read back while still open shows everything up to the last flush; a FLAC
file holds all encoded frames up to the last flush (the encoder keeps the last partial 4096-sample
frame back) and stays decodable (its header says "length unknown" until ``close``).

Samples: NaN/Inf are written as 0 (never as full-scale -32768), and for integer subtypes samples
beyond full scale are clipped to [-1, 1]; both are counted (``nonfinite_samples``,
``clipped_samples``), logged once and written to the sidecar. The live engine's output is already
limited to -1 dBFS (:class:`realtime_tse.safety.OutputGuard`), so its recordings never clip.

Decisions (recorded here, the SPEC is silent):

- Never overwrite: ``take.wav`` exists -> ``take-1.wav``, ``take-2.wav``, ... The name is reserved
  with an exclusive create, so two recorders started at once never pick the same file
  (:func:`realtime_tse.live.recording_paths.unique_path`; where recordings go and what they are
  called by default: :mod:`realtime_tse.live.recording_paths`).
- Format by suffix: ``.wav`` (``PCM_16`` default, or ``FLOAT``) or ``.flac`` (``PCM_16``/``PCM_24``).
- Sidecar ``<file>.json`` (e.g. ``take.wav.json``): model, sample rate, channels, subtype, start
  time (ISO 8601 with the local UTC offset), the input file when recorded, and every query-distance
  change ``{"t_s": wall seconds since start, "audio_s": seconds of output written so far,
  "d_q_m": metres}`` (the live engine notes the distance each block was made with, so at most one
  change per block); rewritten atomically (:mod:`realtime_tse.file_write`) by the writer thread at
  most once per flush interval when something changed, and on ``close`` (which adds the end time,
  the frame count and the duration). When the disk is full, the final sidecar is written over the
  old one in place if it fits in the space the old one already holds (a small sidecar does), so a
  recording stopped by a full disk still says when and why.
- A write that fails (disk full, file removed, read-only file system) stops the recording at once:
  the files are closed (a WAV keeps a valid header and everything written before), the sidecar is
  finalised with the end time and ``error`` ("cannot write PATH: no space left on device"), and
  :attr:`Recorder.failed` turns True; the engine, the CLI and the window report it
  (``on_error(message)`` is called once from the writer thread).
- ``elapsed_s`` is wall-clock time since the recorder started; ``duration_s`` is the audio written.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from ..audio_file import soundfile_name
from ..file_write import FileWriteError, write_bytes_atomic, write_error_reason
from ..safety import sanitize
from .recording_paths import unique_path

__all__ = ["Recorder"]

log = logging.getLogger(__name__)

_SUBTYPES = {".wav": ("PCM_16", "FLOAT", "PCM_24", "PCM_32"), ".flac": ("PCM_16", "PCM_24")}
_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


class Recorder:
    """Write the extracted output (and on request the raw input) to WAV/FLAC from a writer thread.

    ``path``: the requested file (never overwritten; the final name is ``self.path``).
    ``record_input``: also write the raw input (``write_input``) to ``input_path`` (default
    ``<stem>-input<suffix>`` next to the output, also never overwritten; final name
    ``self.input_path``).
    ``on_error(message)``: called once, from the writer thread, when a write fails and the
    recording stops (see the module docstring); ``error`` and ``failed`` say the same.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int = 1, model_name: str = "",
                 record_input: bool = False, input_path: str | Path | None = None,
                 subtype: str = "PCM_16", flush_interval_s: float = 0.5,
                 extra: dict | None = None, on_error=None):
        import soundfile as sf  # noqa: PLC0415
        path = Path(path).expanduser()
        suffix = path.suffix.lower()
        if suffix not in _FORMATS:
            raise ValueError(f"recording format must be .wav or .flac, got {path.name!r}")
        subtype = subtype.upper()
        if subtype not in _SUBTYPES[suffix]:
            raise ValueError(f"subtype {subtype} not supported for {suffix} "
                             f"(use one of {', '.join(_SUBTYPES[suffix])})")
        if flush_interval_s <= 0 or flush_interval_s > 1.0:
            raise ValueError("flush_interval_s must be in (0, 1] s")
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.model_name = model_name
        self.subtype = subtype
        self.flush_interval_s = float(flush_interval_s)
        self.extra = dict(extra or {})
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = unique_path(path, companion_suffix=".json")
        self.sidecar_path = self.path.with_name(self.path.name + ".json")
        self.record_input = bool(record_input or input_path is not None)
        self.input_path: Path | None = None
        files = []
        reserved = [self.path]
        try:
            self._out = sf.SoundFile(soundfile_name(self.path), "w", self.sample_rate, self.channels,
                                     subtype=subtype, format=_FORMATS[suffix])
            files.append(self._out)
            self._in = None
            if self.record_input:
                ip = Path(input_path).expanduser() if input_path is not None else \
                    self.path.with_name(f"{self.path.stem}-input{self.path.suffix}")
                isuf = ip.suffix.lower()
                if isuf not in _FORMATS:
                    raise ValueError(f"input recording must be .wav or .flac, got {ip.name!r}")
                ip.parent.mkdir(parents=True, exist_ok=True)
                self.input_path = unique_path(ip)
                reserved.append(self.input_path)
                isub = subtype if subtype in _SUBTYPES[isuf] else "PCM_16"
                self._in = sf.SoundFile(soundfile_name(self.input_path), "w", self.sample_rate,
                                        self.channels, subtype=isub, format=_FORMATS[isuf])
                files.append(self._in)
        except Exception:
            for f in files:
                f.close()
            for p in reserved:  # do not leave empty reserved files behind
                try:
                    p.unlink()
                except OSError:
                    pass
            raise

        self.start_time = datetime.now().astimezone()
        self._t0 = time.monotonic()
        self._end_time: datetime | None = None
        self.frames_written = 0  # output frames written to disk
        self.nonfinite_samples = 0  # NaN/Inf samples written as 0 (output and input)
        self.clipped_samples = 0    # samples beyond full scale clipped (integer subtypes)
        self.input_frames_written = 0
        self._frames_queued = 0  # output frames handed to write() (audio time for note_distance)
        self._distances: list[dict] = []
        self._modes: list[dict] = []
        self._meta_lock = threading.Lock()
        self._q: queue.Queue = queue.Queue()
        self._closed = False
        self._close_lock = threading.Lock()
        self._finalised = False
        self._meta_dirty = False
        self.on_error = on_error
        self.error: str | None = None
        self.failed = False  # a write failed: the recording stopped (``error`` says why)
        self.last_flush_time = time.monotonic()
        self.flushes = 0
        try:
            self._write_sidecar()
        except OSError:
            for f in files:
                f.close()
            for p in reserved:
                try:
                    p.unlink()
                except OSError:
                    pass
            raise
        self._thread = threading.Thread(target=self._writer, name=f"Recorder({self.path.name})",
                                        daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- producer side (any thread)
    def _block(self, block) -> np.ndarray:
        a, bad = sanitize(np.array(block, dtype=np.float32, copy=True))
        if bad:
            if self.nonfinite_samples == 0:
                log.warning("recorder %s: NaN/Inf samples written as 0", self.path.name)
            self.nonfinite_samples += bad
        if not self.subtype.startswith(("FLOAT", "DOUBLE")):
            over = int(np.count_nonzero(np.abs(a) > 1.0))
            if over:
                if self.clipped_samples == 0:
                    log.warning("recorder %s: samples beyond full scale clipped", self.path.name)
                self.clipped_samples += over
                np.clip(a, -1.0, 1.0, out=a)
        if self.channels == 1:
            return a.reshape(-1)
        return a.reshape(-1, self.channels)

    def write(self, block) -> None:
        """Queue one block of extracted output (copied; returns at once)."""
        if self._closed:
            return
        a = self._block(block)
        self._frames_queued += len(a)
        self._q.put(("out", a))

    def write_input(self, block) -> None:
        """Queue one block of raw input (ignored unless recording the input)."""
        if self._closed or self._in is None:
            return
        self._q.put(("in", self._block(block)))

    def tap(self, input_block, output_block) -> None:
        """An ``AudioStream.add_tap`` callback: records the output (and the input on request)."""
        self.write(output_block)
        if self._in is not None:
            self.write_input(input_block)

    def note_mode(self, mode: str) -> None:
        """Log the output mode (``"extract"`` / ``"suppress"``, :mod:`realtime_tse.modes`) from the
        output written next on, like :meth:`note_distance` (sidecar ``mode_changes``); nothing
        when it equals the last one logged."""
        self._note_change(self._modes, "mode", str(mode))

    def note_distance(self, d_q_m: float) -> None:
        """Log the query distance ``d_q_m`` (metres) from the output written next on (``audio_s``:
        the output queued so far, s); nothing when it equals the last one logged. The sidecar is
        rewritten at the next flush (at most every ``flush_interval_s``)."""
        self._note_change(self._distances, "d_q_m", float(d_q_m))

    def _note_change(self, changes: list, key: str, value) -> None:
        """Append ``{t_s, audio_s, key: value}`` to ``changes`` unless its last entry has ``value``."""
        if self._closed:
            return
        with self._meta_lock:
            if changes and changes[-1][key] == value:
                return
            changes.append({"t_s": round(self.elapsed_s, 4),
                            "audio_s": round(self._frames_queued / self.sample_rate, 4), key: value})
        self._meta_dirty = True

    # ---------------------------------------------------------------- state
    @property
    def elapsed_s(self) -> float:
        """Wall-clock seconds since the recorder started."""
        return time.monotonic() - self._t0

    @property
    def duration_s(self) -> float:
        """Seconds of output audio written to disk so far."""
        return self.frames_written / self.sample_rate

    @property
    def closed(self) -> bool:
        """No more audio is taken: :meth:`close` was called, or a write failed."""
        return self._closed

    @property
    def distances(self) -> list[dict]:
        with self._meta_lock:
            return list(self._distances)

    def metadata(self) -> dict:
        with self._meta_lock:
            dist, modes = list(self._distances), list(self._modes)
        md = {
            "file": self.path.name,
            "model": self.model_name,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "subtype": self.subtype,
            "start_time": self.start_time.isoformat(timespec="milliseconds"),
            "input_file": self.input_path.name if self.input_path else None,
            "distance_changes": dist,
            "mode_changes": modes,
        }
        if self.extra:
            md["extra"] = self.extra
        if self._end_time is not None:
            md.update(end_time=self._end_time.isoformat(timespec="milliseconds"),
                      frames=self.frames_written, duration_s=round(self.duration_s, 4),
                      input_frames=self.input_frames_written if self._in is not None else None)
        md.update(nonfinite_samples=self.nonfinite_samples, clipped_samples=self.clipped_samples)
        if self.error:
            md["error"] = self.error
        return md

    # ---------------------------------------------------------------- writer thread
    def _write_sidecar(self) -> None:
        """Write the sidecar whole (temporary file + rename); on a full disk, over the old one in
        place when the new text fits in the blocks the old one holds. Raises OSError."""
        self._meta_dirty = False
        data = (json.dumps(self.metadata(), indent=2) + "\n").encode()
        try:
            write_bytes_atomic(self.sidecar_path, data)
        except FileWriteError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT) or not self._rewrite_in_place(data):
                raise

    def _rewrite_in_place(self, data: bytes) -> bool:
        """Overwrite the sidecar with ``data`` without allocating: only when ``data`` fits in the
        blocks the file already holds (one write of at most a few KB). True when written."""
        try:
            fd = os.open(self.sidecar_path, os.O_WRONLY)
        except OSError:
            return False
        try:
            if os.fstat(fd).st_blocks * 512 < len(data):
                return False
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
            log.info("recorder sidecar %s: disk full, rewritten in place", self.sidecar_path)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def _flush(self) -> None:
        self._out.flush()
        if self._in is not None:
            self._in.flush()
        self.last_flush_time = time.monotonic()
        self.flushes += 1

    def _writer(self) -> None:
        dirty = False
        while True:
            timeout = max(0.0, self.last_flush_time + self.flush_interval_s - time.monotonic())
            try:
                kind, data = self._q.get(timeout=timeout)
            except queue.Empty:
                kind, data = "tick", None
            target = self.path
            try:
                if kind == "out":
                    self._out.write(data)
                    self.frames_written += len(data)
                    dirty = True
                elif kind == "in":
                    target = self.input_path
                    self._in.write(data)
                    self.input_frames_written += len(data)
                    dirty = True
                elif kind == "close":
                    return
                if time.monotonic() - self.last_flush_time >= self.flush_interval_s:
                    if dirty:
                        self._flush()
                        dirty = False
                    else:
                        self.last_flush_time = time.monotonic()
                    if self._meta_dirty:
                        target = self.sidecar_path
                        self._write_sidecar()
            except Exception as e:  # noqa: BLE001  (disk full, file removed, read-only, ...)
                self._stop_on_failure(e, target)
                return

    def _stop_on_failure(self, e: BaseException, target) -> None:
        """A write failed (writer thread): stop taking audio, close the files, finalise the
        sidecar with the reason, tell ``on_error``."""
        reason, _ = write_error_reason(e, target)
        self.error = f"cannot write {target}: {reason}"
        self.failed = True
        self._closed = True
        log.error("recording stopped after %.2f s: %s", self.duration_s, self.error)
        log.debug("recorder write failed", exc_info=e)
        self._finalise()
        cb = self.on_error
        if cb is not None:
            try:
                cb(self.error)
            except Exception:  # noqa: BLE001
                log.exception("recorder on_error callback raised")

    # ---------------------------------------------------------------- closing
    def _finalise(self) -> None:
        """Close the sound files and write the final sidecar (once)."""
        with self._close_lock:
            if self._finalised:
                return
            self._finalised = True
        for f in (self._out, self._in):
            if f is not None:
                try:
                    f.close()
                except Exception as e:  # noqa: BLE001
                    self.error = self.error or f"cannot close {getattr(f, 'name', '?')}: {e}"
        if self.failed:
            # a failed write may have put part of its block on disk: the file's own count
            try:
                import soundfile as sf  # noqa: PLC0415
                self.frames_written = int(sf.info(soundfile_name(self.path)).frames)
            except Exception:  # noqa: BLE001
                pass
        self._end_time = datetime.now().astimezone()
        try:
            self._write_sidecar()
        except OSError as e:
            self.error = self.error or f"{type(e).__name__}: {e}"
            log.error("recorder sidecar %s: %s", self.sidecar_path, e)

    def close(self) -> None:
        """Write everything queued, close the files and finalise the sidecar (idempotent; after a
        failed write, only waits for the writer thread)."""
        with self._close_lock:
            self._closed = True
        self._q.put(("close", None))
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30.0)  # (only a hung disk takes that long)
        self._finalise()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # best effort: never leave a file without its final header
        try:
            if not self._finalised and not sys.is_finalizing():
                self.close()
        except Exception:  # noqa: BLE001
            pass

    def __repr__(self) -> str:
        return (f"Recorder({str(self.path)!r}, {self.sample_rate} Hz, "
                f"{self.duration_s:.1f} s written, closed={self._closed})")
