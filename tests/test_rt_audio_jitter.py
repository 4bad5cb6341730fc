"""The separate-streams mode's jitter buffer (realtime_tse.audio.separate_duplex.SeparateStreamsDuplex): it
grows after a burst, shrinks back, and trims excess output where it is quietest."""

from __future__ import annotations

import time

import numpy as np
import pytest

from realtime_tse.audio.streams import find_device, make_stream


def _separate_output_sim(monkeypatch, stall_at_s, stall_s: float, seconds: float,
                         rate: int = 8000, block: int = 256):
    """Drive the output side of separate streams by hand, on a sample clock (no device, no
    thread): the worker writes block i (``_emit``) when its last input sample is in (a ramp of
    sample indices + 1, so silence is 0), except that from ``stall_at_s`` (a time or a list of
    times, s) it is held up for ``stall_s``; the output callback reads a device period at each
    period boundary. Returns the stream and (play time, value) of every non-silent sample
    played."""
    from realtime_tse.audio import streams as audio_io
    fake = audio_io.DeviceInfo(0, "fake", 1, 1, float(rate), "fake")
    monkeypatch.setattr(audio_io, "find_device", lambda spec, kind="input", **_: fake)
    s = make_stream(lambda b: b, rate, block, device_rate=rate, boost_priority=False)
    s._prime()
    P = s.device_blocksize
    stalls = [(int(a * rate), int((a + stall_s) * rate))
              for a in (stall_at_s if isinstance(stall_at_s, (list, tuple)) else [stall_at_s])]
    played_t, played_v = [], []
    nxt_block, t = 0, 0
    out = np.zeros((P, 1), np.float32)
    while t < seconds * rate:
        t += P  # the next output callback; first the blocks that are written before it
        while True:
            ready = (nxt_block + 1) * block + 3
            for t_stall, t_resume in stalls:
                if t_stall <= ready < t_resume:
                    ready = t_resume
            if ready > t:
                break
            x = np.arange(nxt_block * block, (nxt_block + 1) * block, dtype=np.float32) + 1
            s._emit(x)
            nxt_block += 1
        s._callback_output(out, P, None, None)
        nz = out[:, 0] > 0
        played_t.append(t + np.flatnonzero(nz))
        played_v.append(out[nz, 0])
    return s, np.concatenate(played_t), np.concatenate(played_v)


def test_jitter_buffer_grows_after_a_burst_and_shrinks_back(monkeypatch):
    """Separate streams: a worker held up for 40 ms runs the output dry once; the jitter buffer
    grows one step (one 6 ms period: 16 -> 22 ms), steps back after ``_relax_s`` without running
    dry, and the excess queued output is trimmed gradually (counted), so the delay returns to
    within one period of where it started instead of staying 8 ms longer."""
    from realtime_tse.audio.separate_duplex import SeparateStreamsDuplex
    monkeypatch.setattr(SeparateStreamsDuplex, "_relax_s", 5.0)
    rate = 8000
    s, t, v = _separate_output_sim(monkeypatch, 3.0, 0.04, 24.0, rate=rate)
    st = s.stats()
    delay = (t - (v - 1)) / rate * 1e3  # play time minus the sample's own time, ms
    ok = np.abs(v - np.round(v)) < 1e-3  # skip crossfaded samples
    start = np.median(delay[(t < 2.5 * rate) & ok])
    mid = np.median(delay[(t > 4 * rate) & (t < 7.5 * rate) & ok])
    end = np.median(delay[(t > 22 * rate) & ok])
    assert st["output_rebuffers"] == 1 and st["late_underflows"] >= 1, st
    assert 1e3 * s._jitter_step / rate == pytest.approx(6.0)  # one step: a 6 ms period
    # the grown buffer, one step deeper while it lasts (same run, stopped at 7 s); the delay
    # moves by that step plus the change of phase between the 32 ms blocks and the 6 ms periods
    # (-6 to +6 ms): longer in any case
    grown, _, _ = _separate_output_sim(monkeypatch, 3.0, 0.04, 7.0, rate=rate)
    assert grown.stats()["jitter_ms"] == pytest.approx(22.0), grown.stats()
    assert mid > start + 0.5, (start, mid)
    assert st["jitter_shrinks"] == 1 and st["jitter_ms"] == pytest.approx(16.0), st
    # what the lowest write level stayed above the buffer after the step back (the rest of the
    # step is within the phase wander of 32 ms blocks against 6 ms periods)
    assert st["output_trims"] >= 1 and st["output_samples_trimmed"] >= 0.001 * rate, st
    assert end <= start + 1e3 * s.device_blocksize / rate, (start, mid, end)
    # trimmed gradually: at most _trim_max_ms per block
    assert st["output_samples_trimmed"] <= st["output_trims"] * s._trim_max
    s.stop()


