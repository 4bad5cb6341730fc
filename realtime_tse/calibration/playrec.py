"""Play a signal and record the input on the same clock: the play-and-record step of the room
calibration (:mod:`realtime_tse.calibration.measure`).

The calibration code only needs a *play-record callable*::

    recording = play_record(signal, sample_rate)   # signal float32 [N] -> recording float32 [N]

``recording[n]`` is what the input delivered while ``signal[n]`` was handed to the output, so a
loop through the room appears in it delayed by the loop latency (output buffer + digital-to-analogue
+ air + analogue-to-digital + input buffer). Tests pass a double that convolves the signal with a
simulated RIR; :class:`DuplexPlayRecord` is the real one.

:class:`DuplexPlayRecord` keeps one PortAudio duplex stream (sounddevice) open from :meth:`open` to
:meth:`close` and plays silence between takes. Why one stream for the whole session: through
PulseAudio the loop latency is constant while a stream runs but changes by up to about 10 ms from
one stream to the next (measured here: 53.8, 58.3, 64.0 ms for three streams in a row; 3.4 m of
sound travel per 10 ms), and the calibration reads distances from delays. A device that stops
delivering audio mid-sweep (unplugged, sound server gone) is noticed by a watchdog within
``stall_s`` seconds and raised as :class:`realtime_tse.audio.devices.AudioDeviceError`; input overflows
and output underflows are counted (``xruns``, ``take_xruns``): one during a take shifts the timeline
of that take.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

import numpy as np

from ..audio.devices import AudioDeviceError, _sd, find_device
from ..audio.pulse_env import restore_env, save_env

__all__ = ["PlayRecord", "DuplexPlayRecord"]

PlayRecord = Callable[[np.ndarray, int], np.ndarray]
"""(signal float32 [N], sample rate Hz) -> recording float32 [N] on the same clock."""


class DuplexPlayRecord:
    """A play-record callable on one duplex stream kept open between takes (module docstring).

    Args:
        input_device, output_device: index or name (:func:`realtime_tse.audio.devices.find_device`);
            None: the default device.
        sample_rate: Hz, for both directions.
        blocksize: frames per callback (large: a busy machine must not glitch).
        latency: PortAudio's suggested latency ("high", "low" or seconds). "high" is steadier.
        warmup_s: seconds of callbacks to wait for after opening (PulseAudio's delay may drift
            20 to 40 samples in the first 1.5 s of a stream).
        stall_s: no callback for this long during a take = the device vanished.
        env: environment variables set while the stream opens (e.g. ``PULSE_SINK``,
            ``PULSE_SOURCE``: libpulse reads them then), restored afterwards.

    Use as a context manager or call :meth:`open` / :meth:`close`. Calling it opens the stream when
    needed.

    Raises:
        AudioDeviceError: no PortAudio, no such device, settings the device refuses, a stream that
            delivers nothing after three opens, or a device that stops mid-take.
    """

    def __init__(self, input_device=None, output_device=None, sample_rate: int = 48000,
                 blocksize: int = 1024, latency="high", warmup_s: float = 1.5, stall_s: float = 2.0,
                 env: dict | None = None):
        self.input_spec, self.output_spec = input_device, output_device
        self.sample_rate = int(sample_rate)
        self.blocksize = int(blocksize)
        self.latency = latency
        self.warmup_s, self.stall_s = float(warmup_s), float(stall_s)
        self.env = dict(env or {})
        self.stream = None
        self.xruns = 0            # overflows / underflows since open()
        self.take_xruns = 0       # ... during the last take
        self.reported_latency_s: float | None = None  # PortAudio's input + output latency
        self._frames = 0          # frames seen by the callback since open
        self._last_cb = 0.0
        self._x: np.ndarray | None = None
        self._rec: np.ndarray | None = None
        self._pos = 0
        self._done = threading.Event()
        self._error: str | None = None

    # ------------------------------------------------------------------ stream
    def _callback(self, indata, outdata, frames, _time, status):
        self._last_cb = time.monotonic()
        self._frames += frames
        if status:
            self.xruns += 1
            if self._x is not None:
                self.take_xruns += 1
        outdata.fill(0)
        x, rec = self._x, self._rec
        if x is None or rec is None:
            return
        p = self._pos
        n = min(frames, len(x) - p)
        if n > 0:
            outdata[:n, 0] = x[p:p + n]
            rec[p:p + n] = indata[:n, 0]
            self._pos = p + n
        if self._pos >= len(x):
            self._x = None
            self._done.set()

    def open(self) -> "DuplexPlayRecord":
        """Open and start the stream, wait ``warmup_s`` of audio. Idempotent."""
        if self.stream is not None:
            return self
        sd = _sd()
        din = find_device(self.input_spec, "input")
        dout = find_device(self.output_spec, "output")
        saved = save_env(self.env)
        os.environ.update(self.env)
        try:
            for _attempt in range(3):  # PortAudio's ALSA/pulse capture sometimes fails its first poll
                self._frames, self._last_cb = 0, time.monotonic()
                try:
                    s = sd.Stream(device=(din.index, dout.index), samplerate=self.sample_rate,
                                  blocksize=self.blocksize, channels=1, dtype="float32",
                                  latency=self.latency, callback=self._callback)
                    s.start()
                except Exception as e:  # noqa: BLE001  (sounddevice.PortAudioError, ValueError)
                    raise AudioDeviceError(
                        f"cannot open {din.name!r} -> {dout.name!r} at {self.sample_rate} Hz: {e} "
                        "(another sample rate, e.g. --rate 48000 or 44100, or other devices)") from e
                deadline = time.monotonic() + self.warmup_s + 10.0
                while self._frames < self.warmup_s * self.sample_rate and time.monotonic() < deadline \
                        and s.active:
                    time.sleep(0.02)
                if self._frames >= self.warmup_s * self.sample_rate:
                    self.stream = s
                    break
                _close_quietly(s)
            else:
                raise AudioDeviceError(f"the stream {din.name!r} -> {dout.name!r} delivers no audio "
                                       "(three attempts): is the device in use or disconnected?")
        finally:
            restore_env(saved)
        try:
            lat = self.stream.latency
            self.reported_latency_s = float(lat[0]) + float(lat[1])
        except (TypeError, IndexError, AttributeError):
            self.reported_latency_s = None
        self.devices = (din.name, dout.name)
        self.xruns = 0
        return self

    def close(self) -> None:
        """Stop and close the stream (in a helper thread: closing a stream on a sound server that
        died can hang). Idempotent."""
        s, self.stream = self.stream, None
        self._x = None
        if s is not None:
            _close_quietly(s)

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ take
    def __call__(self, signal: np.ndarray, sample_rate: int) -> np.ndarray:
        """Play ``signal`` (float [N], full scale 1.0) and return the recording [N] (float32).

        Raises:
            ValueError: ``sample_rate`` differs from the stream's, or the signal is not 1-D.
            AudioDeviceError: the device stopped delivering audio (vanished) or the stream ended.
        """
        if int(sample_rate) != self.sample_rate:
            raise ValueError(f"signal at {sample_rate} Hz, stream at {self.sample_rate} Hz")
        x = np.ascontiguousarray(signal, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"signal must be 1-D, got shape {x.shape}")
        self.open()
        s = self.stream
        self._done.clear()
        self.take_xruns = 0
        self._rec = np.zeros(len(x), np.float32)
        self._pos = 0
        self._x = x  # the callback starts playing from its next block
        t_end = time.monotonic() + len(x) / self.sample_rate + 10.0 + self.warmup_s
        while not self._done.wait(0.1):
            now = time.monotonic()
            why = None
            if not s.active:
                why = "the audio stream stopped"
            elif now - self._last_cb > self.stall_s:
                why = f"no audio for {now - self._last_cb:.1f} s"
            elif now > t_end:
                why = "the take did not finish in time"
            if why:
                self._x = None
                played = self._pos / self.sample_rate
                self.close()
                raise AudioDeviceError(
                    f"the audio device stopped mid-sweep ({why}, {played:.1f} s of "
                    f"{len(x) / self.sample_rate:.1f} s played): was it unplugged, or did the sound "
                    "server stop? Reconnect it and measure again")
        rec, self._rec = self._rec, None
        return rec


def _close_quietly(s, timeout_s: float = 3.0) -> None:
    t = threading.Thread(target=lambda: s.close(ignore_errors=True), daemon=True)
    t.start()
    t.join(timeout_s)
