"""What every live audio mode shares (:class:`AudioStream`): the settings and buffer sizes, the
rings, the counters and ``stats()``, the taps, the processing step, start and stop, and the worker
thread that runs the mode's loop.

The modes themselves (one class each) are in :mod:`realtime_tse.audio.stream_modes`; what a PortAudio
device adds (callbacks, opening, health checks, restarts) in :mod:`realtime_tse.audio.device_stream`;
:func:`realtime_tse.audio.streams.make_stream` picks the class. The design and its decisions are
described in :mod:`realtime_tse.audio.streams`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

from .devices import DeviceInfo
from .file_source import FileSource
from ..live_config import LiveConfig
from .resample import PolyphaseStream
from .ringbuffer import RingBuffer
from .stream_report import XRUN_KINDS, XRUN_LOG_CAPACITY, reset_counters, stream_stats, xrun_events
from ..threads import AUDIO_NICE, set_thread_nice

__all__ = ["AudioStream", "ProcessFn", "TapFn", "XRUN_KINDS"]

log = logging.getLogger("realtime_tse.audio.streams")  # one logger for the live audio stream

ProcessFn = Callable[[np.ndarray], np.ndarray]
TapFn = Callable[[np.ndarray, np.ndarray], None]


def _resampler_lag(in_rate: float, out_rate: float, chunk: int, seconds: float = 3.0
                   ) -> tuple[int, float]:
    """(largest shortfall in output samples, filter delay in seconds) of the live resampler
    (:class:`realtime_tse.audio.resample.PolyphaseStream`) fed ``chunk``-sized input chunks; the
    shortfall is relative to the ideal cumulative output ``k * chunk * out_rate / in_rate`` (at
    most one sample: it emits every sample whose input has arrived)."""
    rs = PolyphaseStream(int(in_rate), int(out_rate))
    z = np.zeros(chunk, np.float32)
    got, worst = 0, 0.0
    for k in range(1, max(4, int(math.ceil(seconds * in_rate / chunk))) + 1):
        got += len(rs.resample_chunk(z))
        worst = max(worst, k * chunk * out_rate / in_rate - got)
    return int(math.ceil(worst)), rs.delay_s


class AudioStream:
    """Live audio around a block processor (the engine's model step); one subclass per mode.

    ``process_block(block) -> out_block``: ``block_samples`` float32 samples at ``model_rate`` in,
    the same number out; called from the worker thread only. ``cfg``: the settings (see
    :func:`realtime_tse.audio.streams.make_stream`, which checks them, opens the file and resolves the
    devices ``input_info`` / ``output_info``). ``on_error(message)`` / ``on_end()``: called from
    the worker thread when the stream fails / when a non-looping input file has been played out.

    State: ``running``, ``ended``, ``error``, ``xruns`` (= ``input_overflows`` +
    ``input_underflows`` + ``output_underflows`` + ``input_ring_overflows`` +
    ``late_underflows``), ``xrun_events()``, ``blocks_processed``, ``mean_process_s``,
    ``max_process_s``, ``device_latency_s``, ``estimated_latency_s``, ``restarts``, ``stats()``.

    A subclass sets the class attributes below and runs its loop in :meth:`_work`.
    """

    mode = ""  # "file-null", "file", "capture" or "duplex" (stats, repr, callers)
    streams = "single"  # PortAudio layout: "single", "duplex" (one in+out stream), "separate"
    captures = False  # reads a device input: input resampler, input freshness
    plays = False  # writes a device output: output resampler, the jitter buffer's silence
    default_latency: str | None = None  # PortAudio suggested latency when none is asked for
    # the way to the sound server (realtime_tse.audio.host_path): "jack" or "alsa" for a device
    # stream (make_stream sets it), None without a device
    audio_path: str | None = None

    def __init__(self, process_block: ProcessFn, model_rate: int, block_samples: int,
                 cfg: LiveConfig, *, input_info: DeviceInfo | None = None,
                 output_info: DeviceInfo | None = None, file: FileSource | None = None,
                 on_error: Callable[[str], None] | None = None,
                 on_end: Callable[[], None] | None = None):
        self.config = cfg
        self.process_block = process_block
        self.model_rate = int(model_rate)
        self.block_samples = int(block_samples)
        self.input_file = Path(cfg.input_file) if cfg.input_file is not None else None
        self.loop = bool(cfg.loop)
        self.quality = cfg.quality
        self.ring_seconds = float(cfg.ring_seconds)
        self.latency_request = cfg.latency if cfg.latency is not None else self.default_latency
        self._latency_user = cfg.latency
        self._pulse_env_noted = False
        self._streams_request = cfg.streams
        self.max_stall_restarts = int(cfg.max_stall_restarts)
        self.stall_restarts = 0  # stalls (device still listed) recovered by reopening the stream
        self._stall_times: list[float] = []
        self.on_error = on_error
        self.on_end = on_end
        self._stall_timeout = cfg.stall_timeout_s
        self._first_cb_timeout = float(cfg.first_callback_timeout_s)
        self.max_start_retries = int(cfg.max_start_retries)
        self.startup_s = float(cfg.startup_s)
        self.restarts = 0  # start-up failures recovered by reopening the stream
        self.boost_priority = bool(cfg.boost_priority)
        self.priority_boosted: list[str] = []  # threads whose priority was raised
        self._gen = 0
        self._taps: list[TapFn] = []
        self._file = file
        self.input_info = input_info
        self.output_info = output_info

        # device_rate: the output's rate (a mode without output: the input's); input_rate: the
        # capture's, its own only where the input has its own PortAudio stream
        self.device_rate = int(cfg.device_rate) if cfg.device_rate else self._pick_device_rate()
        self.input_rate = int(cfg.device_rate) if cfg.device_rate else self._pick_input_rate()
        r = self.device_rate / self.model_rate
        self._in_scale = self.input_rate / self.device_rate  # input samples per output sample
        self.device_blocksize = int(cfg.device_blocksize) if cfg.device_blocksize \
            else self._default_blocksize(r)
        self.input_blocksize = self._pick_input_blocksize(cfg.input_blocksize)
        self._resample_in = self.captures and self.input_rate != self.model_rate
        self._resample_out = self.plays and self.device_rate != self.model_rate
        self.resampling = self._resample_in or self._resample_out

        # jitter buffer and resampler lag compensation
        self._in_lag = self._out_lag = 0
        self.resampler_delay_s = 0.0  # the live resamplers' filter delay, in and out (s)
        if self.resampling:
            margin_dev = int(math.ceil(0.001 * self.device_rate))
            margin_mod = int(math.ceil(0.001 * self.model_rate))
            if self._resample_in:
                lag, delay = _resampler_lag(self.input_rate, self.model_rate, self.input_blocksize)
                self._in_lag = lag + margin_mod
                self.resampler_delay_s += delay
            if self._resample_out:
                lag, delay = _resampler_lag(self.model_rate, self.device_rate, self.block_samples)
                self._out_lag = lag + margin_dev
                self.resampler_delay_s += delay
        # the jitter buffer: output samples queued ahead of the device when a block is written
        if cfg.prefill_blocks is not None:
            jit = int(round(float(cfg.prefill_blocks) * self.block_samples * r))
        elif cfg.jitter_ms is not None:
            jit = int(round(float(cfg.jitter_ms) * 1e-3 * self.device_rate))
        else:
            jit = self._default_jitter(r)
        self.prefill_blocks = jit / (self.block_samples * r)
        self.jitter_samples = jit
        self.prefill_samples = jit + self._out_lag
        # above this output-ring level (when a block is written) the excess is dropped, not played
        # late: the jitter buffer + an input and an output period of phase wander + 4 ms
        self._out_bound = self.prefill_samples + 2 * self.device_blocksize \
            + int(math.ceil(0.004 * self.device_rate))
        # separate streams: each time the output ran dry the jitter buffer grows one period (at
        # least 4 ms), up to the larger of 64 ms and twice the start value
        self._jitter_max = max(self.prefill_samples * 2, int(round(0.064 * self.device_rate)))
        self._jitter0 = (self.jitter_samples, self.prefill_samples, self._out_bound)

        cap_dev = int(self.ring_seconds * self.device_rate) + 4 * self.device_blocksize \
            + self.prefill_samples
        cap_in = int(math.ceil(cap_dev * self._in_scale))
        self._in_ring = RingBuffer(cap_in)
        # input freshness: target after a trim, and the steady-state bound (input samples)
        self._in_target = int(round(self.device_blocksize * self._in_scale)) \
            + int(math.ceil(0.005 * self.input_rate))
        if cfg.max_input_backlog_s is None:
            bound = int(round(self._default_input_bound(r) * self._in_scale))
        else:
            bound = int(round(float(cfg.max_input_backlog_s) * self.input_rate))
        self._in_bound = max(self._in_target,
                             min(bound, cap_in - int(round(self.device_blocksize * self._in_scale))))
        self.max_input_backlog_s = self._in_bound / self.input_rate
        self._out_ring = RingBuffer(cap_dev)
        self._acc = RingBuffer(int(self.ring_seconds * self.model_rate) + 4 * self.block_samples
                               + self._in_lag)

        # counters written by the callback (ints only) and the preallocated xrun log
        self._xlog_frames = np.zeros(XRUN_LOG_CAPACITY, np.int64)
        self._xlog_kind = np.zeros(XRUN_LOG_CAPACITY, np.int8)
        self._xlock = threading.Lock()
        self._streams_open: list = []
        self._reset_counters()

        self.error: str | None = None
        self._stream = None
        self._worker: threading.Thread | None = None
        self._stop_evt = threading.Event()
        self._in_evt = threading.Event()  # set by the input callback: the worker wakes on it
        self._ended = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        self.device_latency: tuple[float, float] = (0.0, 0.0)

    # ---------------------------------------------------------------- sizes a mode may choose
    def _pick_device_rate(self) -> int:
        """The devices' rate when none is given (no device: the model rate)."""
        return self.model_rate

    def _pick_input_rate(self) -> int:
        """The capture's rate when none is given: the device rate (one PortAudio stream, or no
        input); separate input and output streams pick their own."""
        return self.device_rate

    def _default_blocksize(self, r: float) -> int:
        """Frames per PortAudio callback when none is given: one model block at device rate."""
        return max(1, int(round(self.block_samples * r)))

    def _pick_input_blocksize(self, asked: int | None) -> int:
        """Frames per input callback: the device block (one stream carries both directions;
        separate streams may choose their own)."""
        return int(round(self.device_blocksize * self._in_scale))

    def _default_jitter(self, r: float) -> int:
        """The jitter buffer (device samples) when neither prefill_blocks nor jitter_ms is
        given: one block."""
        return int(round(self.block_samples * r))

    def _default_input_bound(self, r: float) -> int:
        """The most device input the ring may hold when max_input_backlog_s is not given, in
        output device samples (scaled to the input's rate by the caller): the larger of 0.25 s
        and 3 device blocks."""
        return max(int(round(0.25 * self.device_rate)), 3 * self.device_blocksize)

    def _reset_counters(self) -> None:
        reset_counters(self)

    # ---------------------------------------------------------------- public state
    @property
    def xruns(self) -> int:
        return (self.input_overflows + self.input_underflows + self.output_underflows
                + self.input_ring_overflows + self.late_underflows)

    @property
    def mean_process_s(self) -> float:
        return self._proc_sum / self.blocks_processed if self.blocks_processed else 0.0

    @property
    def running(self) -> bool:
        return self._started and not self._ended.is_set()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    @property
    def device_latency_s(self) -> float:
        """PortAudio's reported input + output latency of the open stream (0 without devices)."""
        return float(sum(self.device_latency))

    @property
    def estimated_latency_s(self) -> float:
        """Input-to-output latency the design implies (0 unless input and output run; see the
        duplex modes)."""
        return 0.0

    @property
    def output_latency_s(self) -> float:
        """Device output delay when the last output callback ran, as PortAudio's ``time_info``
        reports it (``outputBufferDacTime - currentTime``, s; 0 where the backend does not say)."""
        return self._out_lat

    @property
    def live_latency_s(self) -> float:
        """Input-to-output delay from what the devices report now (0 unless input and output
        run; see the duplex modes)."""
        return 0.0

    @property
    def callback_time_s(self) -> float:
        """Device time in seconds counted from the first (input) callback."""
        return self._cb_frames / self._cb_rate

    @property
    def _cb_rate(self) -> int:
        """The rate of the frames ``_cb_frames`` counts: the input's where there is one."""
        return self.input_rate if self.captures else self.device_rate

    @property
    def input_latency_s(self) -> float:
        """Age of the captured audio when the last callback ran, as PortAudio's ``time_info``
        reports it (``currentTime - inputBufferAdcTime``; 0 where the backend does not say)."""
        return self._in_lat

    @property
    def max_input_latency_s(self) -> float:
        return self._in_lat_max

    @property
    def input_backlog_s(self) -> float:
        """Largest input-ring level (seconds) the worker passed on after start-up; bounded by
        ``max_input_backlog_s``."""
        return self._in_backlog_peak / self.input_rate

    def xrun_events(self) -> list[tuple[float, str]]:
        """(device time in s since the stream started, kind) for each xrun (first 4096)."""
        return xrun_events(self)

    def stats(self) -> dict:
        """Settings, counters and delay figures of the stream (:func:`stream_stats`)."""
        return stream_stats(self)

    # ---------------------------------------------------------------- taps
    def add_tap(self, fn: TapFn) -> None:
        """``fn(input_block, output_block)`` at the model rate, from the worker, for every block.
        Must be cheap (queue the data); the arrays are not reused by the stream."""
        with self._lock:
            self._taps = self._taps + [fn]

    def remove_tap(self, fn: TapFn) -> None:
        with self._lock:
            self._taps = [t for t in self._taps if t is not fn]

    # ---------------------------------------------------------------- start / stop
    def start(self) -> "AudioStream":
        if self._started:
            raise RuntimeError(f"{type(self).__name__} already started (create a new one to "
                               "restart)")
        self.error = None
        self._prime()
        self._started = True
        self._worker = threading.Thread(target=self._run_worker,
                                        name=f"{type(self).__name__}-worker", daemon=True)
        self._launch()
        return self

    def _launch(self) -> None:
        """Open what the mode plays through and start the worker (no device: just the worker)."""
        self._worker.start()

    def _prime(self) -> None:
        """Empty rings, fresh resamplers, the jitter buffer's silence, zeroed counters."""
        if not self._started:
            self.jitter_samples, self.prefill_samples, self._out_bound = self._jitter0
        self._reset_counters()
        self._stale_limit = math.inf  # set once the stream reports its input latency
        self._t_start = time.monotonic()
        self._last_cb_count = 0
        self._last_cb_time = self._t_start
        self._in_ring.clear()
        self._out_ring.clear()
        self._acc.clear()
        self._acc.write_zeros(self._in_lag)
        self._rs_in = self._rs_out = None
        if self._resample_in:
            self._rs_in = PolyphaseStream(self.input_rate, self.model_rate)
        if self._resample_out:
            self._rs_out = PolyphaseStream(self.model_rate, self.device_rate)
        if self.plays:
            self._out_ring.write_zeros(self.prefill_samples)

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the worker and close the device stream (idempotent)."""
        self._stop_evt.set()
        self._in_evt.set()
        w = self._worker
        # (ident None: never started, e.g. the device failed to open in start())
        if w is not None and w.ident is not None and w is not threading.current_thread():
            w.join(timeout)
        self._close_stream(timeout)
        self._ended.set()
        if self._file is not None:
            self._file.close()

    def _close_stream(self, timeout: float) -> None:
        """Close the device stream(s) (no device: nothing to close)."""

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the stream ends (file played out, error, or stop()); True if it ended."""
        return self._ended.wait(timeout)

    def __enter__(self) -> "AudioStream":
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(mode={self.mode}, model_rate={self.model_rate}, "
                f"block={self.block_samples}, device_rate={self.device_rate}, "
                f"running={self.running}, xruns={self.xruns})")

    # ---------------------------------------------------------------- worker side
    def _boost(self, tid: int, what: str) -> None:
        """Raise a thread's scheduling priority (``SCHED_FIFO`` at ``config.rt_priority``, else
        nice -10; :mod:`realtime_tse.threads`) where the OS allows it: on a busy machine an audio
        thread that waits behind other processes is what makes xruns. Silently skipped where
        refused."""
        if self.boost_priority and set_thread_nice(AUDIO_NICE, tid, self.config.rt_priority):
            self.priority_boosted.append(what)

    def _run_worker(self) -> None:
        self._boost(threading.get_native_id(), "worker")
        try:
            self._work()
        except Exception as e:  # noqa: BLE001  (process_block or resampler failure)
            self._fail(f"audio worker failed: {type(e).__name__}: {e}\n{traceback.format_exc()}")
            return
        if self.error is None and not self._stop_evt.is_set():
            # natural end of a non-looping input file
            self._stop_evt.set()
            self._close_stream(2.0)
            self._ended.set()
            if self.on_end is not None:
                try:
                    self.on_end()
                except Exception:  # noqa: BLE001
                    log.exception("on_end callback raised")

    def _work(self) -> None:
        """The mode's loop (worker thread); returns at the end of the input or on stop."""
        raise NotImplementedError

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        log.error("audio stream failed: %s", message)
        self._stop_evt.set()
        # a stream on a vanished device may never close: wait briefly, then report anyway (the
        # close goes on in its daemon thread)
        self._close_stream(0.5)
        self._ended.set()
        if self.on_error is not None:
            try:
                self.on_error(message)
            except Exception:  # noqa: BLE001
                log.exception("on_error callback raised")

    def _process(self, blk: np.ndarray) -> np.ndarray:
        inp = blk.copy()
        t = time.perf_counter()
        out = self.process_block(blk)
        dt = time.perf_counter() - t
        out = np.asarray(out, dtype=np.float32).reshape(-1)
        if len(out) != self.block_samples:
            raise ValueError(f"process_block returned {len(out)} samples, expected "
                             f"{self.block_samples}")
        self.blocks_processed += 1
        self._proc_sum += dt
        if dt > self.max_process_s:
            self.max_process_s = dt
        for tap in self._taps:
            try:
                tap(inp, out)
            except Exception:  # noqa: BLE001  (a tap bug must not break the audio)
                self.tap_errors += 1
                if self.tap_errors == 1:
                    log.exception("audio tap %r raised (further tap errors only counted)", tap)
        return out

    def _emit(self, out: np.ndarray) -> None:
        """A processed block to the output ring (resampled to the device rate)."""
        if self._rs_out is not None:
            out = self._rs_out.resample_chunk(out)
        out = self._level_output(out)
        n = self._out_ring.write(out)
        if n < len(out):
            self.output_ring_drops += len(out) - n

    def _level_output(self, out: np.ndarray) -> np.ndarray:
        """The output ring's level before a block is written (separate streams adapt it)."""
        return out
