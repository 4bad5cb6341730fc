"""The live path: microphone (or a file paced in real time) -> model -> speakers, with the distance
scan beside it and an optional recording (:class:`LiveEngine`).

::

    eng = LiveEngine(load_model(), input_device=..., output_device=...)
    eng.start(); eng.distance_m = 2.0; eng.stats(); eng.stop()
"""
from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..live_config import LiveConfig
from .engine_recording import EngineRecording
from .record_rate import recording_rate
from .stats import LiveStats
from ..modes import check_mode
from ..scan.live_scan import ScanWorker, StreamingScanWorker
from ..audio.ringbuffer import History
from ..safety import OutputGuard, sanitize
from ..scan.result import ScanResult, default_grid
from ..streamer import Streamer
from ..threads import set_thread_nice

if TYPE_CHECKING:
    from ..model import TSEModel

__all__ = ["LiveEngine", "level_dbfs"]

log = logging.getLogger(__name__)


def level_dbfs(x: np.ndarray, floor_db: float = -120.0) -> float:
    """RMS level of ``x`` ([n] float) in dBFS, at least ``floor_db`` (also for an empty block):
    the level meters' and the live stats' one definition."""
    if len(x) == 0:
        return floor_db
    e = float(np.dot(x, x)) / len(x)
    return max(floor_db, 10.0 * math.log10(e + 1e-12))


