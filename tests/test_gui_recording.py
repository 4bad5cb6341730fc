"""The window's recording (realtime_tse/gui/recording.py): the Record button and key R write a file
at the input's rate, a device error keeps the recording, a write that fails ends recording mode and
says why. The real window and engine on the demo input, offscreen, no playback."""
import json
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt  # noqa: E402

from realtime_tse.gui.app import DEMO_INPUT  # noqa: E402
from tests.gui_fixtures import model_path, pump, window  # noqa: E402,F401

pytestmark = pytest.mark.timeout(60)


def test_record_writes_an_input_rate_file_of_the_recorded_length(window, qtbot):
    import soundfile as sf

    qtbot.keyClick(window, Qt.Key_R)  # hotkey
    rec = window.recorder
    assert rec is not None, window.messages
    t0 = time.monotonic()
    pump(qtbot, 2.5)
    assert window.rec_time.text() != ""
    path = window.stop_recording()
    wall = time.monotonic() - t0
    assert path is not None and path.is_file() and path.parent == window.recordings_dir
    info = sf.info(str(path))
    assert info.samplerate == sf.info(str(DEMO_INPUT)).samplerate  # the input's rate (16 kHz)
    # the engine records what it produced: real time, minus its start-up and block granularity
    assert 0.5 * wall <= info.duration <= wall + 0.5, (info.duration, wall)
    assert window.recorder is None and "saved" in window.rec_path.text()
    window.open_recordings_folder()
    assert window.opened_urls and window.opened_urls[-1].toLocalFile() == str(path.parent)


def test_device_error_keeps_the_recording(window, qtbot):
    window.start_recording()
    pump(qtbot, 1.0)
    assert window.recorder is not None
    window.host.engine_error.emit(window.engine, "input device lost (simulated)")
    qtbot.waitUntil(lambda: bool(window.messages), timeout=5000)
    assert "device lost" in window.messages[-1][1]
    assert window.recorder is None and window.last_recording is not None
    assert window.last_recording.is_file() and window.last_recording.stat().st_size > 44


def test_a_recording_that_fails_is_said_and_recording_mode_ends(window, qtbot):
    """The disk fills while recording: the window says so (when, why, where the audio up to there
    is) and leaves recording mode."""
    import errno

    import soundfile as sf
    rec = window.start_recording()
    pump(qtbot, 1.0)
    real = rec._out.write

    def full(data):
        real(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    rec._out.write = full
    qtbot.waitUntil(lambda: window.recorder is None, timeout=10000)
    msg = window.messages[-1]
    assert msg[0] == "error" and "The recording stopped at" in msg[1], window.messages
    assert f"cannot write {rec.path}: no space left on device" in msg[1]
    assert not window.record_btn.isChecked() and "stopped at" in window.rec_path.text()
    assert sf.info(str(rec.path)).duration > 0.3
    doc = json.loads(rec.sidecar_path.read_text())
    assert doc["end_time"] and "no space left on device" in doc["error"]
    assert window.engine is not None and window.engine.running  # the audio goes on
