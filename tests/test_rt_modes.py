"""Suppress mode: the input minus the extraction, sample-exactly aligned, in the API, the streamer,
the engine (noted in the recording's sidecar) and the command line; the virtual microphone from
``stream --virtual-mic`` on a private PulseAudio server."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime_tse import load_model
from realtime_tse.live.engine import LiveEngine
from realtime_tse.modes import check_mode

REPO = Path(__file__).resolve().parents[1]
DEMO_MIX = REPO / "assets" / "demo" / "demo_mix.wav"


@pytest.fixture(scope="module")
def model():
    return load_model(device="cpu")


def test_check_mode():
    assert check_mode("Suppress") == "suppress" and check_mode("extract") == "extract"
    with pytest.raises(ValueError, match="mode"):
        check_mode("remove")


def test_extract_and_suppress_add_up_to_the_input(model):
    x, sr = sf.read(DEMO_MIX, dtype="float32")
    x = x[: 4 * sr]
    e = model.extract(x, 1.0, sample_rate=sr)
    s = model.extract(x, 1.0, sample_rate=sr, mode="suppress")
    assert np.abs(e + s - x).max() < 1e-5
    assert 10 * np.log10(np.sum(s ** 2) / np.sum(x ** 2)) < -0.1   # something was taken out
    with pytest.raises(ValueError, match="mode"):
        model.extract(x, 1.0, sample_rate=sr, mode="nope")


def test_streamed_suppress_is_the_delayed_input_minus_the_streamed_extraction(model):
    import soxr
    x, sr = sf.read(DEMO_MIX, dtype="float32")
    x = soxr.resample(x[: 4 * sr], sr, model.sample_rate).astype(np.float32)
    a, b = model.stream(block_ms=32), model.stream(block_ms=32)
    step = 200                                   # blocks of any length, modes switched midway
    es, ss = [], []
    for i, k in enumerate(range(0, len(x), step)):
        es.append(a.process(x[k:k + step], 1.0))
        ss.append(b.process(x[k:k + step], 1.0, mode="suppress" if i % 7 < 4 else "extract"))
    e, s = np.concatenate(es), np.concatenate(ss)
    delayed = np.concatenate([np.zeros(a.delay_samples, np.float32), x])[:len(x)]
    for i, k in enumerate(range(0, len(x), step)):
        want = delayed[k:k + step] - e[k:k + step] if i % 7 < 4 else e[k:k + step]
        assert np.abs(s[k:k + step] - want).max() < 1e-5, i
    offline = model.extract(x, 1.0)
    d = a.delay_samples
    sup = np.concatenate([np.zeros(d, np.float32), x - offline])[:len(x)]
    s_all = model.stream(block_ms=32).process(x, 1.0, mode="suppress")
    assert np.abs(s_all - sup).max() < 1e-3      # the offline suppression, delayed


def test_the_engine_switches_mode_and_the_sidecar_says_when(model, tmp_path):
    eng = LiveEngine(model, input_file=str(DEMO_MIX), loop=True, output_device="null", block_ms=32,
                     distance_m=1.0, scan=False, torch_threads=1, mode="suppress")
    rec = eng.start_recording(tmp_path / "m.wav", sample_rate=model.sample_rate)
    eng.start()
    try:
        time.sleep(1.0)
        eng.mode = "extract"
        time.sleep(1.0)
        with pytest.raises(ValueError):
            eng.mode = "louder"
    finally:
        eng.stop()
    doc = json.loads(rec.sidecar_path.read_text())
    assert [c["mode"] for c in doc["mode_changes"]] == ["suppress", "extract"]
    assert 0.5 < doc["mode_changes"][1]["audio_s"] < 1.8


def test_cli_extract_suppress_writes_everyone_else(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "realtime_tse.cli", "extract", str(DEMO_MIX), "-d", "1"]
    r1 = subprocess.run(cmd + ["-o", str(tmp_path / "e.wav")], capture_output=True, text=True, env=env,
                        timeout=300)
    r2 = subprocess.run(cmd + ["-o", str(tmp_path / "s.wav"), "--mode", "suppress"], capture_output=True,
                        text=True, env=env, timeout=300)
    assert r1.returncode == 0 and r2.returncode == 0, (r1.stderr, r2.stderr)
    assert "everyone but the talkers" in r2.stdout
    x = sf.read(DEMO_MIX, dtype="float32")[0]
    e, s = sf.read(tmp_path / "e.wav", dtype="float32")[0], sf.read(tmp_path / "s.wav", dtype="float32")[0]
    assert len(s) == len(x) and np.abs(e + s - x).max() < 2e-4       # 16-bit rounding of both files


def test_stream_virtual_mic_is_heard_by_a_recorder_and_removed_at_stop(pulse_null_sink, tmp_path):
    from realtime_tse.audio.virtual_mic import find_virtual_mics
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "realtime_tse.cli", "stream", "--input-file", str(DEMO_MIX),
                          "--loop", "--output-device", "null", "-d", "1", "--seconds", "8", "--no-scan",
                          "--virtual-mic", "rtse_cli_mic"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while "rtse_cli_mic" not in find_virtual_mics():
            assert time.monotonic() < deadline and p.poll() is None, p.communicate()
            time.sleep(0.2)
        rec = subprocess.Popen(["parec", "--device=rtse_cli_mic", "--rate=8000", "--channels=1",
                                "--format=float32le"], stdout=subprocess.PIPE)
        time.sleep(3.0)
        rec.send_signal(signal.SIGINT)
        y = np.frombuffer(rec.communicate(timeout=10)[0], dtype="<f4")
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "virtual microphone 'rtse_cli_mic'" in out
    assert len(y) > 8000 and np.isfinite(y).all()
    assert 20 * np.log10(np.sqrt(np.mean(y ** 2)) + 1e-12) > -50      # speech arrived, not silence
    assert "rtse_cli_mic" not in find_virtual_mics()                  # removed at stop
