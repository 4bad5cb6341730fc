"""The live distance scan in a child process, out of the audio process's GIL.

Why: the streaming scan (:class:`realtime_tse.scan.live_scan.StreamingScanWorker`) spends most of its
time in torch kernels, which release the GIL, but the Python between them (the network's step is
dozens of small ops per hop) holds it in bursts, and the audio worker and the two PortAudio
callbacks (8 ms periods) are Python too. A child process has its own interpreter: what remains in
the audio process is a pump thread that wakes every ``pump_s`` (25 ms) to copy the new input
(microseconds) and to take the results.

What it bought, measured (``benchmarks/bench_realtime.py --only gil`` and ``--only scan-modes``,
2 cores at load average 4 to 8): little. A thread waking every 8 ms in the audio process was
late by the same amount with the scan in a thread, in a process or off (p99 7 to 10 ms, set by
the machine's scheduling: 4 ms without any engine), and the end-to-end xruns with the scan on came
in bursts of a few seconds in either mode; the scan's CPU load, not the GIL, is what the audio
feels on a saturated machine. The process keeps the scan from ever holding the audio's GIL
(heavier models, longer steps) at the cost of a child's start-up (ready 1.4 to 2.4 s after
start, mostly importing torch, at nice +5) and its memory (550 MB resident, torch's libraries
included).

Design (:class:`ScanProcessWorker`, a :class:`~realtime_tse.scan.live_scan.StreamingScanWorker` with the
same public interface: ``start``/``stop``, ``latest``, ``count``, ``rate_hz``, ``skips``,
``busy_s``, ``audio_s``, ``error``, ``stats()``, ``on_result``, ``request_stop``; this module is
the audio process's side, :mod:`realtime_tse.scan.child` the child's and what crosses between):

* audio: a lock-free single-writer ring in shared memory (an unlinked temporary file in
  ``/dev/shm``, mapped by both processes; the child gets its descriptor): a 64-bit write counter and
  ``ring_s`` seconds of float32 samples. The pump copies from ``source`` (the engine's input
  history) into it; the child reads with the same ``total`` / ``read(pos, n) -> (x, start)``
  contract as the history (:class:`SharedRingReader`, which detects samples overwritten during its
  copy), so the child runs the unchanged ``StreamingScanWorker.update`` with its lag/skip logic.
* model: the child rebuilds the net from ``cfg.to_json()`` and the state dict as numpy arrays
  (any other net is pickled as it is), sent on its stdin; one torch thread (``OMP_NUM_THREADS``
  too); nice ``+nice`` over the audio process (set by the parent right after the start and by
  the child before its imports); SIGINT ignored (Ctrl-C reaches the parent, which stops it).
* results: ``(ScanResult, stats)`` through a pipe (``multiprocessing.connection`` framing); the
  pump publishes them through :attr:`latest` and ``on_result`` (called from the pump thread) and
  sums the child's ``busy_s``, ``audio_s`` and ``skips`` over restarts.
* start: ``subprocess`` running ``python -c`` with the parent's ``sys.path``. Not
  ``multiprocessing``'s spawn/forkserver: they re-import the parent's ``__main__`` in the child (a
  user script without an ``if __name__ == "__main__"`` guard runs again there; seen while building
  this) and start a resource-tracker process; not fork: the audio process has PortAudio and Qt
  threads.

Lifetime: :meth:`stop` (or ``request_stop``, as the engine calls when the stream ends or fails)
asks the child to end, waits ``join_s`` (2 s), then terminates and finally kills it and reaps it:
no orphan. The child also exits by itself within ``poll_s`` once its parent is gone (it watches
``os.getppid()``), and an ``atexit`` hook ends any child left at interpreter exit. A child
that dies or does not report ready within ``start_timeout_s`` is restarted, at most
``max_restarts`` times within ``restart_window_s``; beyond that the scan stops with :attr:`error`
set (or, when no child ever got ready, it falls back to the in-process thread). The audio never
waits for the child: the pump only copies and polls.

Falling back: when a process cannot be started at all (``Popen`` raises, a frozen executable, the
net cannot be sent, or the child cannot build it) or ``RTSE_SCAN_PROCESS=0`` is set, the worker
runs as the in-process thread of :class:`~realtime_tse.scan.live_scan.StreamingScanWorker`; :attr:`mode` says which (``"process"`` or
``"thread"``) and :attr:`fallback_reason` why.
"""
from __future__ import annotations

import atexit
import collections
import json
import logging
import mmap
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection

