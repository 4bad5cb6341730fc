"""One sample-rate rule for recordings: the input's rate (file or device), the model's in the
sidecar; ``extract`` and ``stream --record`` follow it alike."""
from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rt_fixtures import demo_at, one_torch_thread, rand_ckpt  # noqa: E402,F401

from realtime_tse.cli.main import main  # noqa: E402
from realtime_tse.live.record_rate import ResampledTap, recording_rate  # noqa: E402


def test_recording_rate_follows_the_file_then_the_input_device():
    file_stream = types.SimpleNamespace(_file=types.SimpleNamespace(file_rate=44100),
                                        captures=False, device_rate=8000)
    mic = types.SimpleNamespace(_file=None, captures=True, device_rate=48000)
    playback_only = types.SimpleNamespace(_file=None, captures=False, device_rate=48000)
    assert recording_rate(file_stream, 8000) == 44100
    assert recording_rate(mic, 8000) == 48000
    assert recording_rate(playback_only, 8000) == 8000
    assert recording_rate(None, 16000) == 16000


def test_resampled_tap_keeps_the_signal_and_its_timing():
    got_in, got_out = [], []
    tap = ResampledTap(lambda i, o: (got_in.append(i), got_out.append(o)), 8000, 48000)
    n = np.arange(8000)
    x = np.sin(2 * np.pi * 440 * n / 8000).astype(np.float32)
    for k in range(0, len(x), 512):  # 64 ms blocks, as the live engine hands them
        tap(x[k:k + 512], 0.5 * x[k:k + 512])
    y_in, y_out = np.concatenate(got_in), np.concatenate(got_out)
    # 6x the samples, less the filter's delay (a few ms) trimmed from the start
    assert 6 * len(x) - 0.01 * 48000 <= len(y_in) < 6 * len(x) and len(y_in) == len(y_out)
    ideal = np.sin(2 * np.pi * 440 * np.arange(len(y_in)) / 48000)
    mid = slice(4800, len(y_in) - 4800)  # past the filter's fade-in
    # the delay is trimmed to the nearest sample: within half a 48 kHz sample (0.029 at 440 Hz;
    # one whole sample off would be 0.086)
    assert np.max(np.abs(y_in[mid] - ideal[mid])) < 0.04
    np.testing.assert_allclose(y_out, 0.5 * y_in, atol=1e-6)
    same, blk = [], x[:512]
    ResampledTap(lambda i, o: same.append(o), 8000, 8000)(blk, blk)
    assert same[0] is blk  # equal rates: passed through as they are


def test_extract_and_stream_record_at_the_input_files_rate(capsys, rand_ckpt, tmp_path):
    wav = tmp_path / "in.wav"
    sf.write(wav, demo_at(16000, 2.0), 16000)
    out, rec = tmp_path / "out.wav", tmp_path / "rec.wav"
    assert main(["extract", str(wav), "-d", "1.0", "-o", str(out), "--model", str(rand_ckpt)]) == 0
    assert main(["stream", "--input-file", str(wav), "--output-device", "null", "-d", "1.0",
                 "--record", str(rec), "--seconds", "1.0", "--no-scan",
                 "--model", str(rand_ckpt)]) == 0
    capsys.readouterr()
    assert sf.info(out).samplerate == sf.info(rec).samplerate == 16000
    side = json.loads(rec.with_name(rec.name + ".json").read_text())
    assert side["sample_rate"] == 16000 and side["extra"]["model_sample_rate"] == 8000


@pytest.mark.audio
def test_a_microphone_recording_is_at_the_rate_the_device_runs(pulse_null_sink, rand_ckpt, tmp_path):
    from realtime_tse.live.engine import LiveEngine
    from realtime_tse.model import load_model
    m = load_model(rand_ckpt, device="cpu")
    eng = LiveEngine(m, input_device="pulse", output_device="null", scan=False, device_rate=16000)
    rec = eng.start_recording(tmp_path / "mic.wav")
    eng.start()
    try:
        deadline = time.monotonic() + 20  # a loaded machine: the device may take seconds to start
        while eng.stream.blocks_processed < 8 and time.monotonic() < deadline and not eng.error:
            time.sleep(0.1)
    finally:
        eng.stop()
    assert eng.error is None and eng.stream.blocks_processed >= 8, eng.stats()
    info = sf.info(rec.path)
    assert eng.stream.device_rate == 16000 and info.samplerate == 16000 and info.duration > 0.2
    side = json.loads(rec.sidecar_path.read_text())
    assert side["extra"]["model_sample_rate"] == m.sample_rate == 8000
