"""realtime_tse.testing.loopback: the pacat recorder of the delay-measuring harness."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

DEMO_MIX = Path(__file__).resolve().parents[1] / "assets" / "demo" / "demo_mix.wav"


def test_pacat_recorder_records_what_it_plays_and_only_that(pulse_null_sink):
    """The benchmark's out-of-process harness (parec / pacat children): what it plays into
    ``meas_l`` comes back in the left channel of its recording, sample for sample up to the
    server's offset (correlation > 0.99 at the best lag), and the right channel, which nothing
    plays into here, holds silence."""
    from realtime_tse.testing.loopback import MeasureSinks, PacatLoopbackRecorder
    fs = 16000
    x, sr = sf.read(DEMO_MIX, dtype="float32")
    assert sr == fs
    x = x[:3 * fs]
    sinks = MeasureSinks(fs)
    try:
        h = PacatLoopbackRecorder(fs, max_s=20).start()
        h.play(x)
        deadline = time.monotonic() + 20
        while not h.done_playing and time.monotonic() < deadline:
            time.sleep(0.05)
        assert h.done_playing
        time.sleep(0.3)
        left, right = h.stop()
    finally:
        sinks.unload()
    assert len(left) == len(right) > len(x)
    c = np.correlate(left, x[fs:2 * fs], mode="valid")  # one second of it, found in the left
    k = int(np.argmax(c))
    seg = left[k:k + fs]
    assert float(np.corrcoef(seg, x[fs:2 * fs])[0, 1]) > 0.99
    assert float(np.sqrt(np.mean(right ** 2))) < 1e-4


def test_pacat_recorder_says_what_is_missing(monkeypatch):
    """Without parec / pacat the recorder refuses at once and names the package."""
    import realtime_tse.testing.loopback as lb
    monkeypatch.setattr(lb.shutil, "which", lambda b: None if b == "parec" else "/usr/bin/" + b)
    with pytest.raises(RuntimeError, match="parec.*pulseaudio-utils"):
        lb.PacatLoopbackRecorder(16000)