import numpy as np

from .live_scan import StreamingScanWorker
from .child import BOOT, HEADER_BYTES, SharedRingReader, net_payload, ring_write

log = logging.getLogger(__name__)

__all__ = ["ScanProcessWorker", "SharedRingReader", "process_scan_enabled", "ENV_SWITCH"]

ENV_SWITCH = "RTSE_SCAN_PROCESS"  # "0" / "false" / "no" / "off": run the scan in a thread

_children: set = set()            # live child Popen objects, ended at interpreter exit
_children_lock = threading.Lock()


@atexit.register
def _end_children_at_exit() -> None:
    with _children_lock:
        procs = list(_children)
    for p in procs:
        _end_process(p, 0.5)


def _end_process(proc: subprocess.Popen, grace_s: float) -> int | None:
    """Wait ``grace_s`` for ``proc`` to end, then SIGTERM (2 s), then SIGKILL (5 s); reaps it.
    Returns its exit code (None if it survived SIGKILL, e.g. stuck in the kernel)."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None and proc.poll() is None:
            try:
                proc.send_signal(sig)
            except OSError:
                pass
        try:
            proc.wait(grace_s if sig is None else (2.0 if sig == signal.SIGTERM else 5.0))
            break
        except subprocess.TimeoutExpired:
            continue
    with _children_lock:
        if proc.returncode is not None:
            _children.discard(proc)
    return proc.returncode


def process_scan_enabled() -> bool:
    """False when ``RTSE_SCAN_PROCESS`` is ``0``, ``false``, ``no`` or ``off`` (case-insensitive);
    True otherwise (the default)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


