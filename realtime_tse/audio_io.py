"""The live audio stream around the model (:class:`DuplexStream`); its devices are in
:mod:`realtime_tse.devices`, the file that stands in for a microphone in :mod:`realtime_tse.file_source`.

Libraries (why these):

- **sounddevice** (PortAudio) for devices: one duplex callback stream on every desktop OS and on
  PulseAudio/ALSA/JACK/CoreAudio/WASAPI alike, numpy buffers in the callback, stream latency and
  xrun flags reported by PortAudio itself. It needs the system PortAudio library
  (``apt-get install libportaudio2``); this module imports it lazily, so ``RingBuffer``,
  ``FileSource`` and a ``DuplexStream`` without devices work where PortAudio is missing.
- **soxr** (libsoxr) for sample-rate conversion: a streaming resampler (``soxr.ResampleStream``)
  with high quality at low CPU cost, so the device may run at 44.1/48 kHz while the model runs at
  16 kHz; used in worker threads only, never in the PortAudio callback.
- **soundfile** (libsndfile, bundled in the wheel) to read any WAV/FLAC/OGG for ``FileSource``.

Threading model of ``DuplexStream``:

    PortAudio callback  --in_ring-->  worker: resample dev->model, cut blocks of block_samples,
    (copies only,                       process_block(block), taps(in, out), resample model->dev
     counts xruns)      <--out_ring--

The callback never runs the model, never allocates sample memory and never logs: it copies between
the two ``RingBuffer`` s, counts xruns in integer counters and a preallocated event log, and
converts any exception into ``sounddevice.CallbackAbort`` after storing it. Everything else (model,
resampling, taps, error reporting) happens in the worker thread.

Decisions (not fixed by the paper or SPEC; recorded here):

- The device callback block defaults to the model block (scaled to the device rate). With the
  default jitter buffer of one block of silence, a block processed in less than one block period
  never underflows; total latency is then about two blocks + the device's own latency (+ the
  resamplers' delay when the rates differ). Smaller device blocks need a larger ``prefill_blocks``.
- When the device rate differs from the model rate the soxr streams deliver their output in bursts
  that lag the ideal count by up to a few hundred samples. The lag is measured once at start-up by
  feeding the resamplers silence in device-sized chunks, and covered by zeros put in front of the
  input path and extra silence in the output prefill, so the resamplers never cause an underflow.
- Xrun kinds: ``input_overflow`` / ``output_underflow`` (PortAudio status flags),
  ``input_ring`` (input ring full: the worker is too slow), ``late`` (the output ring had fewer
  samples than the callback needed: processing was late). ``xruns`` is their sum.
- A device that stops calling back for ``stall_timeout_s`` (default: 5 s during the first four
  callbacks, then the larger of 1 s and 8 device blocks) is declared gone: PulseAudio dying under an
  ALSA "pulse" device leaves the PortAudio stream "active" without callbacks, and closing such a
  stream can block forever, so streams are closed from a helper thread with a timeout.
- PortAudio's ALSA/PulseAudio duplex path sometimes fails its first poll ("ContinuePoll") when
  the capture side has no data yet; a stream that fails within its first ``startup_s`` (1 s) of
  audio is reopened (``max_start_retries``, default 2; counted in ``restarts``).
- The worker and the callback thread ask for nice -10 (``boost_priority``; allowed for root or
  with RLIMIT_NICE, silently skipped otherwise): on a loaded machine the audio threads then win
  the CPU over batch jobs.
- Latency (duplex): one block of capture + the jitter buffer (``prefill_blocks``) + the device
  buffers (PortAudio reports about 2 blocks in, 3 out on ALSA/PulseAudio) + the server's own
  buffering; ``estimated_latency_s`` sums the first three, the loopback test measures the total.
- Input freshness (device input only, never a file): the worker, not the callback, bounds the
  input ring. During start-up (the first ``startup_s`` of device time) anything above one device
  block + 5 ms is discarded; afterwards a ring holding more than ``max_input_backlog_s`` (default
  the larger of 0.25 s and 3 device blocks) is cut back to that target, oldest samples first
  (``input_backlog_drops`` events, ``input_samples_dropped`` samples). The callback also records
  PortAudio's ``time_info`` (``currentTime - inputBufferAdcTime``) as ``input_latency_s`` (last)
  and ``max_input_latency_s``, and counts ``stale_input_callbacks`` where the captured audio is
  older than the device's reported input latency + ``max_input_backlog_s``. Such a backlog sits in
  the sound server (PulseAudio keeps what it recorded before PortAudio's first, late callback and
  hands it over at normal speed through a duplex stream), out of this process's reach: it is
  measured and reported (a warning once), not skippable here.
- With ``input_file`` the file stands in for the microphone; with an output device the output
  device's clock paces it (the worker keeps the output ring at prefill + one block, and queues
  four device blocks before the device starts, because PortAudio pulls several at once), with
  ``output_device="null"`` (or no output device at all) a monotonic timer paces it. At end of file
  the last partial block is zero-padded, the output drains, and the stream ends (``wait()``
  returns, ``on_end`` is called); with ``loop=True`` the file restarts seamlessly.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

from .devices import (NULL_DEVICE, AudioDeviceError, DeviceInfo, _sd, devices_listed,
                      find_device, format_devices, list_devices, list_devices_fresh)
from .file_source import FileSource
from .live_config import LiveConfig
from .ringbuffer import RingBuffer
from .threads import AUDIO_NICE, set_thread_nice

__all__ = [
    "AudioDeviceError",
    "DeviceInfo",
    "list_devices",
    "find_device",
    "format_devices",
    "devices_listed",
    "list_devices_fresh",
    "FileSource",
    "DuplexStream",
    "RingBuffer",
    "NULL_DEVICE",
]

log = logging.getLogger(__name__)

_PREROLL_DEVICE_BLOCKS = 4  # file -> device: real audio queued before the device starts
XRUN_KINDS = ("input_overflow", "output_underflow", "input_ring", "late", "input_underflow")
_XRUN_LOG_CAPACITY = 4096


# devices (realtime_tse.devices) and the file source (realtime_tse.file_source) are defined in
# their own modules; their names are re-exported here for existing callers


def _thread_ids() -> set[int]:
    """Native ids of this process's threads (Linux /proc; empty elsewhere)."""
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def _thread_name(tid: int) -> str:
    try:
        with open(f"/proc/self/task/{tid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


# ------------------------------------------------------------------------------------ resampling
def _resampler_lag(in_rate: float, out_rate: float, chunk: int, quality: str,
                   seconds: float = 3.0) -> int:
    """Largest shortfall (in output samples) of a soxr stream fed ``chunk``-sized input chunks,
    relative to the ideal cumulative output ``k * chunk * out_rate / in_rate``."""
    import soxr  # noqa: PLC0415
    rs = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
    z = np.zeros(chunk, np.float32)
    got, worst = 0, 0.0
    for k in range(1, max(4, int(math.ceil(seconds * in_rate / chunk))) + 1):
        got += len(rs.resample_chunk(z))
        worst = max(worst, k * chunk * out_rate / in_rate - got)
    return int(math.ceil(worst))


# ------------------------------------------------------------------------------------ the stream
ProcessFn = Callable[[np.ndarray], np.ndarray]
TapFn = Callable[[np.ndarray, np.ndarray], None]


class DuplexStream:
    """Live audio around a block processor (the engine's model step).

    ``process_block(block) -> out_block``: ``block_samples`` float32 samples at ``model_rate`` in,
    the same number out; called from the worker thread only.

    Settings: ``config``, a :class:`realtime_tse.live_config.LiveConfig` (None: the defaults with
    ``loop=False``), and/or its fields as keywords over it (TypeError for other keywords); the
    fields used here:

    Sources and sinks:
      - input: the microphone ``input_device`` (index/name/None = default), or ``input_file``;
      - output: ``output_device`` (index/name/None = default) or ``"null"`` (taps only).
    ``device_rate``: the devices' rate (None: the model rate if the devices accept it, else the
    output (or input) device's default rate). Resampling between device and model rate uses soxr
    streams in the worker thread.
    ``prefill_blocks``: jitter buffer, silence put in the output ring before playback (in blocks).
    ``device_blocksize``: frames per PortAudio callback (None: one model block at device rate).
    ``latency``: PortAudio suggested latency (``"low"``, ``"high"`` or seconds; None: default).
    ``on_error(message)`` / ``on_end()``: called from the worker thread when the stream fails / when
    a non-looping input file has been played out.
    ``stall_timeout_s``: no callback for this long = device gone (default max(1 s, 8 blocks)).
    ``max_start_retries`` / ``startup_s``: reopen a stream that fails in its first second.
    ``boost_priority``: ask for nice -10 on the worker and callback threads.
    ``max_input_backlog_s``: the most device input the input ring may hold before the worker drops
    the oldest samples (None: the larger of 0.25 s and 3 device blocks); never applies to files.

    State: ``running``, ``ended``, ``error``, ``xruns`` (= ``input_overflows`` +
    ``input_underflows`` + ``output_underflows`` + ``input_ring_overflows`` +
    ``late_underflows``), ``xrun_events()``, ``blocks_processed``, ``mean_process_s``,
    ``max_process_s``, ``device_latency_s``, ``estimated_latency_s``, ``restarts``, ``stats()``.
    """

    def __init__(self, process_block: ProcessFn, model_rate: int, block_samples: int,
                 config: LiveConfig | None = None, *,
                 on_error: Callable[[str], None] | None = None,
                 on_end: Callable[[], None] | None = None, **settings):
        # the settings: config (None: the defaults, a file played once) with keywords over it
        cfg = LiveConfig.build(config if config is not None else LiveConfig(loop=False), **settings)
        self.config = cfg
        input_device, output_device, input_file = cfg.input_device, cfg.output_device, cfg.input_file
        device_rate, loop, prefill_blocks = cfg.device_rate, cfg.loop, cfg.prefill_blocks
        device_blocksize, latency, ring_seconds = cfg.device_blocksize, cfg.latency, cfg.ring_seconds
        quality, stall_timeout_s = cfg.quality, cfg.stall_timeout_s
        first_callback_timeout_s, max_start_retries = cfg.first_callback_timeout_s, cfg.max_start_retries
        startup_s, boost_priority = cfg.startup_s, cfg.boost_priority
        max_input_backlog_s, streams, jitter_ms = cfg.max_input_backlog_s, cfg.streams, cfg.jitter_ms
        max_stall_restarts = cfg.max_stall_restarts
        if block_samples <= 0 or model_rate <= 0:
            raise ValueError("block_samples and model_rate must be positive")
        if streams not in ("auto", "duplex", "separate"):
            raise ValueError(f"streams must be 'auto', 'duplex' or 'separate', got {streams!r}")
        if jitter_ms is not None and not 0.0 <= float(jitter_ms) <= 1000.0:
            raise ValueError(f"jitter_ms must be within 0..1000 ms, got {jitter_ms}")
        if prefill_blocks is not None and not 0.0 <= float(prefill_blocks) <= 64.0:
            raise ValueError(f"prefill_blocks must be within 0..64, got {prefill_blocks}")
        self.process_block = process_block
        self.model_rate = int(model_rate)
        self.block_samples = int(block_samples)
        self.input_file = Path(input_file) if input_file is not None else None
        self.loop = bool(loop)
        self.quality = quality
        self.ring_seconds = float(ring_seconds)
        self.latency_request = latency
        self._latency_user = latency
        self._pulse_env_noted = False
        self._streams_request = streams
        self.max_stall_restarts = int(max_stall_restarts)
        self.stall_restarts = 0  # stalls (device still listed) recovered by reopening the stream
        self._stall_times: list[float] = []
        self.on_error = on_error
        self.on_end = on_end
        self._stall_timeout = stall_timeout_s
        self._first_cb_timeout = float(first_callback_timeout_s)
        self.max_start_retries = int(max_start_retries)
        self.startup_s = float(startup_s)
        self.restarts = 0  # start-up failures recovered by reopening the stream
        self.boost_priority = bool(boost_priority)
        self.priority_boosted: list[str] = []  # threads whose priority was raised
        self._gen = 0
        self._taps: list[TapFn] = []

        null_out = output_device is not None and str(output_device).lower() in (NULL_DEVICE, "none")
        if self.input_file is None and input_device is not None \
                and str(input_device).lower() in (NULL_DEVICE, "none"):
            raise ValueError("input_device='null' needs input_file")
        self._file: FileSource | None = None
        if self.input_file is not None:
            self._file = FileSource(self.input_file, self.model_rate, loop=self.loop, quality=quality)

        # resolve devices (lazily imports sounddevice only when a device is used)
        self.input_info: DeviceInfo | None = None
        self.output_info: DeviceInfo | None = None
        if self._file is None:
            self.input_info = find_device(input_device, "input")
        if not null_out:
            try:
                self.output_info = find_device(output_device, "output")
            except AudioDeviceError:
                if output_device is not None or self._file is None:
                    raise
                log.warning("no default output device: playing %s to taps only", self.input_file)
        if self._file is not None:
            self.mode = "file" if self.output_info is not None else "file-null"
        else:
            self.mode = "duplex" if self.output_info is not None else "capture"

        # stream layout: one PortAudio duplex stream, or an input and an output stream. Separate
        # streams let the capture side drain what the sound server held before the first callback
        # (a duplex stream reads capture only as fast as it plays, so such a backlog stays for good)
        if self.mode != "duplex":
            self.streams = "single"
        elif streams == "auto":
            self.streams = "separate"
        else:
            self.streams = streams
        if latency is None and self.streams == "separate":
            self.latency_request = "low"  # PortAudio's 'high' let PulseAudio hold 2 s of capture

        self.device_rate = int(device_rate) if device_rate else self._pick_device_rate()
        r = self.device_rate / self.model_rate
        if device_blocksize:
            self.device_blocksize = int(device_blocksize)
        elif self.streams == "separate":
            # small callbacks (8 ms, at most one model block): the delay a device buffer adds
            # scales with its period
            self.device_blocksize = max(1, min(int(round(self.block_samples * r)),
                                               int(round(0.008 * self.device_rate))))
        else:
            self.device_blocksize = max(1, int(round(self.block_samples * r)))
        self.resampling = self.device_rate != self.model_rate and self.mode != "file-null"

        # jitter buffer and resampler lag compensation
        self._in_lag = self._out_lag = 0
        if self.resampling:
            margin_dev = int(math.ceil(0.001 * self.device_rate))
            margin_mod = int(math.ceil(0.001 * self.model_rate))
            if self.mode in ("duplex", "capture"):
                self._in_lag = _resampler_lag(self.device_rate, self.model_rate,
                                              self.device_blocksize, quality) + margin_mod
            if self.mode in ("duplex", "file"):
                self._out_lag = _resampler_lag(self.model_rate, self.device_rate,
                                               self.block_samples, quality) + margin_dev
        # the jitter buffer: output samples queued ahead of the device when a block is written
        if prefill_blocks is not None:
            jit = int(round(float(prefill_blocks) * self.block_samples * r))
        elif jitter_ms is not None:
            jit = int(round(float(jitter_ms) * 1e-3 * self.device_rate))
        elif self.mode == "duplex" and self.streams == "separate":
            # one output period + 16 ms for the worker's wake-up and compute jitter
            jit = self.device_blocksize + int(round(0.016 * self.device_rate))
        else:
            jit = int(round(self.block_samples * r))  # one block (file -> device, duplex)
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
        self._in_ring = RingBuffer(cap_dev)
        # input freshness: target after a trim, and the steady-state bound (device samples)
        self._in_target = self.device_blocksize + int(math.ceil(0.005 * self.device_rate))
        if max_input_backlog_s is None and self.streams == "separate":
            # the worker takes a block as soon as it is complete: more than a block + the jitter
            # buffer + two periods waiting means the worker was held up; play fresh audio instead
            bound = int(round(self.block_samples * r)) + self.prefill_samples \
                + 2 * self.device_blocksize
        elif max_input_backlog_s is None:
            bound = max(int(round(0.25 * self.device_rate)), 3 * self.device_blocksize)
        else:
            bound = int(round(float(max_input_backlog_s) * self.device_rate))
        self._in_bound = max(self._in_target, min(bound, cap_dev - self.device_blocksize))
        self.max_input_backlog_s = self._in_bound / self.device_rate
        self._out_ring = RingBuffer(cap_dev)
        self._acc = RingBuffer(int(self.ring_seconds * self.model_rate) + 4 * self.block_samples
                               + self._in_lag)

        # counters written by the callback (ints only) and the preallocated xrun log
        self._xlog_frames = np.zeros(_XRUN_LOG_CAPACITY, np.int64)
        self._xlog_kind = np.zeros(_XRUN_LOG_CAPACITY, np.int8)
        self._xlock = threading.Lock()
        self._streams_open: list = []
        self._reset_counters()

        self.error: str | None = None
        self._stream = None
        self._worker: threading.Thread | None = None
        self._stop_evt = threading.Event()
        self._ended = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        self.device_latency: tuple[float, float] = (0.0, 0.0)

    # ---------------------------------------------------------------- setup helpers
    def _pick_device_rate(self) -> int:
        if self.mode == "file-null":
            return self.model_rate
        sd = _sd()
        try:
            if self.input_info is not None:
                sd.check_input_settings(self.input_info.index, channels=1,
                                        samplerate=self.model_rate)
            if self.output_info is not None:
                sd.check_output_settings(self.output_info.index, channels=1,
                                         samplerate=self.model_rate)
            return self.model_rate
        except Exception:  # noqa: BLE001  (PortAudioError / ValueError: rate not supported)
            dev = self.output_info or self.input_info
            return int(dev.default_samplerate)

    def _reset_counters(self) -> None:
        self.input_overflows = 0  # PortAudio input overflow flags
        self.input_underflows = 0  # PortAudio input underflow flags (input was zeros)
        self.output_underflows = 0  # PortAudio output underflow flags
        self.input_ring_overflows = 0  # input ring full (worker too slow)
        self.late_underflows = 0  # output ring short (processing late)
        self._xn = 0
        self._cb_count = 0
        self._cb_frames = 0
        self._cb_tid = 0
        self._cb_boosted = False
        self._out_cb_tid = 0
        self._out_cb_boosted = False
        self._stalled = False
        self._cb_error: str | None = None
        self._finished_unexpectedly = False
        self._eof = False
        self.blocks_processed = 0
        self._proc_sum = 0.0
        self.max_process_s = 0.0
        self.tap_errors = 0
        self.output_ring_drops = 0
        self.input_backlog_drops = 0  # times the worker cut the input ring back (stale input)
        self.input_samples_dropped = 0  # device samples discarded by those cuts
        self.input_startup_drops = 0  # of input_backlog_drops: during start-up
        self._in_backlog_peak = 0  # largest input ring level passed on after start-up (samples)
        self._in_lat = 0.0  # PortAudio time_info: currentTime - inputBufferAdcTime (last, max)
        self._in_lat_max = 0.0
        self.stale_input_callbacks = 0  # callbacks whose input was older than expected
        self._stale_warned = False
        # separate streams: the output callback's own counters (the input's are _cb_*)
        self._out_cb_count = 0
        self._out_cb_frames = 0
        self._last_out_cb_count = 0
        self._last_out_cb_time = time.monotonic()
        self._out_flowing = False  # the worker has written audio: an empty ring is now an xrun
        self._out_dry = False  # the output callback found the ring short since the last write
        self._out_lat = 0.0  # PortAudio time_info: outputBufferDacTime - currentTime (last, max)
        self._out_lat_max = 0.0
        self.output_drops = 0  # blocks written short because the output ring held too much
        self.output_samples_dropped = 0
        self.output_rebuffers = 0  # jitter buffer refilled with silence after the ring ran dry
        self._write_level = 0  # output-ring level (device samples) when the last block was written
        self._write_level_max = 0

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
        """Input-to-output latency the design implies: one block of capture, the jitter buffer,
        resampler compensation and the device latency (the loopback test measures the real one)."""
        if self.mode != "duplex":
            return 0.0
        return (self.block_samples / self.model_rate + self.prefill_samples / self.device_rate
                + self._in_lag / self.model_rate + self.device_latency_s)

    @property
    def output_latency_s(self) -> float:
        """Device output delay when the last output callback ran, as PortAudio's ``time_info``
        reports it (``outputBufferDacTime - currentTime``, s; 0 where the backend does not say)."""
        return self._out_lat

    @property
    def live_latency_s(self) -> float:
        """Input-to-output delay from what the devices report now (s): the captured audio's age
        (``input_latency_s``, else the stream's input latency), one block, the resampler
        compensation, the output queued when the last block was written (the jitter buffer) and
        the device's output delay (``output_latency_s``, else the stream's output latency).
        Excludes the model's look-ahead (the engine adds it). 0 unless input and output run."""
        if self.mode != "duplex":
            return 0.0
        lin = self._in_lat or self.device_latency[0]
        lout = self._out_lat or self.device_latency[1]
        queued = self._write_level if self.streams == "separate" and self._out_flowing \
            else self.prefill_samples
        return (lin + self.block_samples / self.model_rate + self._in_lag / self.model_rate
                + queued / self.device_rate + lout)

    @property
    def callback_time_s(self) -> float:
        """Device time in seconds counted from the first callback (frames / device rate)."""
        return self._cb_frames / self.device_rate

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
        return self._in_backlog_peak / self.device_rate

    def xrun_events(self) -> list[tuple[float, str]]:
        """(device time in s since the stream started, kind) for each xrun (first 4096)."""
        n = min(self._xn, _XRUN_LOG_CAPACITY)
        return [(float(self._xlog_frames[i]) / self.device_rate, XRUN_KINDS[self._xlog_kind[i]])
                for i in range(n)]

    def stats(self) -> dict:
        return {
            "mode": self.mode, "running": self.running, "error": self.error,
            "model_rate": self.model_rate, "device_rate": self.device_rate,
            "block_samples": self.block_samples, "device_blocksize": self.device_blocksize,
            "prefill_samples": self.prefill_samples, "resampling": self.resampling,
            "xruns": self.xruns, "input_overflows": self.input_overflows,
            "input_underflows": self.input_underflows,
            "output_underflows": self.output_underflows,
            "input_ring_overflows": self.input_ring_overflows,
            "late_underflows": self.late_underflows,
            "blocks_processed": self.blocks_processed,
            "mean_process_s": self.mean_process_s, "max_process_s": self.max_process_s,
            "device_latency_s": self.device_latency_s,
            "estimated_latency_s": self.estimated_latency_s,
            "callbacks": self._cb_count, "tap_errors": self.tap_errors,
            "restarts": self.restarts,
            "max_input_backlog_s": self.max_input_backlog_s,
            "input_backlog_s": self.input_backlog_s,
            "input_backlog_drops": self.input_backlog_drops,
            "input_samples_dropped": self.input_samples_dropped,
            "input_startup_drops": self.input_startup_drops,
            "input_latency_s": self.input_latency_s,
            "max_input_latency_s": self.max_input_latency_s,
            "stale_input_callbacks": self.stale_input_callbacks,
            "streams": self.streams, "latency_request": self.latency_request,
            "jitter_ms": 1e3 * self.jitter_samples / self.device_rate,
            "output_drops": self.output_drops,
            "output_samples_dropped": self.output_samples_dropped,
            "output_rebuffers": self.output_rebuffers,
            "output_queue_s": self._write_level / self.device_rate,
            "max_output_queue_s": self._write_level_max / self.device_rate,
            "output_latency_s": self._out_lat, "max_output_latency_s": self._out_lat_max,
            "live_latency_s": self.live_latency_s,
            "stall_restarts": self.stall_restarts,
            "input_device": str(self.input_info) if self.input_info else None,
            "output_device": str(self.output_info) if self.output_info else None,
            "input_file": str(self.input_file) if self.input_file else None,
        }

    # ---------------------------------------------------------------- taps
    def add_tap(self, fn: TapFn) -> None:
        """``fn(input_block, output_block)`` at the model rate, from the worker, for every block.
        Must be cheap (queue the data); the arrays are not reused by the stream."""
        with self._lock:
            self._taps = self._taps + [fn]

    def remove_tap(self, fn: TapFn) -> None:
        with self._lock:
            self._taps = [t for t in self._taps if t is not fn]

    # ---------------------------------------------------------------- callback side
    def _xrun(self, kind: int, frames: int | None = None) -> None:
        with self._xlock:  # two callback threads with separate streams
            i = self._xn
            if i < _XRUN_LOG_CAPACITY:
                self._xlog_frames[i] = self._cb_frames if frames is None else frames
                self._xlog_kind[i] = kind
            self._xn = i + 1

    def _callback_output(self, outdata, frames, _time, status):
        """The output stream's callback (separate streams): copy from the output ring, count
        underflows, record the device's output delay from ``time_info``."""
        try:
            if status and status.output_underflow:
                self.output_underflows += 1
                self._xrun(1, self._out_cb_frames)
            got = self._out_ring.readinto(outdata[:, 0])
            if got < frames:
                outdata[got:, 0] = 0
                if self._out_flowing and not self._eof:
                    self._out_dry = True
                    self.late_underflows += 1
                    self._xrun(3, self._out_cb_frames)
            if outdata.shape[1] > 1:
                outdata[:, 1:] = outdata[:, :1]
            if _time is not None:
                lat = _time.outputBufferDacTime - _time.currentTime
                if 0.0 < lat < 3600.0:
                    self._out_lat = lat
                    if lat > self._out_lat_max:
                        self._out_lat_max = lat
            self._out_cb_frames += frames
            self._out_cb_count += 1
            if self._out_cb_tid == 0:
                self._out_cb_tid = threading.get_native_id()
        except BaseException as e:  # noqa: BLE001
            self._cb_error = f"audio output callback failed: {type(e).__name__}: {e}"
            raise self._sdmod.CallbackAbort from e

    def _callback_duplex(self, indata, outdata, frames, _time, status):
        try:
            if status:
                if status.input_overflow:
                    self.input_overflows += 1
                    self._xrun(0)
                if status.output_underflow:
                    self.output_underflows += 1
                    self._xrun(1)
                if status.input_underflow:  # PortAudio filled the input with zeros
                    self.input_underflows += 1
                    self._xrun(4)
            if indata is not None:
                if self._in_ring.write(indata[:, 0]) < frames:
                    self.input_ring_overflows += 1
                    self._xrun(2)
                if _time is not None:
                    lat = _time.currentTime - _time.inputBufferAdcTime
                    if 0.0 < lat < 3600.0:  # 0 / garbage: the backend does not report it
                        self._in_lat = lat
                        if lat > self._in_lat_max:
                            self._in_lat_max = lat
                        if lat > self._stale_limit:
                            self.stale_input_callbacks += 1
            if outdata is not None:
                got = self._out_ring.readinto(outdata[:, 0])
                if got < frames:
                    outdata[got:, 0] = 0
                    if not self._eof:
                        self._out_dry = True
                        self.late_underflows += 1
                        self._xrun(3)
                if outdata.shape[1] > 1:
                    outdata[:, 1:] = outdata[:, :1]
                if _time is not None:
                    olat = _time.outputBufferDacTime - _time.currentTime
                    if 0.0 < olat < 3600.0:
                        self._out_lat = olat
                        if olat > self._out_lat_max:
                            self._out_lat_max = olat
            self._cb_frames += frames
            self._cb_count += 1
            if self._cb_tid == 0:
                self._cb_tid = threading.get_native_id()  # the worker raises its priority
        except BaseException as e:  # noqa: BLE001  -> abort the stream, report from the worker
            self._cb_error = f"audio callback failed: {type(e).__name__}: {e}"
            raise self._sdmod.CallbackAbort from e

    def _finished_callback(self):
        if not self._stop_evt.is_set():
            self._finished_unexpectedly = True

    # ---------------------------------------------------------------- start / stop
    def start(self) -> "DuplexStream":
        if self._started:
            raise RuntimeError("DuplexStream already started (create a new one to restart)")
        self.error = None
        self._prime()
        self._preroll_done = threading.Event()
        self._stream_opened = threading.Event()
        self._started = True
        self._worker = threading.Thread(target=self._run_worker, name="DuplexStream-worker",
                                        daemon=True)
        if self.mode == "file":
            # PortAudio pulls several buffers at once when an output stream starts: let the
            # worker put real audio in the ring first (it runs process_block; we only wait)
            self._worker.start()
            self._preroll_done.wait(10.0)
            if self._ended.is_set():  # process_block failed: already reported via on_error
                return self
        if self.mode != "file-null":
            try:
                self._open_stream()
            except BaseException:
                self._stop_evt.set()
                self._stream_opened.set()
                self._ended.set()
                raise
        self._stream_opened.set()
        if self.mode != "file":
            self._worker.start()
        return self

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
        if self.resampling:
            import soxr  # noqa: PLC0415
            if self.mode in ("duplex", "capture"):
                self._rs_in = soxr.ResampleStream(self.device_rate, self.model_rate, 1,
                                                  dtype="float32", quality=self.quality)
            if self.mode in ("duplex", "file"):
                self._rs_out = soxr.ResampleStream(self.model_rate, self.device_rate, 1,
                                                   dtype="float32", quality=self.quality)
        if self.mode in ("duplex", "file"):
            self._out_ring.write_zeros(self.prefill_samples)

    def _open_stream(self) -> None:
        sd = self._sdmod = _sd()
        self._gen += 1
        gen = self._gen  # callbacks of an abandoned (hung) earlier stream must not touch the rings

        def cb_duplex(indata, outdata, frames, t, status):
            if gen != self._gen:
                raise sd.CallbackAbort
            self._callback_duplex(indata, outdata, frames, t, status)

        def cb_input(indata, frames, t, status):
            if gen != self._gen:
                raise sd.CallbackAbort
            self._callback_duplex(indata, None, frames, t, status)

        def cb_output(outdata, frames, t, status):
            if gen != self._gen:
                raise sd.CallbackAbort
            self._callback_duplex(None, outdata, frames, t, status)

        def cb_out_separate(outdata, frames, t, status):
            if gen != self._gen:
                raise sd.CallbackAbort
            self._callback_output(outdata, frames, t, status)

        def finished():
            if gen == self._gen:
                self._finished_callback()

        common = dict(samplerate=self.device_rate, blocksize=self.device_blocksize,
                      dtype="float32", finished_callback=finished)
        # PULSE_LATENCY_MSEC makes libpulse override the buffer sizes the ALSA "pulse" plugin set
        # up for PortAudio; the plugin then never signals a writable period and the stream
        # delivers nothing. Take the value as PortAudio's suggested latency instead and remove
        # the variable from this process's environment (libpulse reads it again whenever the
        # plugin re-prepares the stream, e.g. after an xrun).
        pulse_ms = os.environ.pop("PULSE_LATENCY_MSEC", None)
        if pulse_ms is not None:
            try:
                want = float(pulse_ms) / 1e3
            except ValueError:
                want = None
            if want is not None and want > 0 and self._latency_user is None:
                self.latency_request = want
            if not self._pulse_env_noted:
                self._pulse_env_noted = True
                log.info("PULSE_LATENCY_MSEC=%s: used as PortAudio's suggested latency (%s), not "
                         "passed to libpulse (its override stalls PortAudio's ALSA 'pulse' "
                         "device); removed from this process's environment", pulse_ms,
                         self.latency_request)
        if self.latency_request is not None:
            common["latency"] = self.latency_request
        opened: list = []
        tasks0 = _thread_ids()
        try:
            if self.mode == "duplex" and self.streams == "separate":
                # output first: it plays the jitter buffer's silence until the capture delivers
                so = sd.OutputStream(device=self.output_info.index,
                                     channels=self._channels(sd, self.output_info, "output"),
                                     callback=cb_out_separate, **common)
                opened.append(so)
                s = sd.InputStream(device=self.input_info.index,
                                   channels=self._channels(sd, self.input_info, "input"),
                                   callback=cb_input, **common)
                opened.append(s)
                so.start()
            elif self.mode == "duplex":
                ch = (self._channels(sd, self.input_info, "input"),
                      self._channels(sd, self.output_info, "output"))
                s = sd.Stream(device=(self.input_info.index, self.output_info.index), channels=ch,
                              callback=cb_duplex, **common)
            elif self.mode == "capture":
                s = sd.InputStream(device=self.input_info.index,
                                   channels=self._channels(sd, self.input_info, "input"),
                                   callback=cb_input, **common)
            else:  # file -> output device
                s = sd.OutputStream(device=self.output_info.index,
                                    channels=self._channels(sd, self.output_info, "output"),
                                    callback=cb_output, **common)
            if s not in opened:
                opened.append(s)
            s.start()
        except sd.PortAudioError as e:
            for o in opened:
                try:
                    o.close(ignore_errors=True)
                except Exception:  # noqa: BLE001
                    pass
            raise AudioDeviceError(
                f"cannot open audio stream ({self.mode}, {self.streams} streams, "
                f"{self.device_rate} Hz, in={self.input_info}, out={self.output_info}): {e}. "
                f"Available devices:\n{format_devices()}") from e
        lat = s.latency
        if len(opened) == 2:  # separate: (input stream's, output stream's)
            self.device_latency = (float(opened[1].latency), float(opened[0].latency))
        elif isinstance(lat, (tuple, list)):
            self.device_latency = (float(lat[0]), float(lat[1]))
        elif self.mode == "capture":
            self.device_latency = (float(lat), 0.0)
        else:
            self.device_latency = (0.0, float(lat))
        self._stale_limit = self.device_latency[0] + self.max_input_backlog_s
        self._streams_open = opened
        self._stream = s
        # the sound library's own threads (libpulse's "threaded-ml" mainloops move the audio
        # between the server and PortAudio's buffers): starved, they make underflows
        for tid in sorted(_thread_ids() - tasks0):
            self._boost(tid, f"sound library thread {_thread_name(tid)}")

    def _channels(self, sd, info: DeviceInfo, kind: str) -> int:
        """Mono when the device accepts it, else its channel count capped at 2 (we use channel 0 /
        copy the mono output to every channel)."""
        check = sd.check_input_settings if kind == "input" else sd.check_output_settings
        try:
            check(info.index, channels=1, samplerate=self.device_rate)
            return 1
        except Exception:  # noqa: BLE001
            mx = info.max_input_channels if kind == "input" else info.max_output_channels
            return max(1, min(2, mx))

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the worker and close the device stream (idempotent)."""
        self._stop_evt.set()
        w = self._worker
        if w is not None and w is not threading.current_thread():
            w.join(timeout)
        self._close_stream(timeout)
        self._ended.set()
        if self._file is not None:
            self._file.close()

    def _close_stream(self, timeout: float) -> None:
        s, self._stream = self._stream, None
        streams, self._streams_open = (self._streams_open or [s]), []
        if s is None and not any(streams):
            return

        def close():
            for x in streams:
                if x is None:
                    continue
                try:
                    x.abort(ignore_errors=True)
                    x.close(ignore_errors=True)
                except Exception:  # noqa: BLE001
                    pass

        t = threading.Thread(target=close, name="DuplexStream-close", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            log.warning("audio stream did not close within %.1f s (device gone); abandoned", timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the stream ends (file played out, error, or stop()); True if it ended."""
        return self._ended.wait(timeout)

    def __enter__(self) -> "DuplexStream":
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"DuplexStream(mode={self.mode}, model_rate={self.model_rate}, "
                f"block={self.block_samples}, device_rate={self.device_rate}, "
                f"running={self.running}, xruns={self.xruns})")

    # ---------------------------------------------------------------- worker side
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

    def _device_failed(self, message: str) -> bool:
        """A device error: restart the stream if it failed during start-up (less than
        ``startup_s`` of audio; PortAudio's ALSA/PulseAudio path sometimes fails its first poll);
        later, when callbacks stopped, ask a child process whether PortAudio still lists the
        devices: still listed = a stall (a busy machine or sound server), recovered by reopening
        the stream (at most ``max_stall_restarts`` within 60 s, counted in ``stall_restarts``);
        not listed = removed; no answer = the sound server hangs. Else fail with a message that
        says which. Returns True when restarted."""
        if self._stop_evt.is_set():
            self._fail(message)
            return False
        if self._cb_frames < self.startup_s * self.device_rate \
                and self.restarts < self.max_start_retries:
            self.restarts += 1
            log.warning("audio stream failed during start-up (%s); restarting (%d/%d)", message,
                        self.restarts, self.max_start_retries)
            return self._reopen(message)
        if not self._stalled:
            self._fail(message)
            return False
        names = [i.name for i in (self.input_info, self.output_info) if i is not None]
        listed = devices_listed(names)
        now = time.monotonic()
        self._stall_times = [t for t in self._stall_times if now - t < 60.0]
        who = " and ".join(f"'{n}'" for n in dict.fromkeys(names))
        if listed is None:
            self._fail(f"{message}, and the sound server does not answer (listing the devices "
                       f"timed out): the server hangs or the machine is overloaded")
            return False
        if not listed:
            self._fail(f"{message}: audio device {who} is no longer listed (unplugged, or its "
                       "sound server stopped)")
            return False
        if len(self._stall_times) >= self.max_stall_restarts:
            self._fail(f"{message}; audio device {who} is still listed but stalled "
                       f"{len(self._stall_times) + 1} times within 60 s: the machine is too busy "
                       "for this stream (a larger block helps)")
            return False
        self._stall_times.append(now)
        self.stall_restarts += 1
        log.warning("%s; device %s still listed: a stall, not a removal; reopening the stream "
                    "(%d/%d within 60 s)", message, who, len(self._stall_times),
                    self.max_stall_restarts)
        return self._reopen(message, keep_counters=True)

    def _reopen(self, message: str, keep_counters: bool = False) -> bool:
        """Close the device stream(s), reset the rings and reopen; False (and failed) if the
        reopen fails. ``keep_counters`` keeps the xrun and drop counts (a stall restart)."""
        self._close_stream(2.0)
        saved = self._counter_snapshot() if keep_counters else None
        self._prime()
        if saved is not None:
            self.__dict__.update(saved)
        if self._file is not None:
            self._file.rewind()
        try:
            self._open_stream()
            return True
        except AudioDeviceError as e:
            self._fail(f"{message}; reopening the stream failed: {e}")
            return False

    _KEPT_ON_STALL = ("input_overflows", "input_underflows", "output_underflows",
                      "input_ring_overflows", "late_underflows", "blocks_processed", "_proc_sum",
                      "max_process_s", "tap_errors", "output_ring_drops", "input_backlog_drops",
                      "input_samples_dropped", "input_startup_drops", "stale_input_callbacks",
                      "output_drops", "output_samples_dropped", "output_rebuffers",
                      "_in_lat_max", "_out_lat_max", "_write_level_max", "_in_backlog_peak")

    def _counter_snapshot(self) -> dict:
        return {k: getattr(self, k) for k in self._KEPT_ON_STALL}

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
        if self._rs_out is not None:
            out = self._rs_out.resample_chunk(out)
        if self.streams == "separate":
            out = self._level_output(out)
        n = self._out_ring.write(out)
        if n < len(out):
            self.output_ring_drops += len(out) - n

    def _level_output(self, out: np.ndarray) -> np.ndarray:
        """The adaptive jitter buffer of separate streams (worker side, before a block is
        written): at the first block and after the ring ran dry, queue silence up to
        ``prefill_samples`` (counted in ``output_rebuffers`` after the first); when the ring
        holds more than ``prefill_samples`` + two periods + 4 ms, drop that excess from the head
        of the block (``output_drops``, ``output_samples_dropped``) instead of playing it late."""
        level = self._out_ring.available
        if not self._out_flowing or self._out_dry:
            if self._out_flowing:
                self.output_rebuffers += 1
                if self.prefill_samples < self._jitter_max:  # adapt: one step deeper
                    step = max(self.device_blocksize, int(round(0.004 * self.device_rate)))
                    grow = min(step, self._jitter_max - self.prefill_samples)
                    self.prefill_samples += grow
                    self.jitter_samples += grow
                    self._out_bound += grow
            self._out_dry = False
            if level < self.prefill_samples:
                self._out_ring.write_zeros(self.prefill_samples - level)
                level = self.prefill_samples
            self._out_flowing = True
        elif level > self._out_bound:
            k = min(len(out), level - self.prefill_samples)
            out = out[k:]
            self.output_drops += 1
            self.output_samples_dropped += k
        self._write_level = level
        if level > self._write_level_max:
            self._write_level_max = level
        return out

    def _check_device(self) -> str | None:
        """An error message if the device stream failed or stalled, else None. Sets
        ``_stalled`` when the message is about callbacks that stopped (a stall or a removal:
        ``_device_failed`` tells them apart)."""
        self._stalled = False
        if self._cb_error is not None:
            return self._cb_error
        if self._finished_unexpectedly:
            self._stalled = True
            return "audio stream stopped unexpectedly"
        now = time.monotonic()
        if self._cb_count != self._last_cb_count:
            self._last_cb_count = self._cb_count
            self._last_cb_time = now
            if not self._cb_boosted and self._cb_tid:
                self._cb_boosted = True
                self._boost(self._cb_tid, "audio callback")
        if self._out_cb_count != self._last_out_cb_count:
            self._last_out_cb_count = self._out_cb_count
            self._last_out_cb_time = now
            if not self._out_cb_boosted and self._out_cb_tid:
                self._out_cb_boosted = True
                self._boost(self._out_cb_tid, "audio output callback")
        stall = self._stall_timeout or max(1.5, 8 * self.device_blocksize / self.device_rate)
        sides = [("input" if self.streams == "separate" else "audio", self._cb_count,
                  self._last_cb_time)]
        if self.streams == "separate":
            sides.append(("output", self._out_cb_count, self._last_out_cb_time))
        for what, count, last in sides:
            if count < 4:
                # start-up: PortAudio/PulseAudio may call back once (priming) and then pause for
                # more than a second before the stream really flows
                if now - last > self._first_cb_timeout:
                    return (f"{what} device delivered no audio within "
                            f"{self._first_cb_timeout:.1f} s of start")
            elif now - last > stall:
                self._stalled = True
                return f"{what} device stopped delivering audio for {now - last:.1f} s"
        return None

    def _boost(self, tid: int, what: str) -> None:
        """Raise a thread's scheduling priority (nice -10) where the OS allows it: on a busy
        machine an audio thread that waits behind other processes is what makes xruns.
        Needs root or RLIMIT_NICE on Linux; silently skipped elsewhere."""
        if self.boost_priority and set_thread_nice(AUDIO_NICE, tid):
            self.priority_boosted.append(what)

    def _run_worker(self) -> None:
        self._boost(threading.get_native_id(), "worker")
        try:
            if self.mode == "file-null":
                self._worker_file_null()
            elif self.mode == "file":
                self._worker_file_device()
            else:
                self._worker_capture()
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

    def _worker_capture(self) -> None:
        B = self.block_samples
        chunk = np.empty(self._in_ring.capacity, np.float32)
        while not self._stop_evt.is_set():
            err = self._check_device()
            if err:
                if self._device_failed(err):
                    continue
                return
            self._trim_input()
            n = self._in_ring.readinto(chunk)
            if n:
                x = chunk[:n]
                if self._rs_in is not None:
                    x = self._rs_in.resample_chunk(x)
                self._acc.write(x)
            did = False
            while self._acc.available >= B and not self._stop_evt.is_set():
                out = self._process(self._acc.read(B))
                if self.mode == "duplex":
                    self._emit(out)
                did = True
            if not did:
                deficit = (B - self._acc.available) / self.model_rate
                cap = 0.002 if self.streams == "separate" else 0.005
                self._stop_evt.wait(min(cap, max(0.001, deficit / 2)))

    def _trim_input(self) -> None:
        """Keep the device input fresh (worker thread; device input only, never a file): during
        start-up cut the ring back to one block + 5 ms whenever it holds more, afterwards when it
        holds more than ``max_input_backlog_s``; oldest samples first, counted."""
        n = self._in_ring.available
        startup = self._cb_frames < self.startup_s * self.device_rate
        if n > (self._in_target if startup else self._in_bound):
            k = self._in_ring.skip(n - self._in_target)
            self.input_backlog_drops += 1
            self.input_samples_dropped += k
            if startup:
                self.input_startup_drops += 1
            n -= k
        if not startup and n > self._in_backlog_peak:
            self._in_backlog_peak = n
        if self.stale_input_callbacks and not self._stale_warned and self.streams == "separate":
            self._stale_warned = True
            log.info("captured audio arrived up to %.2f s late at start (held by the sound server "
                     "before the first callback); dropped, not played", self._in_lat_max)
        elif self.stale_input_callbacks and not self._stale_warned:
            self._stale_warned = True
            log.warning("captured audio arrives %.2f s late (device reports %.2f s): the sound "
                        "server holds a backlog recorded before the stream ran; it adds to the "
                        "input-to-output delay", self._in_lat, self.device_latency[0])

    def _worker_file_device(self) -> None:
        B = self.block_samples
        target = self.prefill_samples + self.device_blocksize
        blocks = self._file.blocks(B, realtime=False, pad=True)
        preroll = self.prefill_samples + _PREROLL_DEVICE_BLOCKS * self.device_blocksize
        try:
            while self._out_ring.available < preroll and not self._stop_evt.is_set():
                blk = next(blocks, None)
                if blk is None:
                    break
                self._emit(self._process(blk))
        finally:
            self._preroll_done.set()
        self._stream_opened.wait()
        if self._stop_evt.is_set():
            return
        self._last_cb_time = time.monotonic()
        while not self._stop_evt.is_set():
            err = self._check_device()
            if err:
                if self._device_failed(err):
                    blocks = self._file.blocks(B, realtime=False, pad=True)
                    continue
                return
            if not self._eof and self._out_ring.available < target:
                blk = next(blocks, None)
                if blk is None:
                    if self._rs_out is not None:
                        self._out_ring.write(self._rs_out.resample_chunk(
                            np.zeros(0, np.float32), last=True))
                    self._eof = True
                    self._drain_until = None
                    continue
                self._emit(self._process(blk))
                continue
            if self._eof and self._out_ring.available == 0:
                # let the device play out what it has buffered, then end
                if self._drain_until is None:
                    self._drain_until = time.monotonic() + self.device_latency[1] + 0.05
                if time.monotonic() >= self._drain_until:
                    return
            self._stop_evt.wait(min(0.005, 0.25 * self.device_blocksize / self.device_rate))

    def _worker_file_null(self) -> None:
        for blk in self._file.blocks(self.block_samples, realtime=True, pad=True,
                                     stop_event=self._stop_evt):
            self._process(blk)
            self.late_underflows = self._file.late  # timer clock restarts (consumer too slow)
