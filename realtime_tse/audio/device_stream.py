"""What a PortAudio device adds to an :class:`realtime_tse.audio.base.AudioStream`
(:class:`DeviceStream`): the callbacks (copies only, xruns counted), opening the mode's stream(s)
(suggested latency, PULSE_LATENCY_MSEC, channels, the sound library's threads), closing them from
a helper thread, and the device's health: no callbacks, start-up failures and stalls, restarts.

The modes that use a device are in :mod:`realtime_tse.audio.stream_modes`; the design and its decisions
are described in :mod:`realtime_tse.audio.streams`.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

from . import host_path, jack_guard
from .base import AudioStream, log
from .devices import AudioDeviceError, DeviceInfo, _sd, devices_listed, format_devices

__all__ = ["DeviceStream", "stream_latency"]

# the most a stream's reported latency can be and be real (s): PortAudio 19.6's JACK host API
# reports 2**32 frames (an unsigned underflow, about 89,000 s at 48 kHz) for every JACK stream,
# which reaches the ALSA-path classes too where a JACK device is picked by index beside an ALSA one
MAX_STREAM_LATENCY_S = 10.0


def stream_latency(value) -> float:
    """PortAudio's reported latency of a stream (``Stream.latency``, s), or 0.0 where it cannot
    be real (not finite, not above 0, or :data:`MAX_STREAM_LATENCY_S` and more): the delay
    estimate then takes that side from the callbacks' timing alone."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    return v if 0.0 < v < MAX_STREAM_LATENCY_S else 0.0


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