class ScanProcessWorker(StreamingScanWorker):
    """:class:`~realtime_tse.scan.live_scan.StreamingScanWorker` run in a child process (module docstring).

    Arguments as for :class:`~realtime_tse.scan.live_scan.StreamingScanWorker` (``model``, ``source``,
    ``window_s``, ``distances_m``, ``on_result``, ``update_s``, ``max_lag_s``, ``torch_threads``,
    ``nice``, ``poll_s``, ``max_update_s``, ``net``, ``sample_rate``); ``torch_threads`` applies
    to the thread fallback only: the process always runs one intra-op thread (measured with the
    engine on 2 torch threads, 2 cores at load average 3.4 to 4.9: a child on 2 threads too made
    0.05 updates/s and the audio worker ran at RTF 0.91 with blocks up to 308 ms; a child on 1,
    0.85 updates/s beside RTF 0.81). Plus:

    Args:
        use_process: False = the in-process thread; None = unless ``RTSE_SCAN_PROCESS=0``.
        ring_s: seconds of audio the shared ring holds (at least ``max_lag_s + 2 * update_s``).
        pump_s: how often the pump thread copies audio and takes results, seconds.
        start_timeout_s: a child that has not reported ready after this long is restarted.
        max_restarts / restart_window_s: most child restarts within that many seconds before the
            scan gives up (``error`` set), or falls back to the thread if no child ever got ready.
        join_s: how long ending a ready child waits for it to stop by itself before SIGTERM (one
            still starting up gets SIGTERM at once).
    Attributes (beyond the thread worker's): ``mode`` (None before start, ``"process"``,
        ``"thread"``), ``fallback_reason``, ``pid`` (the child's, None without one),
        ``process_restarts``, ``ready`` (a child is up and scanning).
    Raises (constructor): as :class:`~realtime_tse.scan.live_scan.StreamingScanWorker` (ValueError for an
        empty query grid).
    """

    def __init__(self, model, source, *args, use_process: bool | None = None, ring_s: float = 4.0,
                 pump_s: float = 0.025, start_timeout_s: float = 60.0, max_restarts: int = 3,
                 restart_window_s: float = 60.0, join_s: float = 2.0, **kwargs):
        super().__init__(model, source, *args, **kwargs)
        self.use_process = process_scan_enabled() if use_process is None else bool(use_process)
        self._ring_samples = int(max(ring_s * self.sample_rate,
                                     self.max_lag + 2 * self.update_samples))
        self.pump_s = float(pump_s)
        self.start_timeout_s = float(start_timeout_s)
        self.max_restarts = int(max_restarts)
        self.restart_window_s = float(restart_window_s)
        self.join_s = float(join_s)
        self.mode: str | None = None
        self.fallback_reason: str | None = None
        self.pid: int | None = None
        self.process_restarts = 0
        self.ready = False
        self._pump: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._child_lock = threading.Lock()  # _end_child runs in the pump and in stop()
        self._child_totals = {"busy_s": 0.0, "audio_s": 0.0, "skips": 0}
        self._base = dict(self._child_totals)

    def stats(self) -> dict:
        s = super().stats()
        s.update(mode=self.mode, pid=self.pid, process_restarts=self.process_restarts)
        return s

    # -- start / stop ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start scanning without waiting for the child (its start-up, a few seconds of imports,
        runs beside the pump thread). Idempotent while running."""
        if (self._pump is not None and self._pump.is_alive()) or \
                (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._started = time.monotonic()
        if not self.use_process:
            self._fall_back("")
            return
        self.mode = "process"
        self._pump = threading.Thread(target=self._pump_run, name="rtse-scan-pump", daemon=True)
        self._pump.start()

    def stop(self, timeout: float = 10.0) -> None:
        """End the child (asked, then SIGTERM, then SIGKILL: at most about ``join_s`` + 7 s) and
        the pump, or the fallback thread; waits at most ``timeout`` s for the pump or thread."""
        self._stop.set()
        pump = self._pump
        if pump is not None:
            pump.join(timeout)
            self._pump = None
        self._end_child()  # normally done by the pump already; here if the pump was stuck
        super().stop(timeout)

    def _fall_back(self, reason: str) -> None:
        self.fallback_reason = reason or None
        self.mode = "thread"
        self.pid = None
        if reason:
            log.warning("distance scan runs in a thread of the audio process: %s", reason)
        if not self._stop.is_set():
            started = self._started
            self._thread = threading.Thread(target=self._run, name="rtse-scan", daemon=True)
            self._thread.start()
            self._started = started

    # -- the pump (audio process side) -----------------------------------------------------------
    def _pump_run(self) -> None:
        try:
            if getattr(sys, "frozen", False):
                raise RuntimeError("a frozen executable cannot start 'python -c'")
            f = None
            if os.path.isdir("/dev/shm"):
                try:
                    f = tempfile.TemporaryFile(dir="/dev/shm", prefix="rtse-scan-")
                except OSError:
                    f = None
            if f is None:
                f = tempfile.TemporaryFile(prefix="rtse-scan-")
            f.truncate(HEADER_BYTES + 4 * self._ring_samples)
            self._file = f
            self._mm = mmap.mmap(f.fileno(), 0)
            self._hdr = np.frombuffer(self._mm, dtype=np.int64, count=2, offset=0)
            self._ring = np.frombuffer(self._mm, dtype=np.float32, count=self._ring_samples,
                                       offset=HEADER_BYTES)
            payload = net_payload(self.net)
            pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)  # raises here if it cannot go
        except Exception as e:  # noqa: BLE001
            self._fall_back(f"cannot share the audio or the net with a process: "
                            f"{type(e).__name__}: {e}")
            return
        self._feed_pos = None
        deaths = collections.deque()
        ever_ready = False
        try:
            while not self._stop.is_set():
                try:
                    self._launch(payload)
                except Exception as e:  # noqa: BLE001 - no process here: the thread instead
                    self._end_child()
                    self._fall_back(f"cannot start the scan process: {type(e).__name__}: {e}")
                    return
                why = self._serve(time.monotonic())
                ever_ready = ever_ready or self.ready
                self._end_child()
                if why is None:  # asked to stop
                    return
                if not ever_ready and why.startswith("child failed"):
                    self._fall_back(f"the scan process could not build the net ({why})")
                    return
                now = time.monotonic()
                deaths.append(now)
                while deaths and now - deaths[0] > self.restart_window_s:
                    deaths.popleft()
                if len(deaths) > self.max_restarts:
                    if not ever_ready:
                        self._fall_back(f"the scan process never got ready ({why})")
                    else:
                        self.error = (f"distance scan stopped: its process failed "
                                      f"{len(deaths)} times within {self.restart_window_s:.0f} s "
                                      f"(last: {why})")
                        log.error("%s", self.error)
                    return
                self.process_restarts += 1
                self.error = f"distance scan process restarted ({why})"
                log.warning("%s", self.error)
        finally:
            self._end_child()
            self._file.close()  # the mapping stays valid for the views until they go

    def _launch(self, payload: tuple) -> None:
        self._flush_feed()
        self._hdr[1] = 0
        try:
            base = os.getpriority(os.PRIO_PROCESS, os.getpid())
        except (AttributeError, OSError):
            base = 0
        nice = None if self.nice is None else min(19, base + int(self.nice))
        threads = 1  # whatever torch_threads says: see the class docstring
        params = {"sample_rate": self.sample_rate, "distances_m": self.scan.distances_m,
                  "window_s": self.scan.window_s,
                  "update_s": self.update_samples / self.sample_rate,
                  "max_lag_s": self.max_lag / self.sample_rate, "max_update_s": self.max_update_s,
                  "poll_s": self.poll_s, "torch_threads": threads,
                  "start_pos": int(self._hdr[0])}
        r, w = os.pipe()
        try:
            args = {"path": list(sys.path), "nice": nice, "ring_fd": self._file.fileno(),
                    "conn_fd": w, "parent_pid": os.getpid()}
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            proc = subprocess.Popen([sys.executable, "-c", BOOT, json.dumps(args)],
                                    stdin=subprocess.PIPE, pass_fds=(self._file.fileno(), w),
                                    env=env, close_fds=True)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)  # the child holds its own copy; ours must go for EOF on its death
        with _children_lock:
            _children.add(proc)
        self._conn, self._proc, self.ready, self.pid = Connection(r, writable=False), proc, \
            False, proc.pid
        if nice is not None:
            try:  # at once, not only when the child gets to it after Python's start-up
                os.setpriority(os.PRIO_PROCESS, proc.pid, nice)
            except OSError:
                pass
        try:
            proc.stdin.write(pickle.dumps((payload, params), protocol=pickle.HIGHEST_PROTOCOL))
            proc.stdin.close()
        except OSError:  # the child died at once: _serve sees its exit code
            pass

    def _serve(self, t_launch: float) -> str | None:
        """Feed and drain until the child ends (returns why) or ``_stop`` is set (None)."""
        proc = self._proc
        while not self._stop.is_set():
            self._flush_feed()
            why = self._drain()
            if why is not None:
                return why
            if proc.poll() is not None:
                self._drain()
                return f"exit code {proc.returncode}"
            if not self.ready and time.monotonic() - t_launch > self.start_timeout_s:
                return f"not ready within {self.start_timeout_s:.0f} s"
            self._stop.wait(self.pump_s)
        return None

    def _flush_feed(self) -> None:
        """Copy the input that arrived since the last call from ``source`` into the ring."""
        total = int(self.source.total)
        if self._feed_pos is None or total < self._feed_pos:  # first call, or source restarted
            self._feed_pos = total
            return
        if total == self._feed_pos:
            return
        x, start = self.source.read(self._feed_pos, total - self._feed_pos)
        if len(x):
            ring_write(self._hdr, self._ring, np.asarray(x, dtype=np.float32))
        self._feed_pos = start + len(x)

    def _drain(self) -> str | None:
        """Take the child's messages; returns why the child is unusable, else None."""
        conn = self._conn
        try:
            while conn.poll(0):
                msg = conn.recv()
                kind = msg[0]
                if kind == "result":
                    self._publish(msg[1], msg[2])
                elif kind == "ready":
                    self.ready = True
                elif kind == "error":
                    self.error = msg[1]
                elif kind == "failed":
                    return f"child failed: {msg[1]}"
        except (EOFError, OSError):  # its end closed: it is gone or going
            code = self._proc.wait(5.0) if self._proc is not None else None
            return f"exit code {code}"
        return None

    def _publish(self, res, child: dict) -> None:
        self._child_totals = {k: child[k] for k in self._child_totals}
        self.busy_s = self._base["busy_s"] + child["busy_s"]
        self.audio_s = self._base["audio_s"] + child["audio_s"]
        self.skips = self._base["skips"] + int(child["skips"])
        self.error = None
        self.latest = res
        self.count += 1
        cb = self.on_result
        if cb is not None:
            try:
                cb(res)
            except Exception:  # noqa: BLE001 - a UI callback must not end the scan
                pass

    def _end_child(self) -> None:
        """Ask the child to stop, then SIGTERM / SIGKILL it; reap it; close the pipe."""
        with self._child_lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                self._hdr[1] = 1
                # a child still starting up has nothing to finish: SIGTERM at once
                if _end_process(proc, self.join_s if self.ready else 0.0) is None:
                    log.error("scan process %s did not end, even after SIGKILL", proc.pid)
                for k in self._base:
                    self._base[k] += self._child_totals[k]
                self._child_totals = {k: 0 * v for k, v in self._child_totals.items()}
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
            self.ready = False
            self.pid = None
