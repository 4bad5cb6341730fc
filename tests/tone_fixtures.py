"""The ``tone_file`` fixture of the audio stream tests (registered in tests/conftest.py)."""
import numpy as np
import pytest
import soundfile as sf


@pytest.fixture()
def tone_file(tmp_path):
    """1 s stereo file at 48 kHz: left 440 Hz, right 0.5 x the same (mono = 0.75 x)."""
    fs = 48000
    t = np.arange(fs) / fs
    x = 0.5 * np.sin(2 * np.pi * 440 * t)
    p = tmp_path / "tone48k.wav"
    sf.write(p, np.stack([x, 0.5 * x], axis=1), fs, subtype="FLOAT")
    return p, 0.75 * x, fs
