"""The live audio stream without devices (realtime_tse.audio.streams.make_stream and its modes):
FileSource, a file through the stream in real time, one class per mode, the rt_priority check, the
input backlog."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile as sf

from realtime_tse.audio.streams import FileSource, find_device, make_stream


def test_filesource_reads_loops_and_downmixes(tmp_path):
    x = np.random.default_rng(2).uniform(-0.5, 0.5, 1000).astype(np.float32)
    p = tmp_path / "noise.wav"
    sf.write(p, np.stack([x, x], axis=1), 16000, subtype="FLOAT")
    fs_ = FileSource(p, 16000)
    assert fs_.file_rate == 16000 and fs_.channels == 2 and fs_.duration_s == pytest.approx(1000 / 16000)
    a = fs_.read(600)
    b = fs_.read(600)  # only 400 left
    assert len(a) == 600 and len(b) == 400 and fs_.read(600) is None and fs_.eof
    np.testing.assert_array_equal(np.concatenate([a, b]), x)

    looped = FileSource(p, 16000, loop=True)
    y = np.concatenate([looped.read(700) for _ in range(5)])  # 3.5 passes
    np.testing.assert_array_equal(y, np.tile(x, 4)[:3500])
    assert looped.loops == 3 and not looped.eof


def test_filesource_resamples_to_model_rate(tone_file):
    p, mono48, fs = tone_file
    src = FileSource(p, 16000)
    y = np.concatenate(list(src.blocks(512, realtime=False, pad=False)))
    assert abs(len(y) - 16000) <= 2  # 1 s at 16 kHz
    t = np.arange(len(y)) / 16000
    ref = 0.75 * 0.5 * np.sin(2 * np.pi * 440 * t)
    core = slice(200, len(y) - 200)  # away from the resampler's edges
    assert np.corrcoef(y[core], ref[core])[0, 1] > 0.999
    assert np.max(np.abs(y[core] - ref[core])) < 1e-2


def test_filesource_pacing_is_real_time(tone_file):
    p, _, _ = tone_file
    src = FileSource(p, 16000)
    t0 = time.monotonic()
    times = []
    for _ in src.blocks(1600):  # 10 blocks of 100 ms
        times.append(time.monotonic() - t0)
    assert len(times) == 10
    # block k is released when it would have been captured: at (k+1) * 100 ms
    assert times[0] >= 0.095 and times[-1] >= 0.995
    assert times[-1] < 1.3, times
    # a thread-driven source ends by itself and reports the end
    got, ended = [], threading.Event()
    src2 = FileSource(p, 16000)
    src2.start(4000, got.append, on_end=ended.set)
    assert ended.wait(3.0)
    assert sum(map(len, got)) == 16000


def test_filesource_unreadable_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(ValueError, match="cannot read audio file"):
        FileSource(bad, 16000)


# ------------------------------------------------------------------ a stream without devices
def test_duplexstream_file_to_null_output_runs_in_real_time(tone_file):
    p, _, _ = tone_file
    inputs, outputs, ended = [], [], threading.Event()
    s = make_stream(lambda b: 0.5 * b, 16000, 800, input_file=p, output_device="null",
                    on_end=ended.set)
    assert s.mode == "file-null"
    s.add_tap(lambda i, o: (inputs.append(i), outputs.append(o)))
    t0 = time.monotonic()
    with s:
        assert s.wait(5.0)
    elapsed = time.monotonic() - t0
    assert ended.is_set() and s.error is None and not s.running
    assert s.blocks_processed == 20 and len(outputs) == 20  # 16000 / 800
    assert 0.9 < elapsed < 1.6
    x, y = np.concatenate(inputs), np.concatenate(outputs)
    np.testing.assert_allclose(y, 0.5 * x, atol=1e-7)
    assert s.mean_process_s >= 0 and s.max_process_s >= s.mean_process_s
    assert s.stats()["xruns"] == 0
    # a file is not a microphone: never trimmed for freshness
    assert s.stats()["input_samples_dropped"] == 0 and s.input_backlog_drops == 0


def test_duplexstream_reports_a_failing_processor(tone_file):
    p, _, _ = tone_file
    errors, taps = [], []
    calls = {"n": 0}

    def bad(block):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("model exploded")
        return block

    s = make_stream(bad, 16000, 800, input_file=p, output_device="null", on_error=errors.append)
    s.add_tap(lambda i, o: taps.append(o))
    s.start()
    assert s.wait(5.0)
    assert errors and "model exploded" in errors[0] and "model exploded" in s.error
    assert len(taps) == 2 and not s.running  # blocks before the failure reached the taps
    s.stop()  # idempotent after a failure


def test_duplexstream_rejects_wrong_block_length(tone_file):
    p, _, _ = tone_file
    s = make_stream(lambda b: b[:-1], 16000, 800, input_file=p, output_device="null")
    s.start()
    assert s.wait(5.0)
    assert "expected 800" in s.error


def test_each_mode_is_its_own_class(monkeypatch, tone_file):
    """make_stream picks one class per mode from the sources and sinks (no device is opened)."""
    from realtime_tse.audio import separate_duplex, stream_modes as audio_modes, streams as audio_io
    p, _, _ = tone_file
    fake = audio_io.DeviceInfo(0, "fake", 1, 1, 16000.0, "fake")
    monkeypatch.setattr(audio_io, "find_device", lambda spec, kind="input", path=None: fake)
    monkeypatch.setattr(audio_io, "pick_path", lambda audio_path, specs: "alsa")
    kw = dict(device_rate=16000, boost_priority=False)
    cases = [(dict(input_file=p, output_device="null"), audio_modes.TimedFileStream, "file-null",
              "single"),
             (dict(input_file=p), audio_modes.FilePlaybackStream, "file", "single"),
             (dict(output_device="null"), audio_modes.CaptureStream, "capture", "single"),
             (dict(streams="duplex"), audio_modes.SingleStreamDuplex, "duplex", "duplex"),
             (dict(), separate_duplex.SeparateStreamsDuplex, "duplex", "separate")]
    for settings, cls, mode, streams in cases:
        s = make_stream(lambda b: b, 16000, 800, **settings, **kw)
        assert (type(s), s.mode, s.streams) == (cls, mode, streams), settings
        assert s.stats()["mode"] == mode and (s.estimated_latency_s > 0) == (mode == "duplex")
        s.stop()
    sep = make_stream(lambda b: b, 16000, 800, **kw)
    assert sep.latency_request == "low" and sep.device_blocksize == 96  # 6 ms periods
    assert sep.input_blocksize == 64 and sep.prefill_samples == 256  # 4 ms in, 16 ms jitter
    long_blocks = make_stream(lambda b: b, 16000, 1024, **kw)  # 64 ms blocks: 8 ms periods
    assert long_blocks.device_blocksize == 128 and long_blocks.prefill_samples == 256


@pytest.mark.parametrize("bad", [True, 3.0, "3", -1, 100])
def test_rt_priority_is_checked_in_one_place(bad, tone_file):
    """make_stream and the CLI share check_rt_priority: None or an integer 0..99."""
    from realtime_tse.audio.streams import check_rt_priority
    p, _, _ = tone_file
    for ok in (None, 0, 3, 99):
        check_rt_priority(ok)
    with pytest.raises(ValueError, match="rt_priority must be an integer within 0..99"):
        make_stream(lambda b: b, 16000, 800, input_file=p, output_device="null",
                    rt_priority=bad)


class _FakeTime:
    """PortAudio's time_info as the callback sees it."""

    def __init__(self, now: float, age: float):
        self.currentTime, self.inputBufferAdcTime = now, now - age
        self.outputBufferDacTime = now


