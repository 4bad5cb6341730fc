"""The live audio modes, one class each (:func:`realtime_tse.audio.streams.make_stream` picks one):

================================  ==========  ==========  =========================================
class                             ``mode``    ``streams`` input -> output
================================  ==========  ==========  =========================================
:class:`TimedFileStream`          file-null   single      a file, paced by a timer -> taps only
:class:`FilePlaybackStream`       file        single      a file -> an output device (its clock)
:class:`CaptureStream`            capture     single      a microphone -> taps only
:class:`SingleStreamDuplex`       duplex      duplex      a microphone -> an output device, one
                                                          PortAudio duplex stream
:class:`SeparateStreamsDuplex`    duplex      separate    a microphone -> an output device, an
                                                          input and an output stream (the default)
================================  ==========  ==========  =========================================

Each runs its loop in the worker thread (``_work``); what they share is in
:mod:`realtime_tse.audio.base` and :mod:`realtime_tse.audio.device_stream`. The default duplex mode,
:class:`SeparateStreamsDuplex` (its adaptive jitter buffer and its delay estimate), is in
:mod:`realtime_tse.audio.separate_duplex`, and its JACK variant (PipeWire's low-latency path)
in :mod:`realtime_tse.audio.jack_duplex`.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from .device_stream import DeviceStream, stream_latency
from .base import AudioStream, log

__all__ = ["TimedFileStream", "FilePlaybackStream", "CaptureStream", "SingleStreamDuplex"]

_PREROLL_DEVICE_BLOCKS = 4  # file -> device: real audio queued before the device starts


class TimedFileStream(AudioStream):
    """A file that stands in for the microphone, paced by a monotonic timer, no device: the
    output goes to the taps only (``output_device="null"``, or no output device at all)."""

    mode = "file-null"

    def _work(self) -> None:
        for blk in self._file.blocks(self.block_samples, realtime=True, pad=True,
                                     stop_event=self._stop_evt):
            self._process(blk)
            self.late_underflows = self._file.late  # timer clock restarts (consumer too slow)


class FilePlaybackStream(DeviceStream):
    """A file played to an output device, paced by the device's clock: the worker keeps the
    output ring at the jitter buffer + one device block, and queues four device blocks before the
    device starts (PortAudio pulls several at once). At the end of the file the output drains and
    the stream ends."""

    mode = "file"
    plays = True

    def _launch(self) -> None:
        # PortAudio pulls several buffers at once when an output stream starts: let the worker
        # put real audio in the ring first (it runs process_block; we only wait)
        self._preroll_done = threading.Event()
        self._stream_opened = threading.Event()
        self._worker.start()
        self._preroll_done.wait(10.0)
        if self._ended.is_set():  # process_block failed: already reported via on_error
            return
        try:
            self._open_or_end()
        finally:
            self._stream_opened.set()

    def _open_streams(self, sd, common: dict, opened: list) -> None:
        s = sd.OutputStream(device=self.output_info.index,
                            channels=self._channels(sd, self.output_info, "output"),
                            callback=self._guarded(self._callback_play), **common)
        opened.append(s)
        s.start()
        self.device_latency = (0.0, stream_latency(s.latency))

    def _work(self) -> None:
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


class CaptureStream(DeviceStream):
    """A microphone to the taps only (``output_device="null"``). The worker resamples the device
    input to the model rate, cuts it into blocks and keeps it fresh (:meth:`_trim_input`)."""

    mode = "capture"
    captures = True
    # the longest the worker sleeps while a block is incomplete: the input callback wakes it
    # (``_in_evt``) as soon as audio arrives; the timeout only keeps the device checks going
    # when no callback comes
    _idle_wait_s = 0.02

    def _open_streams(self, sd, common: dict, opened: list) -> None:
        s = sd.InputStream(device=self.input_info.index,
                           channels=self._channels(sd, self.input_info, "input"),
                           callback=self._guarded(self._callback_input),
                           **{**common, "blocksize": self.input_blocksize})
        opened.append(s)
        s.start()
        self.device_latency = (stream_latency(s.latency), 0.0)

    def _deliver(self, out: np.ndarray) -> None:
        """A processed block's way out (capture: the taps already had it)."""

    def _work(self) -> None:
        B = self.block_samples
        chunk = np.empty(self._in_ring.capacity, np.float32)
        while not self._stop_evt.is_set():
            err = self._check_device()
            if err:
                if self._device_failed(err):
                    continue
                return
            self._in_evt.clear()  # before reading: audio that arrives after it sets it again
            self._trim_input()
            n = self._in_ring.readinto(chunk)
            if n:
                x = chunk[:n]
                if self._rs_in is not None:
                    x = self._rs_in.resample_chunk(x)
                self._acc.write(x)
            did = False
            while self._acc.available >= B and not self._stop_evt.is_set():
                self._deliver(self._process(self._acc.read(B)))
                did = True
            if not did:
                self._in_evt.wait(self._idle_wait_s)

    def _trim_input(self) -> None:
        """Keep the device input fresh (worker thread; device input only, never a file): during
        start-up cut the ring back to one block + 5 ms whenever it holds more, afterwards when it
        holds more than ``max_input_backlog_s``; oldest samples first, counted."""
        n = self._in_ring.available
        startup = self._cb_frames < self.startup_s * self.input_rate
        if n > (self._in_target if startup else self._in_bound):
            k = self._in_ring.skip(n - self._in_target)
            self.input_backlog_drops += 1
            self.input_samples_dropped += k
            if startup:
                self.input_startup_drops += 1
            n -= k
        if not startup and n > self._in_backlog_peak:
            self._in_backlog_peak = n
        if self.stale_input_callbacks and not self._stale_warned:
            self._stale_warned = True
            self._note_stale_input()

    def _note_stale_input(self) -> None:
        """Said once when captured audio arrived older than the device reports."""
        log.warning("captured audio arrives %.2f s late (device reports %.2f s): the sound "
                    "server holds a backlog recorded before the stream ran; it adds to the "
                    "input-to-output delay", self._in_lat, self.device_latency[0])