class DeviceStream(AudioStream):
    """An :class:`AudioStream` that runs through PortAudio device stream(s).

    A subclass opens its stream(s) in :meth:`_open_streams` and runs its loop in ``_work``, which
    calls :meth:`_check_device` and, on an error, :meth:`_device_failed` (which may reopen).
    """

    _input_side = "audio"  # what the callback-count watchdog calls the (input) stream

    def _server_rate(self, info: DeviceInfo) -> int | None:
        """The PipeWire graph's rate (Hz) for a sound-server ALSA device (``pulse``,
        ``default``, ``pipewire``) on pipewire-pulse, None for any other device or server
        (:func:`realtime_tse.audio.host_path.pipewire_pulse_rate`, asked once per stream)."""
        if info.jack or info.name.strip().lower() not in host_path.SERVER_ALSA_DEVICES:
            return None
        if not hasattr(self, "_graph_rate"):
            self._graph_rate = host_path.pipewire_pulse_rate()
        return self._graph_rate

    def _rate_for(self, info: DeviceInfo, kind: str) -> int:
        """The rate a device opens at: on pipewire-pulse a sound-server device takes the graph's
        rate (:meth:`_server_rate`: the server does not resample it, so the latency it reports
        leaves out its resampler's misreported delay, and the app's own resampler's delay is
        counted); else the model rate; each where the device opens at it (mono, else its own
        channel count), else the device's default rate."""
        sd = _sd()
        check = sd.check_input_settings if kind == "input" else sd.check_output_settings
        mx = info.max_input_channels if kind == "input" else info.max_output_channels
        graph = self._server_rate(info)
        for rate in dict.fromkeys(r for r in (graph, self.model_rate) if r):
            for ch in dict.fromkeys((1, max(1, min(2, mx)))):
                try:
                    check(info.index, channels=ch, samplerate=rate)
                    return rate
                except Exception:  # noqa: BLE001  (PortAudioError / ValueError: not supported)
                    continue
        return int(info.default_samplerate)

    def _pick_device_rate(self) -> int:
        """The output's rate (the input's without an output). One PortAudio stream for both
        directions runs both at this rate; separate streams pick the input's on its own
        (:meth:`_pick_input_rate`)."""
        if self.output_info is not None:
            rate = self._rate_for(self.output_info, "output")
            if self.input_info is not None and self.streams != "separate" \
                    and rate == self.model_rate and self._rate_for(self.input_info, "input") != rate:
                rate = int(self.output_info.default_samplerate)
            return rate
        if self.input_info is not None:
            return self._rate_for(self.input_info, "input")
        return self.model_rate

    def _pick_input_rate(self) -> int:
        if self.input_info is not None and self.output_info is not None \
                and self.streams == "separate":
            return self._rate_for(self.input_info, "input")
        return self.device_rate

    def _launch(self) -> None:
        self._open_or_end()
        self._worker.start()

    def _open_or_end(self) -> None:
        """Open the device stream(s); on failure the stream has ended and the error is raised."""
        try:
            self._open_stream()
        except BaseException:
            self._stop_evt.set()
            self._ended.set()
            raise

    # ---------------------------------------------------------------- callback side
    def _note_out_latency(self, cb_time) -> None:
        """Keep the output latency PortAudio reports in a callback's ``time`` (DAC time minus now,
        seconds; None or implausible values ignored) and its maximum."""
        if cb_time is None:
            return
        lat = cb_time.outputBufferDacTime - cb_time.currentTime
        if 0.0 < lat < 3600.0:
            self._out_lat = lat
            if lat > self._out_lat_max:
                self._out_lat_max = lat

    def _xrun(self, kind: int, frames: int | None = None) -> None:
        with self._xlock:  # two callback threads with separate streams
            i = self._xn
            if i < len(self._xlog_kind):
                self._xlog_frames[i] = self._cb_frames if frames is None else frames
                self._xlog_kind[i] = kind
            self._xn = i + 1

    def _callback_duplex(self, indata, outdata, frames, _time, status):
        """The callback of one PortAudio stream that carries input, output or both (the other is
        None): copy into the input ring / from the output ring, count xruns, record the captured
        audio's age and the device's output delay from ``time_info``."""
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
                self._in_evt.set()  # wake the worker now, not at its next poll
                self._in_cb_t = time.monotonic()  # when this input arrived, and how much
                self._in_cb_n = frames
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
                self._note_out_latency(_time)
            self._cb_frames += frames
            self._cb_count += 1
            if self._cb_tid == 0:
                self._cb_tid = threading.get_native_id()  # the worker raises its priority
        except BaseException as e:  # noqa: BLE001  -> abort the stream, report from the worker
            self._cb_error = f"audio callback failed: {type(e).__name__}: {e}"
            raise self._sdmod.CallbackAbort from e

    def _callback_input(self, indata, frames, t, status):
        self._callback_duplex(indata, None, frames, t, status)

    def _callback_play(self, outdata, frames, t, status):
        self._callback_duplex(None, outdata, frames, t, status)

    def _finished_callback(self):
        if not self._stop_evt.is_set():
            self._finished_unexpectedly = True

    # ---------------------------------------------------------------- open / close
    def _guarded(self, fn: Callable) -> Callable:
        """``fn`` as a callback of the stream being opened: callbacks of an abandoned (hung)
        earlier stream must not touch the rings."""
        sd, gen = self._sdmod, self._gen

        def callback(*args):
            if gen != self._gen:
                raise sd.CallbackAbort
            fn(*args)
        return callback

    def _open_streams(self, sd, common: dict, opened: list) -> None:
        """Open and start this mode's PortAudio stream(s), each appended to ``opened`` as soon as
        it exists (closed again if a later one fails), and set ``device_latency``; ``common``:
        the keywords every stream takes (rate, blocksize, dtype, latency, finished_callback)."""
        raise NotImplementedError

    def _open_stream(self) -> None:
        sd = self._sdmod = _sd()
        self._gen += 1
        gen = self._gen

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
            self._open_streams(sd, common, opened)
        except sd.PortAudioError as e:
            for o in opened:
                try:
                    o.close(ignore_errors=True)
                except Exception:  # noqa: BLE001
                    pass
            rates = f"{self.device_rate} Hz" if self.input_rate == self.device_rate or \
                not self.captures else f"in {self.input_rate} Hz, out {self.device_rate} Hz"
            pulse = "".join(f" ({k}={os.environ[k]} is set: does PulseAudio have it? "
                            f"`pactl list short {'sources' if k == 'PULSE_SOURCE' else 'sinks'}`)"
                            for k in ("PULSE_SOURCE", "PULSE_SINK") if os.environ.get(k))
            raise AudioDeviceError(
                f"cannot open audio stream ({self.mode}, {self.streams} streams, "
                f"{rates}, in={self.input_info}, out={self.output_info}): {e}.{pulse} "
                f"Available devices:\n{format_devices()}") from e
        self._stale_limit = self.device_latency[0] + self.max_input_backlog_s
        self._streams_open = opened
        self._stream = opened[-1]
        # the sound library's own threads (libpulse's "threaded-ml" mainloops move the audio
        # between the server and PortAudio's buffers): starved, they make underflows
        for tid in sorted(_thread_ids() - tasks0):
            self._boost(tid, f"sound library thread {_thread_name(tid)}")

    def _channels(self, sd, info: DeviceInfo, kind: str) -> int:
        """Mono when the device accepts it, else its channel count capped at 2 (we use channel 0 /
        copy the mono output to every channel)."""
        check = sd.check_input_settings if kind == "input" else sd.check_output_settings
        rate = self.input_rate if kind == "input" else self.device_rate
        try:
            check(info.index, channels=1, samplerate=rate)
            return 1
        except Exception:  # noqa: BLE001
            mx = info.max_input_channels if kind == "input" else info.max_output_channels
            return max(1, min(2, mx))

    def _close_stream(self, timeout: float) -> None:
        """Abort and close the PortAudio stream(s) from a helper thread, waiting ``timeout`` s at
        most (a stream on a vanished device may never close: it is abandoned); on the JACK path
        with the PipeWire server gone they are left alone (:mod:`realtime_tse.audio.jack_guard`)."""
        s, self._stream = self._stream, None
        streams, self._streams_open = (self._streams_open or [s]), []
        if s is None and not any(streams):
            return
        if self.audio_path == "jack" and jack_guard.server_gone():
            # stopping waits for a process cycle that never comes, closing asserts (SIGABRT):
            # leave the streams to the process's end (realtime_tse.audio.jack_guard)
            log.warning("audio streams left open: %s", jack_guard.GONE_MESSAGE)
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

        t = threading.Thread(target=close, name=f"{type(self).__name__}-close", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            log.warning("audio stream did not close within %.1f s (device gone); abandoned", timeout)

    # ---------------------------------------------------------------- the device's health
    def _callback_sides(self, now: float) -> list[tuple[str, int, float]]:
        """(name, callbacks so far, time of the last new one) for each PortAudio stream; notes
        new callbacks and raises the callback thread's priority once it is known."""
        if self._cb_count != self._last_cb_count:
            self._last_cb_count = self._cb_count
            self._last_cb_time = now
            if not self._cb_boosted and self._cb_tid:
                self._cb_boosted = True
                self._boost(self._cb_tid, "audio callback")
        return [(self._input_side, self._cb_count, self._last_cb_time)]

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
        sides = self._callback_sides(now)
        stall = self._stall_timeout or max(1.5, 8 * self.device_blocksize / self.device_rate)
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

    def _device_failed(self, message: str) -> bool:
        """A device error: on the JACK path with the PipeWire server gone, fail saying so
        (:mod:`realtime_tse.audio.jack_guard`: nothing can be reopened there); else restart the
        stream if it failed during start-up (less than ``startup_s`` of audio; PortAudio's
        ALSA/PulseAudio path sometimes fails its first poll); later, when callbacks stopped, ask
        a child process whether PortAudio still lists the devices: still listed = a stall (a
        busy machine or sound server), recovered by reopening the stream (at most
        ``max_stall_restarts`` within 60 s, counted in ``stall_restarts``); not listed =
        removed; no answer = the sound server hangs. Else fail with a message that says which.
        Returns True when restarted."""
        if self._stop_evt.is_set():
            self._fail(message)
            return False
        if self.audio_path == "jack" and jack_guard.server_gone():
            self._fail(f"{message}: {jack_guard.STREAM_GONE_MESSAGE}")
            return False
        if self._cb_frames < self.startup_s * self._cb_rate \
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
                      "jitter_shrinks", "output_trims", "output_samples_trimmed",
                      "_in_lat_max", "_out_lat_max", "_write_level_max", "_in_backlog_peak")

    def _counter_snapshot(self) -> dict:
        return {k: getattr(self, k) for k in self._KEPT_ON_STALL}