def test_input_backlog_is_dropped_oldest_first_and_counted(monkeypatch):
    """A fake microphone (a ramp: each sample is its own index) feeds the capture path without a
    sound card: a burst at the first callback (start-up backlog) and a worker hiccup later pile up
    input; the worker cuts the ring back, oldest samples first, and counts exactly what it cut."""
    from realtime_tse.audio import streams as audio_io
    fake_dev = audio_io.DeviceInfo(0, "fake mic", 1, 0, 16000.0, "fake")
    monkeypatch.setattr(audio_io, "find_device", lambda spec, kind="input", **_: fake_dev)
    fs, B = 16000, 160  # 10 ms blocks
    stall = threading.Event()

    def process(b):
        if stall.is_set():  # one hiccup: the worker is 0.4 s late
            stall.clear()
            time.sleep(0.4)
        return b

    s = make_stream(process, fs, B, output_device="null", device_rate=fs, startup_s=0.2,
                    max_input_backlog_s=0.1, boost_priority=False)
    assert s.mode == "capture" and s.max_input_backlog_s == pytest.approx(0.1)
    taps = []
    s.add_tap(lambda i, o: taps.append(i))
    stop = threading.Event()
    age = {"s": 0.01}

    def source():  # the PortAudio callback thread, paced in real time
        pos, t0 = 0, time.monotonic()
        burst = 10 * B  # the first callback brings a 100 ms backlog at once
        while not stop.is_set():
            n = burst or B
            burst = 0
            x = np.arange(pos, pos + n, dtype=np.float32)[:, None]
            s._callback_duplex(x, None, n, _FakeTime(time.monotonic(), age["s"]), None)
            pos += n
            d = t0 + pos / fs - time.monotonic()
            if d > 0:
                time.sleep(d)

    def fake_open():
        s.device_latency = (0.02, 0.0)
        s._stale_limit = 0.02 + s.max_input_backlog_s
        threading.Thread(target=source, daemon=True).start()

    monkeypatch.setattr(s, "_open_stream", fake_open)
    s.start()
    try:
        deadline = time.monotonic() + 10
        while s.callback_time_s < 0.5 and time.monotonic() < deadline:
            time.sleep(0.01)
        age["s"] = 0.5  # the device says the captured audio is half a second old
        stall.set()
        time.sleep(0.2)
        age["s"] = 0.01
        while s.callback_time_s < 1.2 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        time.sleep(0.2)  # the worker takes what is left
        st = s.stats()
    finally:
        stop.set()
        s.stop()
    assert s.error is None, st
    x = np.concatenate(taps).astype(np.int64)
    gaps = np.diff(x) - 1
    assert np.all(gaps >= 0)  # order kept: only skips forward
    assert x[0] >= 10 * B - s._in_target  # the start-up burst was cut to one block + margin
    skipped = int(x[0]) + int(gaps.sum())
    assert st["input_startup_drops"] >= 1 and st["input_backlog_drops"] >= 2, st
    assert skipped == st["input_samples_dropped"], (skipped, st)
    # the hiccup piled up ~0.4 s: more than the 0.1 s bound, cut back to the target
    big = gaps[gaps > 0]
    assert big.max() >= 0.2 * fs, big
    assert st["input_backlog_s"] <= st["max_input_backlog_s"] + 1e-9, st
    assert st["max_input_latency_s"] == pytest.approx(0.5, abs=1e-6)
    assert st["stale_input_callbacks"] >= 5 and 0 < st["input_latency_s"] < 0.1, st
    print("input freshness:", {k: st[k] for k in ("input_backlog_drops", "input_startup_drops",
                                                  "input_samples_dropped", "input_backlog_s",
                                                  "stale_input_callbacks")})