class SingleStreamDuplex(CaptureStream):
    """A microphone through the model to an output device in one PortAudio duplex stream
    (``streams="duplex"``): the jitter buffer is one block of silence. A duplex stream reads the
    capture only as fast as it plays, so a backlog the sound server held before the first
    callback stays for good (see :class:`SeparateStreamsDuplex`)."""

    mode = "duplex"
    streams = "duplex"
    plays = True

    def _open_streams(self, sd, common: dict, opened: list) -> None:
        ch = (self._channels(sd, self.input_info, "input"),
              self._channels(sd, self.output_info, "output"))
        s = sd.Stream(device=(self.input_info.index, self.output_info.index), channels=ch,
                      callback=self._guarded(self._callback_duplex), **common)
        opened.append(s)
        s.start()
        self.device_latency = (stream_latency(s.latency[0]), stream_latency(s.latency[1]))

    def _deliver(self, out: np.ndarray) -> None:
        self._emit(out)

    def _queued_output(self) -> int:
        """Output samples queued ahead of the device when a block is written."""
        return self.prefill_samples

    @property
    def estimated_latency_s(self) -> float:
        """Input-to-output latency the design implies: one block of capture, the jitter buffer,
        resampler compensation and filter delay, and the device latency (the loopback test measures the real one)."""
        return (self.block_samples / self.model_rate + self.prefill_samples / self.device_rate
                + self._in_lag / self.model_rate + self.resampler_delay_s
                + self.device_latency_s)

    @property
    def live_latency_s(self) -> float:
        """Input-to-output delay from what the devices report now (s): the captured audio's age
        (``input_latency_s``, else the stream's input latency), one block, the resamplers'
        compensation and filter delay, the output queued when the last block was written (the jitter buffer) and
        the device's output delay (``output_latency_s``, else the stream's output latency).
        Excludes the model's look-ahead (the engine adds it)."""
        lin = self._in_lat or self.device_latency[0]
        lout = self._out_lat or self.device_latency[1]
        return (lin + self.block_samples / self.model_rate + self._in_lag / self.model_rate
                + self.resampler_delay_s + self._queued_output() / self.device_rate + lout)

