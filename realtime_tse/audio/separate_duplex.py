"""The default duplex mode, :class:`SeparateStreamsDuplex`: a microphone through the model to an
output device in an input and an output PortAudio stream, with an adaptive jitter buffer on the
worker side and the input-to-output delay estimated from what the buffers hold (the other modes
are in :mod:`realtime_tse.audio.stream_modes`).
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np

from .base import log
from .device_stream import stream_latency
from .stream_modes import SingleStreamDuplex

__all__ = ["SeparateStreamsDuplex"]


def _cut_quietest(x: np.ndarray, k: int, fade: int) -> np.ndarray:
    """``x`` (float32 samples) with ``k`` samples removed where it is quietest: the span of
    ``k + fade`` samples with the least energy is replaced by a linear crossfade of ``fade``
    samples from its start to what follows the removed samples, so no step is played. Returns
    ``len(x) - k`` samples; removes from the head when ``x`` is too short for the fade.

    Raises:
        ValueError: ``k`` negative or larger than ``len(x)``.
    """
    n = len(x)
    if not 0 <= k <= n:
        raise ValueError(f"cannot remove {k} of {n} samples")
    if k == 0:
        return x
    fade = min(int(fade), (n - k) // 2)
    if fade < 1:
        return x[k:]
    w = k + fade
    e = np.concatenate(([0.0], np.cumsum(np.square(x, dtype=np.float64))))
    i = int(np.argmin(e[w:] - e[:-w]))  # start of the quietest span of w samples
    ramp = np.arange(1, fade + 1, dtype=np.float32) / np.float32(fade + 1)
    mixed = x[i:i + fade] * (1.0 - ramp) + x[i + k:i + k + fade] * ramp
    return np.concatenate((x[:i], mixed.astype(x.dtype, copy=False), x[i + k + fade:]))


class SeparateStreamsDuplex(SingleStreamDuplex):
    """A microphone through the model to an output device in an input and an output PortAudio
    stream (``streams="separate"``, the default): the capture side drains what the sound server
    held before the first callback. Each stream runs at a rate its device supports
    (``input_rate``, ``device_rate``: the model rate where the device takes it, else the device's
    default rate; on pipewire-pulse the graph's rate), each resampled to and from the model rate on its own. Small device periods (output 6 ms at most, 8 ms for blocks
    of 64 ms or more, input 4 ms at most), PortAudio's 'low' latency, and an adaptive jitter
    buffer on the worker side
    (:meth:`_level_output`, 16 ms (at least one output period + 8 ms) to start with, grown after
    the output ran dry, shrunk back after 15 s without). The worker wakes on the input callback
    (``_in_evt``), so a block is processed as soon as its last input period is in.

    Why these defaults (``end_to_end_periods_jitter_rate`` in ``benchmarks/results/realtime.json``, PulseAudio
    null-sink loopback, shipped 8 kHz model, SCHED_FIFO, scan on, one more core busy, load 4 to
    6): 4 ms input periods had no xruns and were 5 to 7 ms faster at 64 ms blocks (at 32 ms
    blocks within the 10 ms spread between streams); 4 ms output periods took more off but the
    output underflowed in most rows (the ALSA 'pulse' buffer is three periods: 12 ms is too
    little on a loaded machine); a 16 ms jitter buffer (8 ms period + 8 ms) instead of 24 ms took
    6 to 16 ms off, no xruns. With a jitter buffer that steps back (``end_to_end_jitter_shrink``, same conditions, load 3.9 to
    6.3): 12 ms (8 ms period + 4 ms) was 90 to 96 ms at 32 ms blocks in 20 s rows against 96 to
    104 ms with 16 ms, but over 10 minutes both measured a median of 97.5 ms and 12 ms had twice
    the xruns (6 against 3), so 16 ms stays; a deeper device buffer under 4 ms periods
    (PortAudio latency 16 or 24 ms) gave back what the small periods saved, 6 ms output periods
    underflowed, and one duplex stream busy-polled a core (43 xruns, a stall). Under the goal's
    conditions (``end_to_end_long_busy_core``, 10-minute runs at 32 ms blocks, one more core spinning, no
    training, the harness in child processes): 8 ms output periods 102.6 ms, 0 xruns (93.8 ms
    and 1 late block in an earlier run: the 8 ms quantum of the output periods moves the delay with
    their phase); 4 ms periods 86.2 / 81.9 ms but 1 / 2 device underflows (a 12 ms device
    buffer); 6 ms periods 92.0 / 92.3 ms, 0 xruns: the default for blocks under 64 ms since.
    At 64 ms blocks 6 ms periods measured 120.9 / 117.9 ms with one device underflow in each
    run, so 64 ms blocks keep 8 ms periods (130.6 ms, 0 xruns over 10 minutes)."""

    streams = "separate"
    default_latency = "low"  # PortAudio's 'high' let PulseAudio hold 2 s of capture
    _input_side = "input"
    _relax_s = 15.0  # device seconds without running dry before a grown buffer steps back
    _trim_window_s = 8.0  # window of write levels whose lowest decides the excess
    _trim_max_ms = 2.0  # the most the gradual trim drops per block (ms)

    def _default_blocksize(self, r: float) -> int:
        # small callbacks (at most one model block): the delay a device buffer adds scales with
        # its period (PortAudio's 'low' latency gives the ALSA 'pulse' device three periods).
        # Blocks under 64 ms: 6 ms periods (an 18 ms buffer; 4 ms periods, 12 ms, underflowed
        # on the device side); 64 ms blocks and longer, whose delay has room: 8 ms (24 ms), the
        # one that did not underflow over 10 minutes there (6 ms did, once in each of 2 runs)
        period_s = 0.006 if self.block_samples < 0.064 * self.model_rate else 0.008
        return max(1, min(int(round(self.block_samples * r)),
                          int(round(period_s * self.device_rate))))

    def _pick_input_blocksize(self, asked: int | None) -> int:
        # the capture's own period (LiveConfig.input_blocksize), else 4 ms (at most the output
        # period): a block is complete, and processed, as soon as its last 4 ms arrive
        if asked:
            return int(asked)
        return max(1, min(int(round(self.device_blocksize * self._in_scale)),
                          int(round(0.004 * self.input_rate))))

    def _default_jitter(self, r: float) -> int:
        # 16 ms, at least one output period + 8 ms, for the worker's wake-up and compute
        # jitter (grows when the output runs dry, shrinks back, see _level_output)
        return max(self.device_blocksize + int(round(0.008 * self.device_rate)),
                   int(round(0.016 * self.device_rate)))

    def _default_input_bound(self, r: float) -> int:
        # the worker takes a block as soon as it is complete: more than a block + the jitter
        # buffer + two periods waiting means the worker was held up; play fresh audio instead
        return int(round(self.block_samples * r)) + self.prefill_samples \
            + 2 * self.device_blocksize

    def _open_streams(self, sd, common: dict, opened: list) -> None:
        # output first: it plays the jitter buffer's silence until the capture delivers
        so = sd.OutputStream(device=self.output_info.index,
                             channels=self._channels(sd, self.output_info, "output"),
                             callback=self._guarded(self._callback_output), **common)
        opened.append(so)
        s = sd.InputStream(device=self.input_info.index,
                           channels=self._channels(sd, self.input_info, "input"),
                           callback=self._guarded(self._callback_input),
                           **{**common, "blocksize": self.input_blocksize,
                              "samplerate": self.input_rate})
        opened.append(s)
        so.start()
        s.start()
        self.device_latency = (stream_latency(s.latency), stream_latency(so.latency))

    def _callback_output(self, outdata, frames, _time, status):
        """The output stream's callback: copy from the output ring, count underflows, record the
        device's output delay from ``time_info``."""
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
            self._note_out_latency(_time)
            self._out_cb_t = time.monotonic()  # when this buffer was handed over, and its length
            self._out_cb_n = frames
            self._out_cb_frames += frames
            self._out_cb_count += 1
            if self._out_cb_tid == 0:
                self._out_cb_tid = threading.get_native_id()
        except BaseException as e:  # noqa: BLE001
            self._cb_error = f"audio output callback failed: {type(e).__name__}: {e}"
            raise self._sdmod.CallbackAbort from e

    def _callback_sides(self, now: float) -> list[tuple[str, int, float]]:
        sides = super()._callback_sides(now)
        if self._out_cb_count != self._last_out_cb_count:
            self._last_out_cb_count = self._out_cb_count
            self._last_out_cb_time = now
            if not self._out_cb_boosted and self._out_cb_tid:
                self._out_cb_boosted = True
                self._boost(self._out_cb_tid, "audio output callback")
        return sides + [("output", self._out_cb_count, self._last_out_cb_time)]

    def _level_output(self, out: np.ndarray) -> np.ndarray:
        """The adaptive jitter buffer (worker side, before a block of ``out`` device samples is
        written; returns what to write):

        - at the first block and after the ring ran dry, queue silence up to
          ``prefill_samples`` + :attr:`_phase_band` and, after the first, grow the buffer one
          step (``output_rebuffers``; up to ``_jitter_max``);
        - when the ring holds more than ``prefill_samples`` + two periods + 4 ms, drop that
          excess from the head of the block at once (``output_drops``,
          ``output_samples_dropped``) instead of playing it late;
        - shrink back: after ``_relax_s`` seconds of device time without the ring running dry, a
          grown buffer steps back one step towards its start value (``jitter_shrinks``; when
          it runs dry again within that time of a step back, the wait doubles, up to 8 x
          ``_relax_s``, so a machine with regular bursts settles on the deeper buffer); and when
          the lowest level at which blocks were written over ``_trim_window_s`` stayed above
          ``prefill_samples``, that excess is dropped gradually, at most ``_trim_max_ms`` per
          block, where the block is quietest, with a short crossfade (``output_trims``,
          ``output_samples_trimmed``). So a burst that made the delay grow is paid back within
          about ``_relax_s`` + a few seconds, and the delay does not creep."""
        level = self._out_ring.available
        now = self._out_cb_frames / self.device_rate  # the output device's clock (s)
        if not self._out_flowing or self._out_dry:
            if self._out_flowing:
                self.output_rebuffers += 1
                relax = self._relax_cur or self._relax_s
                if self.jitter_shrinks and now - self._last_shrink_t < relax:
                    # dry again soon after stepping back: wait longer before the next step
                    self._relax_cur = min(2.0 * relax, 8.0 * self._relax_s)
                if self.prefill_samples < self._jitter_max:  # adapt: one step deeper
                    grow = min(self._jitter_step, self._jitter_max - self.prefill_samples)
                    self._resize_jitter(grow)
            self._out_dry = False
            # where blocks are not a whole number of periods, the level at a write cycles
            # through a band below the level of this first write: start that much higher
            # (the gradual trim takes back what stays above the buffer)
            top = self.prefill_samples + self._phase_band
            if level < top:
                self._out_ring.write_zeros(top - level)
                level = top
            self._out_flowing = True
            self._jitter_changed_t = now
            self._trim_pending = 0
            self._trim_window(now)
        elif level > self._out_bound:
            k = min(len(out), level - self.prefill_samples)
            out = out[k:]
            self.output_drops += 1
            self.output_samples_dropped += k
            self._trim_pending = 0
            self._trim_window(now)
        else:
            p0 = self._jitter0[1]
            relax = self._relax_cur or self._relax_s
            if self.prefill_samples > p0 and now - self._jitter_changed_t >= relax:
                self._resize_jitter(-min(self._jitter_step, self.prefill_samples - p0))
                self._jitter_changed_t = self._last_shrink_t = now
                self.jitter_shrinks += 1
            if self._trim_pending == 0:
                if level < self._win_min:
                    self._win_min = level
                if now - self._win_t0 >= self._trim_window_s:
                    self._trim_pending = max(0, self._win_min - self.prefill_samples)
                    self._trim_window(now)
            if self._trim_pending > 0:
                k = min(self._trim_pending, self._trim_max, len(out) // 4)
                if k > 0:
                    out = _cut_quietest(out, k, self._trim_fade)
                    self._trim_pending -= k
                    self.output_trims += 1
                    self.output_samples_trimmed += k
                    level -= k  # the rest of the block plays k samples sooner
                    if self._trim_pending == 0:
                        self._trim_window(now)
        self._write_level = level
        if level > self._write_level_max:
            self._write_level_max = level
        self._note_delay(level)
        return out

    # ---------------------------------------------------------------- the delay estimate
    def _input_age_s(self, now: float) -> float:
        """Age of the newest captured sample at ``now`` (``time.monotonic()``, s): PortAudio's age
        of the first sample of the last input buffer (``currentTime - inputBufferAdcTime``, else
        the stream's input latency) less that buffer's length, plus the time since its callback."""
        lin = self._in_lat or self.device_latency[0]
        return max(0.0, lin - self._in_cb_n / self.input_rate) + max(0.0, now - self._in_cb_t)

    def _output_wait_s(self, now: float) -> float:
        """From ``now`` until the first sample in the output ring plays (s): the device's output
        delay for the last output buffer (``outputBufferDacTime - currentTime``, else the stream's
        output latency) plus that buffer's length, less the time since its callback."""
        lout = self._out_lat or self.device_latency[1]
        return max(0.0, lout + self._out_cb_n / self.device_rate - max(0.0, now - self._out_cb_t))

    def _note_delay(self, level: int) -> None:
        """The delay of the block being written (``level``: output samples queued ahead of it),
        from what every buffer holds now (s, without the model's look-ahead): the newest input's
        age, the input captured after the block's end and not yet processed (input ring and
        block accumulator: this includes the resampler's start-up zeros), the block itself, the
        resamplers' filter delay, the output queued ahead of it and the device's wait. The
        worker's wake-up and compute time are in it (the input ages meanwhile, the output ring
        drains). Kept for the latest writes (``live_latency_s`` is their median); the parts of
        the last one in ``delay_parts_ms``."""
        if not self._in_cb_t or not self._out_cb_t:
            return
        now = time.monotonic()
        age = self._input_age_s(now)
        pending = self._in_ring.available / self.input_rate + self._acc.available / self.model_rate
        queued = level / self.device_rate
        wait = self._output_wait_s(now)
        block = self.block_samples / self.model_rate
        self._delays[self._delay_i % len(self._delays)] = \
            age + pending + block + self.resampler_delay_s + queued + wait
        self._delay_i += 1
        self._delay_parts = (age, pending, block, self.resampler_delay_s, queued, wait)

    @property
    def live_latency_s(self) -> float:
        """Input-to-output delay (s, without the model's look-ahead, which the engine adds): the
        median of the estimates at the latest block writes (:meth:`_note_delay`: from what the
        buffers held at each write); before the first write, the design's figure
        (:class:`SingleStreamDuplex`'s)."""
        v = self._delays[np.isfinite(self._delays)]
        return float(np.median(v)) if len(v) else super().live_latency_s

    def stats(self) -> dict:
        st = super().stats()
        parts = getattr(self, "_delay_parts", None)
        st["delay_parts_ms"] = (dict(zip(("input_age", "input_pending", "block", "resampler",
                                          "output_queued", "device_wait"),
                                         (round(1e3 * p, 2) for p in parts)))
                                if parts is not None else None)
        return st

    @property
    def _phase_band(self) -> int:
        """How far below the level of one write the level at a later write can be, from the
        phase of the blocks against the output periods alone (device samples): a period minus
        the largest step both are a multiple of (0 when a block is whole periods: 32 or 64 ms
        blocks in 8 ms periods; 4 ms for 32 ms blocks in 6 ms periods; a period - 1 where the
        app resamples and the blocks vary)."""
        P = self.device_blocksize
        b = self.block_samples * self.device_rate / self.model_rate
        if self._rs_out is not None or b != int(b):
            return P - 1
        return P - math.gcd(int(b), P)

    @property
    def _jitter_step(self) -> int:
        """One step of the adaptive jitter buffer: an output period, at least 4 ms (samples)."""
        return max(self.device_blocksize, int(round(0.004 * self.device_rate)))

    @property
    def _trim_max(self) -> int:
        return max(1, int(round(self._trim_max_ms * 1e-3 * self.device_rate)))

    @property
    def _trim_fade(self) -> int:
        return max(1, int(round(0.002 * self.device_rate)))

    def _resize_jitter(self, n: int) -> None:
        """Grow (n > 0) or shrink (n < 0) the jitter buffer's target and bound by n samples."""
        self.prefill_samples += n
        self.jitter_samples += n
        self._out_bound += n

    def _trim_window(self, now: float) -> None:
        """Start a new window of write levels (the gradual trim's measure)."""
        self._win_min = 1 << 62
        self._win_t0 = now

    def _queued_output(self) -> int:
        return self._write_level if self._out_flowing else self.prefill_samples

    def _note_stale_input(self) -> None:
        log.info("captured audio arrived up to %.2f s late at start (held by the sound server "
                 "before the first callback); dropped, not played", self._in_lat_max)
