"""What a live audio stream counts and reports: its counters and their start values, the log of
its xruns, and ``stats()``.

Kept apart from :mod:`realtime_tse.audio.base` (which runs the stream) so that the list of figures a
stream reports is read in one place. The functions take the stream (an
:class:`realtime_tse.audio.base.AudioStream`) and read or set its attributes; the callbacks and the
worker update those attributes as they run.
"""
from __future__ import annotations

import time

import numpy as np

__all__ = ["DELAY_WRITES", "XRUN_KINDS", "XRUN_LOG_CAPACITY", "reset_counters", "stream_stats", "xrun_events"]

XRUN_KINDS = ("input_overflow", "output_underflow", "input_ring", "late", "input_underflow")
XRUN_LOG_CAPACITY = 4096  # xruns whose device time and kind are logged (preallocated)
DELAY_WRITES = 64  # block writes whose delay estimates the reported delay is the median of


def reset_counters(s) -> None:
    """Set every counter of stream ``s`` (an :class:`realtime_tse.audio.base.AudioStream`) to its
    start value: the xrun counts, the callbacks' and the worker's counters, the delay figures."""
    s.input_overflows = 0  # PortAudio input overflow flags
    s.input_underflows = 0  # PortAudio input underflow flags (input was zeros)
    s.output_underflows = 0  # PortAudio output underflow flags
    s.input_ring_overflows = 0  # input ring full (worker too slow)
    s.late_underflows = 0  # output ring short (processing late)
    s._xn = 0
    s._cb_count = 0
    s._cb_frames = 0
    s._cb_tid = 0
    s._cb_boosted = False
    s._out_cb_tid = 0
    s._out_cb_boosted = False
    s._stalled = False
    s._cb_error: str | None = None
    s._finished_unexpectedly = False
    s._eof = False
    s.blocks_processed = 0
    s._proc_sum = 0.0
    s.max_process_s = 0.0
    s.tap_errors = 0
    s.output_ring_drops = 0
    s.input_backlog_drops = 0  # times the worker cut the input ring back (stale input)
    s.input_samples_dropped = 0  # device samples discarded by those cuts
    s.input_startup_drops = 0  # of input_backlog_drops: during start-up
    s._in_backlog_peak = 0  # largest input ring level passed on after start-up (samples)
    s._in_lat = 0.0  # PortAudio time_info: currentTime - inputBufferAdcTime (last, max)
    s._in_lat_max = 0.0
    s.stale_input_callbacks = 0  # callbacks whose input was older than expected
    s._stale_warned = False
    # separate streams: the output callback's own counters (the input's are _cb_*)
    s._out_cb_count = 0
    s._out_cb_frames = 0
    s._last_out_cb_count = 0
    s._last_out_cb_time = time.monotonic()
    s._out_flowing = False  # the worker has written audio: an empty ring is now an xrun
    s._out_dry = False  # the output callback found the ring short since the last write
    s._out_lat = 0.0  # PortAudio time_info: outputBufferDacTime - currentTime (last, max)
    s._out_lat_max = 0.0
    s.output_drops = 0  # blocks written short because the output ring held too much
    s.output_samples_dropped = 0
    s.output_rebuffers = 0  # jitter buffer refilled with silence after the ring ran dry
    s.jitter_shrinks = 0  # a grown jitter buffer stepped back (separate streams)
    s.output_trims = 0  # blocks from which the gradual trim dropped excess output
    s.output_samples_trimmed = 0
    s._trim_pending = 0  # excess output (device samples) the trim has still to drop
    s._jitter_changed_t = 0.0  # output device time (s) of the last rebuffer or shrink
    s._last_shrink_t = 0.0  # output device time (s) of the last shrink
    s._relax_cur = 0.0  # the wait before a step back now (s; 0: the mode's default)
    s._win_min = 1 << 62  # lowest write level in the current trim window
    s._win_t0 = 0.0
    s._write_level = 0  # output-ring level (device samples) when the last block was written
    s._write_level_max = 0
    # the last input / output callback: time.monotonic() and frames (the delay estimate)
    s._in_cb_t = s._out_cb_t = 0.0
    s._in_cb_n = s._out_cb_n = 0
    s._delays = np.full(DELAY_WRITES, np.nan)  # the estimate at the latest writes (s)
    s._delay_i = 0


