"""realtime_tse.live.engine.LiveEngine: block processing and controls, file input with recording and
scan, restarts, slider drags, the real audio path through a PulseAudio null sink (marked
``audio``), NaN input and the output limiter, the lite-lstm network in the engine."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_fixtures import pulse_null_sink  # noqa: E402,F401
from rt_fixtures import (DEMO_DIR, DEMO_MIX, SHIPPED, demo_at, demo_model_rate,  # noqa: E402,F401
                         model, one_torch_thread, rand_ckpt)

from realtime_tse.live.engine import LiveEngine  # noqa: E402
from realtime_tse.model import load_model  # noqa: E402
from realtime_tse.safety import CEILING_DBFS, OutputGuard  # noqa: E402


def _rel_err(a, b):
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))


# ------------------------------------------------------------------------------------ LiveEngine
def test_live_engine_block_processing_controls(model, demo_model_rate):
    """bypass / wet / volume on the worker's block function (no stream started)."""
    eng = LiveEngine(model, block_ms=64, input_file=DEMO_MIX, output_device="null", scan=False)
    B = eng.block_samples
    D = eng.streamer.delay_samples
    assert eng.algorithmic_latency_ms == pytest.approx(1e3 * (B + D) / model.sample_rate)
    x = demo_model_rate[: 8 * B]
    eng.bypass = True
    out = np.concatenate([eng._process_block(x[i:i + B]) for i in range(0, len(x), B)])
    # dry, aligned like the wet, through the output guard (DC blocker + limiter) of every block
    dry = np.concatenate([np.zeros(D, np.float32), x])[:len(x)]
    guard = OutputGuard(model.sample_rate)
    want = np.concatenate([guard.process(dry[i:i + B]) for i in range(0, len(x), B)])
    np.testing.assert_allclose(out, want, atol=1e-7)
    np.testing.assert_allclose(out[D:], x[:len(x) - D], atol=0.02)  # (5 Hz high-pass: small)
    assert eng.input_level_db > -60 and eng.output_level_db > -60 and eng.rtf > 0
    eng.bypass = False
    eng.volume = 0.5
    eng.wet = 0.0
    eng.output_guard = OutputGuard(model.sample_rate, dc_cutoff_hz=0)  # the gains alone
    blk = x[:B]
    o = eng._process_block(blk)
    np.testing.assert_allclose(o[D:], 0.5 * blk[:B - D], atol=1e-7)
    with pytest.raises(ValueError, match="range"):
        eng.distance_m = 99.0
    eng.distance_m = 2.0
    assert eng.distance_m == 2.0
    eng.wet, eng.volume = 5.0, -1.0
    assert eng.wet == 1.0 and eng.volume == 0.0


def test_live_engine_file_input_records_and_scans(model, tmp_path):
    scans = []
    eng = LiveEngine(model, block_ms=64, input_file=DEMO_MIX, output_device="null",
                     distance_m=1.0, scan_seconds=1.0, on_scan=scans.append)
    assert eng.device == "cpu" and eng.device_sample_rate == model.sample_rate
    rec = eng.start_recording(tmp_path / "take.wav", record_input=True)
    eng.start()
    try:
        # what is listened to is the 16 kHz file, not the 8 kHz the model runs at; no playback
        st = eng.stats()
        assert (st.source_sample_rate, st.model_sample_rate, st.output_sample_rate) == \
            (16000, 8000, 0) == (sf.info(DEMO_MIX).samplerate, model.sample_rate, 0)
        assert st.source_sample_rate == rec.sample_rate   # a recording is made at that rate
        time.sleep(1.2)
        eng.distance_m = 3.0
        # the change is logged with the first block made at it: wait for two more blocks too
        done = eng.stream.blocks_processed + 2
        deadline = time.monotonic() + 15
        while (eng.scan_count < 1 or eng.stream.blocks_processed < done) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert eng.error is None
        assert eng.scan_count >= 1 and eng.latest_scan is not None and scans
        assert np.all(np.isfinite(eng.latest_scan.isdr_db))
        # causal model: the incremental streaming scan over the live grid, fed with new audio
        from realtime_tse.scan.live_scan import StreamingScanWorker
        assert isinstance(eng._scanner, StreamingScanWorker)
        assert len(eng.latest_scan.distances_m) == len(eng.scan_distances_m) == 11
        assert eng.latest_scan.duration_s <= eng.scan_seconds + 1e-6
        assert eng.stats()["scan_skips"] == eng.scan_skips >= 0
        assert eng.rtf > 0 and eng.xruns == 0
    finally:
        eng.stop()
    assert rec.closed and eng.recorder is None
    info = sf.info(rec.path)
    # recorded at the input file's rate (16 kHz), the model's rate (8 kHz) in the sidecar
    assert info.samplerate == sf.info(DEMO_MIX).samplerate == 2 * model.sample_rate
    blocks = eng.stream.blocks_processed
    assert abs(info.frames - 2 * blocks * eng.block_samples) <= 0.01 * info.samplerate
    assert sf.info(rec.input_path).frames == info.frames
    side = json.loads(rec.sidecar_path.read_text())
    assert side["sample_rate"] == info.samplerate and side["extra"]["model_sample_rate"] == 8000
    assert [c["d_q_m"] for c in side["distance_changes"]] == [1.0, 3.0]
    # a second recording never overwrites the first
    eng2 = LiveEngine(model, input_file=DEMO_MIX, output_device="null", scan=False)
    rec2 = eng2.start_recording(tmp_path / "take.wav")
    eng2.stop()
    assert rec2.path != rec.path and rec.path.exists()


