"""FileSource: the file read at the model rate frees its resampler, so a process exits quietly."""
import subprocess
import sys
from pathlib import Path

import numpy as np

from realtime_tse.audio.file_source import FileSource
from realtime_tse.paths import demo_input_path

REPO = Path(__file__).resolve().parents[1]


def test_resampler_is_made_on_first_read_and_freed_by_close():
    src = FileSource(demo_input_path(), 8000, loop=True)
    assert src.file_rate == 16000 and src._rs is None  # built, not read: no resampler held
    x = src.read(800)
    assert x.shape == (800,) and np.isfinite(x).all() and src._rs is not None
    src.close()
    assert src._rs is None


def test_a_live_engine_left_referenced_at_exit_prints_no_nanobind_leaks():
    # the engine is started, stopped and kept referenced (a cycle through its callback, as the
    # window's engine host makes it) until the interpreter exits
    code = (
        "from realtime_tse import load_model\n"
        "from realtime_tse.live.engine import LiveEngine\n"
        "from realtime_tse.paths import demo_input_path\n"
        "m = load_model(device='cpu')\n"
        "eng = LiveEngine(m, input_file=str(demo_input_path()), output_device='null', scan=False)\n"
        "eng.on_error = lambda msg, _e=eng: None\n"
        "eng.start(); import time; time.sleep(0.5); eng.stop()\n"
        "unused = LiveEngine(m, input_file=str(demo_input_path()), output_device='null', scan=False)\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    assert "nanobind" not in r.stderr and "leaked" not in r.stderr, r.stderr[-2000:]