def test_jitter_buffer_holds_its_level_when_blocks_are_not_whole_periods(monkeypatch):
    """32 ms blocks against 6 ms output periods (8 kHz): the level at a write cycles
    through a 4 ms band with the phase. However the first write falls, the level at every later
    write stays at or above the jitter buffer (the margin the buffer promises; without the
    band the lowest writes were 4 ms short of it) and, once the gradual trim has run, within
    one period above it; the output never runs dry."""
    from realtime_tse.audio.separate_duplex import SeparateStreamsDuplex
    levels = []
    inner = SeparateStreamsDuplex._level_output

    def spy(self, out):
        levels.append((self._out_cb_frames, self._out_ring.available, self.prefill_samples))
        return inner(self, out)
    monkeypatch.setattr(SeparateStreamsDuplex, "_level_output", spy)
    rate = 8000
    s, _, _ = _separate_output_sim(monkeypatch, [], 0.0, 30.0, rate=rate, block=256)
    st = s.stats()
    P = s.device_blocksize
    assert P == 48 and s._phase_band == 32  # 6 ms periods, a 4 ms band
    assert st["late_underflows"] == 0 and st["output_rebuffers"] == 0, st
    lv = np.array([lvl for t, lvl, _ in levels[1:]])
    prefill = levels[-1][2]
    assert lv.min() >= prefill, (lv.min(), prefill)
    late = np.array([lvl for t, lvl, _ in levels if t > 20 * rate])
    assert late.min() <= prefill + P, (late.min(), prefill)
    s.stop()


def test_jitter_buffer_waits_longer_after_running_dry_again(monkeypatch):
    """A burst soon after the buffer stepped back doubles the wait before the next step back
    (regular bursts settle on the deeper buffer instead of an xrun per cycle)."""
    from realtime_tse.audio.separate_duplex import SeparateStreamsDuplex
    monkeypatch.setattr(SeparateStreamsDuplex, "_relax_s", 5.0)
    # stall 1 at 3 s: grown, stepped back at ~8 s; stall 2 at 10 s (2 s after): grown, and
    # the next step back waits 10 s (~20 s), not 5 s (~15 s)
    s, _, _ = _separate_output_sim(monkeypatch, [3.0, 10.0], 0.07, 17.0)
    st = s.stats()
    assert st["output_rebuffers"] == 2 and st["jitter_shrinks"] == 1, st
    assert st["jitter_ms"] == pytest.approx(22.0) and s._relax_cur == pytest.approx(10.0)
    s, _, _ = _separate_output_sim(monkeypatch, [3.0, 10.0], 0.07, 22.0)
    assert s.stats()["jitter_shrinks"] == 2 and s.stats()["jitter_ms"] == pytest.approx(16.0)
    s.stop()


def test_steady_output_is_not_trimmed(monkeypatch):
    """Without a burst the write level stays at the jitter buffer: nothing grows, shrinks or is
    trimmed, and the delay stays constant."""
    rate = 8000
    s, t, v = _separate_output_sim(monkeypatch, 1e9, 0.0, 8.0, rate=rate)
    st = s.stats()
    assert (st["output_rebuffers"], st["jitter_shrinks"], st["output_trims"],
            st["output_drops"], st["late_underflows"]) == (0, 0, 0, 0, 0), st
    delay = t - (v - 1)
    assert delay.max() - delay.min() == 0
    s.stop()


def test_cut_quietest_removes_samples_in_the_quietest_place():
    from realtime_tse.audio.separate_duplex import _cut_quietest
    n = 800
    x = np.sin(np.arange(n, dtype=np.float32) * 0.3).astype(np.float32)
    x[500:560] = 0.0  # a pause
    y = _cut_quietest(x, 16, 16)
    assert y.dtype == np.float32 and len(y) == n - 16
    np.testing.assert_array_equal(y[:500], x[:500])  # untouched before the pause
    np.testing.assert_array_equal(y[528:], x[544:])  # the rest follows, 16 samples sooner
    assert np.all(y[500:528] == 0.0)
    assert len(_cut_quietest(x[:20], 16, 16)) == 4  # too short to fade: from the head
    assert _cut_quietest(x, 0, 16) is x
    with pytest.raises(ValueError):
        _cut_quietest(x, n + 1, 16)