def test_live_engine_restarts_and_reports_worker_errors(model, tmp_path):
    errors = []
    eng = LiveEngine(model, input_file=DEMO_MIX, output_device="null", scan=False,
                     on_error=errors.append)
    eng.start()
    time.sleep(0.3)
    eng.stop()
    n1 = eng.stream.blocks_processed
    assert n1 > 0 and eng.error is None
    eng.start()  # a fresh stream
    rec = eng.start_recording(tmp_path / "crash.wav")
    time.sleep(0.5)
    assert eng.running
    eng.streamer.process = None  # the worker's model call now fails
    deadline = time.monotonic() + 5
    while eng.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert eng.error and errors and errors[0] == eng.error
    assert "\n" not in eng.error
    # the recording was closed by the failure and kept, with what came before it
    assert rec.closed and eng.recorder is None
    assert sf.info(rec.path).frames > 0 and json.loads(rec.sidecar_path.read_text())["frames"] > 0
    eng.stop()


def test_a_fast_slider_drag_reprimes_once_per_block_at_most_and_loses_no_audio(tmp_path):
    """A user drags the distance slider: a new distance every 10 ms for 8 s (32 ms blocks, scan
    and recording on). The worker takes the newest distance at each block boundary: at most one
    re-prime per block, the recording notes at most one change per block (each at a block
    boundary of the audio), no xruns, and the recording holds the whole run."""
    import math
    m = load_model(SHIPPED if SHIPPED.is_file() else None, device="cpu")
    eng = LiveEngine(m, input_file=DEMO_MIX, loop=True, output_device="null", block_ms=32,
                     distance_m=1.0, torch_threads=1)
    # at the model's rate, so that the recording's times are the blocks' (no resampler delay)
    rec = eng.start_recording(tmp_path / "drag.wav", sample_rate=m.sample_rate)
    eng.start()
    t0, moves = time.monotonic(), 0
    try:
        while (now := time.monotonic()) - t0 < 8.0:
            eng.distance_m = 1.5 + math.sin(2 * math.pi * 0.4 * (now - t0))
            moves += 1
            time.sleep(0.01)
        time.sleep(0.1)
        st = eng.stats()
        blocks = eng.stream.blocks_processed
        wall = time.monotonic() - t0  # the run, until stop() is asked
    finally:
        eng.stop()
    doc = json.loads(rec.sidecar_path.read_text())
    changes = doc["distance_changes"]
    block_s = eng.block_samples / m.sample_rate
    assert moves > 400 and blocks > 200, (moves, blocks)
    assert blocks * 0.5 < len(changes) <= blocks + 1, (len(changes), blocks, moves)
    assert all(abs(c["audio_s"] / block_s - round(c["audio_s"] / block_s)) < 0.01
               for c in changes), changes[:5]
    assert blocks * 0.5 < eng.streamer.reprimes <= blocks, (eng.streamer.reprimes, blocks)
    assert st.xruns == 0 and st.rtf < 1.0, st
    assert sf.info(rec.path).duration >= wall - 0.3, (sf.info(rec.path).duration, wall)


# ------------------------------------------------------------------------------------ real audio
def _align(a, b):
    """Best lag L (a[i + L] ~ b[i], L may be negative) by cross-correlation; returns the
    overlapping parts of a and b and L."""
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    c = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)
    k = int(np.argmax(c))
    lag = k if k < n // 2 else k - n
    if lag >= 0:
        a2, b2 = a[lag:], b
    else:
        a2, b2 = a, b[-lag:]
    m = min(len(a2), len(b2))
    return a2[:m], b2[:m], lag


