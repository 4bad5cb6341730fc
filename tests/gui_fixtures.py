"""Shared fixtures of the window's tests (test_gui_app.py, test_gui_recording.py,
test_gui_window_settings.py, test_gui_launch.py); a test module imports what it uses.

``model_path``: None when the shipped checkpoint is there (what a user gets), else an untrained
``lite-causal`` stand-in saved once per module. ``window``: the real window on the demo input, no
playback, a temporary QSettings file and recordings folder, its engine running (the URLs it opens
collect in ``window.opened_urls``). ``ini_settings(tmp_path)``: a QSettings on ``settings.ini`` in
``tmp_path``; ``pump(qtbot, seconds)``: run the event loop that long.
"""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

from realtime_tse.gui.app import SHIPPED_MODEL, MainWindow  # noqa: E402

START_TIMEOUT_MS = 15000


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """None = the shipped checkpoint (what a user gets); else an untrained stand-in."""
    if SHIPPED_MODEL.is_file():
        return None
    from realtime_tse.models.checkpoint import save_checkpoint
    from realtime_tse.models.config import ModelConfig
    from realtime_tse.models.net import build_model
    p = tmp_path_factory.mktemp("model") / "random-lite-causal.safetensors"
    save_checkpoint(p, build_model(ModelConfig.preset("lite-causal")),
                    {"room": {"name": "d1", "room_min": [7, 8, 3], "room_max": [7, 8, 3],
                              "mic": [3.5, 4, 1.1], "rt60_min": 0.2, "rt60_max": 0.2}})
    return str(p)


def ini_settings(tmp_path):
    """A QSettings on ``tmp_path/settings.ini`` (INI format)."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


@pytest.fixture
def window(qtbot, tmp_path, model_path):
    opened = []
    w = MainWindow(ini_settings(tmp_path), model_path=model_path, source=("demo", None), output=None,
                   recordings_dir=tmp_path / "recordings", open_url=opened.append,
                   ask_open_file=lambda *a: "")
    w.opened_urls = opened
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.engine is not None or bool(w.messages), timeout=START_TIMEOUT_MS)
    assert w.engine is not None, w.messages
    yield w
    w.shutdown()


def pump(qtbot, seconds):
    """Run the Qt event loop for ``seconds`` (the engine, the UI timer and the scan go on)."""
    qtbot.wait(int(seconds * 1000))