def xrun_events(s) -> list[tuple[float, str]]:
    """(device time in s since stream ``s`` started, kind) for each of its xruns (the first
    :data:`XRUN_LOG_CAPACITY`); kinds are :data:`XRUN_KINDS`."""
    n = min(s._xn, XRUN_LOG_CAPACITY)
    out_kinds = (1, 3) if s.streams == "separate" else ()  # counted on the output's clock
    return [(float(s._xlog_frames[i]) / (s.device_rate if s._xlog_kind[i] in out_kinds
                                            else s._cb_rate),
             XRUN_KINDS[s._xlog_kind[i]]) for i in range(n)]


def stream_stats(s) -> dict:
    """What stream ``s`` reports (``AudioStream.stats()``): its settings (rates, block and buffer
    sizes, the audio path), its counters (xruns by kind, drops, trims, restarts) and its delay figures
    (seconds, except ``jitter_ms``); plain values only, safe to serialise as JSON."""
    return {
        "mode": s.mode, "running": s.running, "error": s.error,
        "model_rate": s.model_rate, "device_rate": s.device_rate,
        "input_rate": s.input_rate,
        "block_samples": s.block_samples, "device_blocksize": s.device_blocksize,
        "input_blocksize": s.input_blocksize,
        "prefill_samples": s.prefill_samples, "resampling": s.resampling,
        "resampler_delay_s": s.resampler_delay_s,
        "xruns": s.xruns, "input_overflows": s.input_overflows,
        "input_underflows": s.input_underflows,
        "output_underflows": s.output_underflows,
        "input_ring_overflows": s.input_ring_overflows,
        "late_underflows": s.late_underflows,
        "blocks_processed": s.blocks_processed,
        "mean_process_s": s.mean_process_s, "max_process_s": s.max_process_s,
        "device_latency_s": s.device_latency_s,
        "estimated_latency_s": s.estimated_latency_s,
        "callbacks": s._cb_count, "tap_errors": s.tap_errors,
        "restarts": s.restarts,
        "max_input_backlog_s": s.max_input_backlog_s,
        "input_backlog_s": s.input_backlog_s,
        "input_backlog_drops": s.input_backlog_drops,
        "input_samples_dropped": s.input_samples_dropped,
        "input_startup_drops": s.input_startup_drops,
        "input_latency_s": s.input_latency_s,
        "max_input_latency_s": s.max_input_latency_s,
        "stale_input_callbacks": s.stale_input_callbacks,
        "streams": s.streams, "audio_path": s.audio_path,
        "latency_request": s.latency_request,
        "jitter_ms": 1e3 * s.jitter_samples / s.device_rate,
        "output_drops": s.output_drops,
        "output_samples_dropped": s.output_samples_dropped,
        "output_rebuffers": s.output_rebuffers,
        "jitter_shrinks": s.jitter_shrinks, "output_trims": s.output_trims,
        "output_samples_trimmed": s.output_samples_trimmed,
        "output_queue_s": s._write_level / s.device_rate,
        "max_output_queue_s": s._write_level_max / s.device_rate,
        "output_latency_s": s._out_lat, "max_output_latency_s": s._out_lat_max,
        "live_latency_s": s.live_latency_s,
        "stall_restarts": s.stall_restarts,
        "input_device": str(s.input_info) if s.input_info else None,
        "output_device": str(s.output_info) if s.output_info else None,
        "input_file": str(s.input_file) if s.input_file else None,
    }