@pytest.mark.audio
def test_live_engine_through_pulse_null_sink(pulse_null_sink, model, monkeypatch, tmp_path):
    """The demo plays into the engine's microphone and the engine plays into a sink, both through
    PulseAudio (realtime_tse/testing/loopback.py's measuring topology: the harness records the engine's
    input and output in one stereo stream). The engine records its own input: its recording must
    be the offline extraction of that input, delayed; what came out of the sink must be that
    extraction, window by window; and the engine must never be late after a 2 s warm-up.

    Why not one duplex harness stream and one lag over the whole run (this test's old form): a
    duplex stream's output-to-input delay changes with each of its own xruns, and the live path
    drops queued output after a device hiccup instead of playing it late (adaptive jitter buffer),
    so on a busy 2-core machine one global lag matched a fraction of the run (corr 0.2-0.7) while
    the engine worked. Each 0.2 s window is aligned on its own here. PortAudio's device
    under/overflow flags (a thread of the sound path not scheduled in time on a loaded CPU) are
    reported, not failed on; up to 3 attempts, like the other real-audio tests."""
    from realtime_tse.model import resample
    from realtime_tse.testing.loopback import DUT_ENV, LoopbackRecorder, MeasureSinks
    fs = 16000
    seconds = 8.0
    x = demo_at(fs, seconds)
    play = np.concatenate([x, np.zeros(int(1.5 * fs), np.float32)])
    sinks = MeasureSinks(fs)
    attempts = []
    try:
        for attempt in range(3):
            for k, v in DUT_ENV.items():
                monkeypatch.setenv(k, v)
            # defaults of the live path (separate in/out streams, 'low' latency, adaptive jitter
            # buffer); the device at the sink's rate (16 kHz): no resampling by PulseAudio
            eng = LiveEngine(model, block_ms=64, input_device="pulse", output_device="pulse",
                             distance_m=1.0, scan_seconds=2.0, device_rate=fs,
                             stall_timeout_s=5.0)
            rec = eng.start_recording(tmp_path / f"live{attempt}.wav", record_input=True,
                                      sample_rate=model.sample_rate)  # the engine's own samples
            h = None
            try:
                eng.start()
                # past the stream's start-up (where a failed first poll reopens it): the harness
                # sets PULSE_SOURCE/PULSE_SINK for its own streams while it opens them, and a
                # reopen then would take those (the old form of this test switched them for good
                # and a start-up reopen left the engine recording its own output: silence)
                deadline = time.monotonic() + 10
                while (eng.stream.blocks_processed < 4
                       or eng.stream.callback_time_s < eng.stream.startup_s + 0.25) \
                        and time.monotonic() < deadline and eng.error is None:
                    time.sleep(0.05)
                assert eng.error is None and eng.stream.blocks_processed >= 4, eng.stats()
                h = LoopbackRecorder(fs, max_s=seconds + 20).start()
                t_harness = eng.stream.callback_time_s  # engine device time: input flows
                h.play(play)
                deadline = time.monotonic() + seconds + 20
                while not h.done_playing and eng.error is None and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert h.done_playing or eng.error, "harness did not finish playing"
                time.sleep(0.5)
                events = eng.xrun_events()
                stats = eng.stats()
            finally:
                eng.stop()
                _left, heard_dev = h.stop() if h is not None else (None, None)
            assert eng.error is None, eng.error

            # the engine's own record of its input and output
            xin, sr_in = sf.read(rec.input_path, dtype="float32")
            yout, sr_out = sf.read(rec.path, dtype="float32")
            assert sr_in == sr_out == model.sample_rate
            assert len(yout) == len(xin) == eng.stream.blocks_processed * eng.block_samples
            assert abs(len(yout) / sr_out - rec.duration_s) < 1e-6
            # offline extraction of the same input, delayed as the engine delays it
            ref = model.extract(xin, 1.0)
            D = eng.streamer.delay_samples
            ref = np.concatenate([np.zeros(D, np.float32), ref])[:len(xin)]
            # the engine's recording is the offline output, delayed (16-bit file: quantisation)
            c_rec = float(np.corrcoef(yout, ref)[0, 1])
            # what came out of the sink, at the model rate: each 0.2 s window of the reference
            # (from 2 s after the input starts, while it holds sound) found in it on its own
            heard = resample(heard_dev, fs, model.sample_rate)
            w = model.sample_rate // 5
            t0 = int((t_harness + 2.0) * model.sample_rate)
            corrs, lags = [], []
            for s0 in range(t0, len(ref) - w + 1, w):
                seg = ref[s0:s0 + w]
                if np.sqrt(np.mean(seg * seg)) < 1e-3:
                    continue
                a, b, lag = _align(heard, seg)
                corrs.append(round(float(np.corrcoef(a[:w], b[:w])[0, 1]), 3))
                lags.append(lag - s0)
            matched = sum(c > 0.9 for c in corrs)
            late = [(t, k) for t, k in events if t > t_harness + 2.0]
            engine_late = [(t, k) for t, k in late if k in ("late", "input_ring")]
            summary = (f"attempt {attempt + 1}: corr recording {c_rec:.4f}, windows matched "
                       f"{matched}/{len(corrs)} (corr {corrs}), xruns "
                       f"{stats['xruns']} (after warm-up: {late}; input from {t_harness:.2f} s), "
                       f"rtf {stats['rtf']:.2f}, scans {stats['scan_count']}, max block "
                       f"{stats['max_process_s'] * 1e3:.0f} ms, device latency "
                       f"{stats['device_latency_s'] * 1e3:.0f} ms, output drops "
                       f"{stats['output_drops']}, harness glitches {h.glitches}")
            print(summary)
            attempts.append(summary)
            ok = (c_rec > 0.99 and len(corrs) >= 10 and matched >= 0.5 * len(corrs)
                  and not engine_late)
            if ok:
                break
    finally:
        sinks.unload()
    report = "\n".join(attempts)
    assert c_rec > 0.99, report
    assert len(corrs) >= 10, report  # the reference held sound for most of the 8 s
    # the sink played the model's output: half the windows found whole (a window with a drop of
    # queued output in it, or a device underflow, matches no single lag)
    assert matched >= 0.5 * len(corrs), report
    assert not engine_late, report  # processing never fell behind after the warm-up