class LiveEngine:
    """Live extraction: microphone (or a file paced in real time) -> model -> speakers.

    Built on :func:`realtime_tse.audio.streams.make_stream`'s stream: its worker thread calls this
    engine's block processor (the :class:`Streamer`, then bypass / dry-wet / volume), taps feed
    the distance scan and the recorder. The distance scan runs in its own low-priority thread:
    for causal checkpoints :class:`realtime_tse.scan.live_scan.StreamingScanWorker` (one batched
    streaming state for the query grid, fed with the new input every ``scan_update_s``; the
    profile covers the last ``scan_seconds``), for bidirectional ones
    :class:`realtime_tse.scan.live_scan.ScanWorker` (the offline model on the last ``scan_seconds`` of
    input, every cycle).

    Settable from any thread (plain attribute writes): ``distance_m`` (validated; the worker takes
    the newest value at each block boundary, so however fast it changes (a slider dragged) the
    stream re-primes at most once per block, and a recording notes at most one change per block),
    ``bypass`` (the dry input, delayed like the extraction, goes out), ``wet``
    (0..1 dry/wet mix), ``volume`` (output gain, 0..2).

    Read-only stats: ``rtf`` (smoothed processing time / block duration), ``xruns``,
    ``algorithmic_latency_ms``, ``device_latency_ms``, ``total_latency_ms`` (algorithmic +
    buffers + device, as the devices report it), ``input_level_db``, ``output_level_db``,
    ``device`` ("cpu"/"cuda"), ``model_sample_rate``, ``device_sample_rate``,
    ``source_sample_rate``, ``output_sample_rate``, ``latest_scan``,
    ``scan_count``, ``scan_rate_hz``, ``scan_skips``, ``error``, ``notice`` (one line, e.g. NaN
    input), ``nonfinite_in``.

    Output safety: every block that goes to the speakers (and so into a recording) passes
    :class:`realtime_tse.safety.OutputGuard` (``output_guard``): NaN/Inf -> 0, a 5 Hz DC blocker
    and a zero-latency peak limiter with a -1 dBFS ceiling; the input's NaN/Inf samples are replaced
    by 0 before the model, the dry path and the scan.

    Args:
        model: a :class:`TSEModel`.
        config: the live settings, :class:`realtime_tse.live_config.LiveConfig` (block, devices
            or input file, initial distance, scan, threads, priorities, the audio stream's
            settings); None = the defaults.
        settings: LiveConfig fields given as keywords, over ``config`` (e.g. ``block_ms=64,
            input_file=..., output_device="null", scan=False``; TypeError for others).
        on_error(message), on_scan(ScanResult), on_end(): callbacks from worker threads.
    Attributes:
        config: the LiveConfig in use.
    Raises (constructor): ValueError (bad distance / block), AudioDeviceError (unknown device,
    no PortAudio), ValueError from an unreadable input file.
    """

    def __init__(self, model: "TSEModel", config: LiveConfig | None = None, *, on_error=None,
                 on_scan=None, on_end=None, **settings):
        cfg = LiveConfig.build(config, **settings)
        self.config = cfg
        self.model = model
        self.streamer = Streamer(model, block_ms=cfg.block_ms, aligned=True)
        self.block_samples = self.streamer.block_samples
        self._input_device, self._output_device = cfg.input_device, cfg.output_device
        self.input_file = cfg.input_file
        self.loop = bool(cfg.loop)
        self.torch_threads = cfg.torch_threads
        self.audio_nice = cfg.audio_nice
        self.on_error = on_error
        self.on_scan = on_scan
        self.on_end = on_end
        lo, hi = model.distance_range
        self._distance = float(self.model.check_distance(
            (lo + hi) / 2 if cfg.distance_m is None else cfg.distance_m)[0])
        self.bypass = False
        self._mode = check_mode(cfg.mode)
        self._vmic = None               # realtime_tse.audio.virtual_mic.VirtualMic while running
        self._vmic_tap = None
        self._wet = 1.0
        self._volume = 1.0
        self.error: str | None = None
        self.notice: str | None = None  # a one-line, non-fatal remark for the status bar / log
        self.nonfinite_in = 0           # NaN/Inf input samples replaced by 0 since start()
        self.output_guard = OutputGuard(model.sample_rate)  # DC blocker + -1 dBFS peak limiter
        self.input_level_db = -120.0
        self.output_level_db = -120.0
        self._rtf = 0.0
        self._blocks = 0
        sr = model.sample_rate
        self._recording = EngineRecording(lambda: self._stream)  # one recording at a time
        self.scan_enabled = bool(cfg.scan)
        self.scan_seconds = float(cfg.scan_seconds)
        # the streaming scan (causal models) reads new audio from here, up to ~1 s behind; the
        # window scan (bidirectional) the last scan_seconds
        self._history = History(int(max(self.scan_seconds, 2.0) * sr) + self.block_samples)
        grid = cfg.scan_distances_m if cfg.scan_distances_m is not None else \
            default_grid(lo, hi, cfg.scan_step_m)
        self.scan_distances_m = np.sort(model.check_distance(grid).astype(np.float64))
        self._scanner: StreamingScanWorker | ScanWorker | None = None
        self._scan_duty = cfg.scan_duty
        self.scan_update_s = float(cfg.scan_update_s)
        self._stream = self._make_stream()  # resolves devices now: errors surface here
        self._started = False

    # -- settable controls -----------------------------------------------------------------------
    @property
    def distance_m(self) -> float:
        return self._distance

    @distance_m.setter
    def distance_m(self, value: float) -> None:
        self._distance = float(self.model.check_distance(value)[0])

    @property
    def mode(self) -> str:
        """``"extract"`` or ``"suppress"`` (:mod:`realtime_tse.modes`); set at any time, it applies
        from the next block on (and is noted by a running recording)."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._mode = check_mode(value)

    @property
    def virtual_mic(self):
        """The running :class:`realtime_tse.audio.virtual_mic.VirtualMic`, or None."""
        return self._vmic

    @property
    def wet(self) -> float:
        return self._wet

    @wet.setter
    def wet(self, value: float) -> None:
        self._wet = min(max(float(value), 0.0), 1.0)

    @property
    def volume(self) -> float:
        return self._volume

    @volume.setter
    def volume(self, value: float) -> None:
        self._volume = min(max(float(value), 0.0), 2.0)

    # -- read-only stats -------------------------------------------------------------------------
    @property
    def rtf(self) -> float:
        """Processing time / block duration, exponentially smoothed (about 1 s)."""
        return self._rtf

    @property
    def xruns(self) -> int:
        return int(self._stream.xruns) if self._stream is not None else 0

    def xrun_events(self) -> list:
        """(device seconds since start, kind) per xrun, from the stream."""
        return self._stream.xrun_events() if self._stream is not None else []

    @property
    def algorithmic_latency_ms(self) -> float:
        """Block + model look-ahead (frame - hop), ms: what the extraction itself adds."""
        return 1e3 * self.streamer.latency_s

    @property
    def device_latency_ms(self) -> float:
        """PortAudio's reported input + output latency, ms (0 without devices)."""
        return 1e3 * self._stream.device_latency_s if self._stream is not None else 0.0

    @property
    def estimated_latency_ms(self) -> float:
        """Input-to-output latency the design implies: capture block, jitter buffer, resampler
        compensation, device latency and the model's look-ahead (ms)."""
        if self._stream is None:
            return float("nan")
        return 1e3 * (self._stream.estimated_latency_s
                      + (self.streamer.n_fft - self.streamer.hop) / self.model.sample_rate)

    @property
    def total_latency_ms(self) -> float:
        """Input-to-output delay, ms, from what the devices report now: the captured audio's age,
        the block, the output queued ahead of the device (jitter buffer), the device's output
        delay (PortAudio ``time_info``), the resamplers' compensation and filter delay when the
        app resamples, and the model's look-ahead (frame - hop). What the sound server adds
        beyond what PortAudio reports is not in it; ``benchmarks/results/realtime.json`` sets it beside
        the delay measured by cross-correlation through a null-sink loopback
        (``reported_total_ms`` vs ``delay_ms``). For a file or without an output device: the
        algorithmic latency."""
        st = self._stream
        if st is None or st.mode != "duplex":
            return self.algorithmic_latency_ms
        return 1e3 * (st.live_latency_s + self.streamer.delay_samples / self.model.sample_rate)

    @property
    def device(self) -> str:
        return self.model.device.type

    @property
    def model_sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def device_sample_rate(self) -> int:
        return int(self._stream.device_rate) if self._stream is not None else self.model.sample_rate

    @property
    def source_sample_rate(self) -> int:
        """The rate (Hz) of what is listened to: the input file's rate, or the rate the input
        device runs at (the rule of :func:`realtime_tse.live.record_rate.recording_rate`, so a
        recording is made at this rate); 0 without a stream. The model runs at
        :attr:`model_sample_rate`: the input is resampled to it where the two differ."""
        st = self._stream
        return recording_rate(st, self.model.sample_rate) if st is not None else 0

    @property
    def output_sample_rate(self) -> int:
        """The rate (Hz) the output device plays at; 0 without playback."""
        st = self._stream
        return int(st.device_rate) if st is not None and st.plays else 0

    @property
    def latest_scan(self) -> ScanResult | None:
        return self._scanner.latest if self._scanner is not None else None

    @property
    def scan_count(self) -> int:
        return self._scanner.count if self._scanner is not None else 0

    @property
    def scan_rate_hz(self) -> float:
        return self._scanner.rate_hz if self._scanner is not None else 0.0

    @property
    def scan_skips(self) -> int:
        """Times the streaming scan fell behind and skipped to the newest audio (0 for the window
        scan of bidirectional models)."""
        return int(getattr(self._scanner, "skips", 0)) if self._scanner is not None else 0

    @property
    def running(self) -> bool:
        return self._started and self._stream is not None and self._stream.running

    @property
    def stream(self):
        """The underlying :class:`realtime_tse.audio.base.AudioStream` (one class per mode)."""
        return self._stream

    def stats(self) -> LiveStats:
        """A typed snapshot of the engine and its stream (:class:`realtime_tse.live.stats.LiveStats`;
        ``stats()["key"]`` also reads the stream's figures)."""
        return LiveStats(
            running=self.running, error=self.error, notice=self.notice, device=self.device,
            model=self.model.name, rtf=self.rtf, distance_m=self.distance_m, bypass=self.bypass,
            wet=self.wet, volume=self.volume, input_level_db=self.input_level_db,
            output_level_db=self.output_level_db, xruns=self.xruns,
            algorithmic_latency_ms=self.algorithmic_latency_ms,
            device_latency_ms=self.device_latency_ms,
            estimated_latency_ms=self.estimated_latency_ms,
            total_latency_ms=self.total_latency_ms, model_sample_rate=self.model_sample_rate,
            device_sample_rate=self.device_sample_rate,
            source_sample_rate=self.source_sample_rate,
            output_sample_rate=self.output_sample_rate, scan_count=self.scan_count,
            scan_rate_hz=self.scan_rate_hz, scan_skips=self.scan_skips,
            nonfinite_in=self.nonfinite_in, state_resets=self.streamer.state_resets,
            limited_samples=self.output_guard.limiter.limited_samples,
            limiter_max_db=self.output_guard.limiter.max_reduction_db,
            stream=self._stream.stats() if self._stream is not None else {})

    # -- start / stop ---------------------------------------------------------------------------
    def _make_stream(self):
        from ..audio.streams import make_stream  # noqa: PLC0415
        return make_stream(self._process_block, self.model.sample_rate, self.block_samples,
                           self.config, on_error=self._on_stream_error, on_end=self._on_stream_end)

    def start(self) -> "LiveEngine":
        """Start audio (and the distance scan, and the virtual microphone when configured).

        Raises AudioDeviceError if the device fails, VirtualMicError (a RuntimeError) when the
        virtual microphone cannot be made (no sound server: the message says what to install)."""
        if self.running:
            return self
        if self.config.virtual_mic and self._vmic is None:
            from ..audio.virtual_mic import VirtualMic  # noqa: PLC0415
            vm = VirtualMic(self.model.sample_rate, name=self.config.virtual_mic).open()
            self._vmic, self._vmic_tap = vm, (lambda inp, out: vm.write(out))
        fresh = self._started or self._stream is None
        if fresh:
            self._stream = self._make_stream()
        self.error = None
        self.streamer.reset()
        self.output_guard.reset()
        self.nonfinite_in = 0
        self.notice = None
        self._history.clear()
        self._rtf = 0.0
        self._blocks = 0
        if self.torch_threads and self.model.device.type == "cpu":
            torch.set_num_threads(int(self.torch_threads))
        self._stream.add_tap(self._tap)
        if self._vmic_tap is not None:
            self._stream.add_tap(self._vmic_tap)
        if fresh:
            self._recording.reattach()  # (start_recording added its tap to the previous stream)
        self._started = True
        self._stream.start()
        if self.scan_enabled:
            if self.model.causal:
                # in a child process, out of this process's GIL (RTSE_SCAN_PROCESS=0: a thread;
                # it falls back to the thread by itself when no process can start)
                from ..scan.process import ScanProcessWorker  # noqa: PLC0415
                self._scanner = ScanProcessWorker(
                    self.model, self._history, window_s=self.scan_seconds,
                    distances_m=self.scan_distances_m, on_result=self.on_scan,
                    update_s=self.scan_update_s, torch_threads=self.torch_threads)
            else:
                self._scanner = ScanWorker(self.model, self._history.latest,
                                           seconds=self.scan_seconds,
                                           distances_m=self.scan_distances_m,
                                           on_result=self.on_scan, duty=self._scan_duty,
                                           torch_threads=self.torch_threads)
            self._scanner.start()
        return self

    def stop(self) -> None:
        """Stop audio and scan; close a recording in progress (the file is kept). Idempotent."""
        sc = self._scanner
        if sc is not None:
            sc.request_stop()  # a scan in progress ends after its current query
        if self._stream is not None:
            self._stream.stop()
        self.stop_recording()
        vm, tap, self._vmic, self._vmic_tap = self._vmic, self._vmic_tap, None, None
        if vm is not None:
            if self._stream is not None and tap is not None:
                self._stream.remove_tap(tap)
            vm.close()
        if sc is not None:
            sc.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the stream ends (non-looping file played out, error, stop())."""
        return self._stream.wait(timeout) if self._stream is not None else True

    def __enter__(self) -> "LiveEngine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- recording -------------------------------------------------------------------------------
    def start_recording(self, path=None, record_input: bool = False,
                        sample_rate: int | None = None):
        """Record the output (what goes to the speakers) to ``path`` (default a time-stamped WAV
        in the recordings dir; never overwrites), at the input's rate (the file's, or the input
        device's: :func:`realtime_tse.live.record_rate.recording_rate`) unless ``sample_rate`` (Hz)
        says otherwise (e.g. the model's rate, to compare with offline extraction); the sidecar's
        ``extra.model_sample_rate`` is the model's rate. Returns the Recorder; RuntimeError when
        already recording (see :class:`realtime_tse.live.engine_recording.EngineRecording`)."""
        return self._recording.start(
            path, model_rate=self.model.sample_rate, sample_rate=sample_rate,
            model_name=self.model.name, record_input=record_input, distance_m=self._distance,
            extra={"block_ms": self.streamer.block_ms,
                   "model_sample_rate": self.model.sample_rate,
                   "input": self.input_file or str(self._input_device),
                   "checkpoint": str(self.model.path) if self.model.path else None})

    def stop_recording(self):
        """Stop recording (file and sidecar finalised and kept); returns the Recorder or None."""
        return self._recording.stop()

    @property
    def recorder(self):
        """The current :class:`realtime_tse.live.recorder.Recorder` (also after its write failed, until
        :meth:`stop_recording`), or None."""
        return self._recording.recorder

    @property
    def recording_error(self) -> str | None:
        """Why the last recording stopped by itself (a write failed), or None."""
        return self._recording.error

    # -- worker side -----------------------------------------------------------------------------
    def _process_block(self, block: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        if self._blocks == 0 and self.audio_nice is not None:
            # the stream's worker thread, once per stream
            set_thread_nice(self.audio_nice, rt_priority=self.config.rt_priority)
        block, bad = sanitize(np.asarray(block, dtype=np.float32).reshape(-1))
        if bad:
            self._note_nonfinite(bad)
        d = self._distance  # the newest distance at the block boundary, for the whole block
        mode = self._mode
        rec = self._recording.recorder
        if rec is not None:
            rec.note_distance(d)  # (logged only when it changed)
            rec.note_mode(mode)
        y = self.streamer.process(block, d, mode)   # suppress: everyone else
        dry = self.streamer.dry                     # the input, delayed like the extraction
        if self.bypass:
            out = dry
        else:
            w = self._wet
            out = y if w >= 1.0 else w * y + (1.0 - w) * dry
        v = self._volume
        if v != 1.0:
            out = out * v
        out = self.output_guard.process(out)  # finite, no DC, |out| <= the -1 dBFS ceiling
        self.input_level_db = level_dbfs(block)
        self.output_level_db = level_dbfs(out)
        dt = time.perf_counter() - t0
        r = dt * self.model.sample_rate / len(block)
        self._blocks += 1
        a = max(0.05, min(1.0, len(block) / self.model.sample_rate))  # ~1 s time constant
        self._rtf = r if self._blocks == 1 else (1 - a) * self._rtf + a * r
        return out

    def _tap(self, inp: np.ndarray, out: np.ndarray) -> None:
        self._history.write(sanitize(inp)[0])

    def _note_nonfinite(self, n: int) -> None:
        """Count NaN/Inf input samples; the first time, log it and set :attr:`notice`."""
        first = self.nonfinite_in == 0
        self.nonfinite_in += int(n)
        if first:
            self.notice = "input has NaN/Inf samples: replaced by silence"
            log.warning("live input: %d non-finite samples (NaN/Inf) replaced by 0 (further "
                        "ones only counted in stats()['nonfinite_in'])", n)

    def _on_stream_error(self, message: str) -> None:
        # the recording is closed and on_error told before ``error`` is set: who sees ``error``
        # finds the recording finalised
        msg = message.splitlines()[0] if message else "audio stream failed"
        if self._scanner is not None:
            self._scanner.request_stop()
        try:
            self.stop_recording()
        except Exception:  # noqa: BLE001
            pass
        cb = self.on_error
        if cb is not None:
            try:
                cb(msg)
            except Exception:  # noqa: BLE001
                pass
        self.error = msg

    def _on_stream_end(self) -> None:
        if self._scanner is not None:
            self._scanner.request_stop()
        cb = self.on_end
        if cb is not None:
            try:
                cb()
            except Exception:  # noqa: BLE001
                pass