def test_live_engine_bidirectional_model_keeps_the_window_scan(tmp_path):
    """Bidirectional checkpoints cannot stream a state: the live scan falls back to the offline
    window scan (ScanWorker) with the same interface."""
    from realtime_tse.models import ModelConfig, build_model
    from realtime_tse.models.checkpoint import save_checkpoint
    from realtime_tse.scan.live_scan import ScanWorker
    torch.manual_seed(0)
    cfg = ModelConfig.preset("paper", sample_rate=8000, n_fft=256, hop=128, d_model=8, hidden=8,
                             n_dq=1, n_ts=1)
    p = save_checkpoint(tmp_path / "tiny-paper.safetensors", build_model(cfg).eval())
    m = load_model(p, device="cpu")
    eng = LiveEngine(m, block_ms=64, input_file=DEMO_MIX, output_device="null", scan_seconds=1.0)
    eng.start()
    try:
        assert isinstance(eng._scanner, ScanWorker)
        deadline = time.monotonic() + 15
        while eng.scan_count < 1 and time.monotonic() < deadline and eng.error is None:
            time.sleep(0.1)
        assert eng.error is None and eng.scan_count >= 1 and eng.latest_scan is not None
        assert eng.scan_skips == 0 and eng.scan_rate_hz > 0
    finally:
        eng.stop()


def test_live_engine_sanitises_nan_and_limits_the_output(model, demo_model_rate, tmp_path):
    eng = LiveEngine(model, block_ms=64, input_file=DEMO_MIX, output_device="null", scan=False)
    ref = LiveEngine(model, block_ms=64, input_file=DEMO_MIX, output_device="null", scan=False)
    B = eng.block_samples
    x = demo_model_rate[: 10 * B].copy()
    x[2 * B + 5] = np.nan
    clean = np.nan_to_num(x, nan=0.0)
    eng.volume = ref.volume = 2.0
    eng.bypass = ref.bypass = True
    loud = 8.0 * clean  # +18 dB: far over full scale
    out = np.concatenate([eng._process_block(np.where(np.isnan(x), x, loud)[i:i + B])
                          for i in range(0, len(x), B)])
    want = np.concatenate([ref._process_block(loud[i:i + B]) for i in range(0, len(x), B)])
    assert np.all(np.isfinite(out)) and float(np.max(np.abs(out))) <= 10 ** (CEILING_DBFS / 20)
    np.testing.assert_allclose(out, want, atol=1e-6)
    st = eng.stats()
    assert st["nonfinite_in"] == 1 and st["limited_samples"] > 0 and "NaN" in eng.notice
    assert eng.output_level_db > -40  # the meter shows the audio, not -120 dB


def test_lite_lstm_checkpoint_runs_in_the_engine_and_streams_like_offline(tmp_path):
    from realtime_tse.models import ModelConfig, build_model
    from realtime_tse.models.checkpoint import save_checkpoint
    torch.manual_seed(0)
    p = save_checkpoint(tmp_path / "lite-lstm.safetensors", build_model(ModelConfig.preset("lite-lstm")).eval())
    m = load_model(p, device="cpu")
    assert m.causal and m.config.arch == "lstm_deg"
    x = demo_at(m.sample_rate, 2.0)
    y = m.extract(x, 1.5)
    s = m.stream(block_ms=32, aligned=True)
    B = s.block_samples
    n = len(x) - len(x) % B
    out = np.concatenate([s.process(x[i:i + B], 1.5) for i in range(0, n, B)])
    D = s.delay_samples
    assert _rel_err(out[D:], y[:n - D]) < 1e-4
    prof = m.scan(x, np.array([0.5, 1.5, 3.0]))   # the profile runs on the same streaming steps
    assert prof.isdr_db.shape == (3,) and np.all(np.isfinite(prof.isdr_db))
