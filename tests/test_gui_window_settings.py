"""What the window remembers (realtime_tse/gui/window_settings.py): the choices and the live settings
come back at the next launch; a damaged saved value falls back to its default with one note."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("pytestqt")

from realtime_tse.gui.app import MainWindow  # noqa: E402
from tests.gui_fixtures import ini_settings, model_path, window  # noqa: E402,F401

pytestmark = pytest.mark.timeout(60)


def test_settings_persist_between_launches(window, qtbot, tmp_path, model_path):
    window.distance.set_value(2.25)
    window.vol_slider.setValue(33)
    window.resize(760, 560)  # inside the offscreen screen (800x600): restoreGeometry clamps to it
    window.live_config.jitter_ms = 30.0  # a live setting (LiveConfig)
    size = window.size()  # what Qt made of it (the layout's minimum width may be larger)
    window.shutdown()
    w2 = MainWindow(ini_settings(tmp_path), model_path=model_path, output=None, autostart=False)
    qtbot.addWidget(w2)
    try:
        assert w2.distance.value() == pytest.approx(2.25)
        assert w2.vol_slider.value() == 33
        assert w2.current_source()[0] == "demo"
        assert w2.live_config.jitter_ms == 30.0 and w2.live_config == window.live_config
        # the width may differ by the status bar's text (the minimum width follows it)
        assert w2.size().height() == size.height() and abs(w2.size().width() - size.width()) < 60
    finally:
        w2.shutdown()


@pytest.mark.parametrize("key,value", [("volume", "nan"), ("wet", "nan"), ("distance", "abc"),
                                       ("volume", "1e9"), ("live", '{"jitter_ms": NaN}')])
def test_a_bad_saved_value_falls_back_to_its_default_and_the_window_opens(
        qtbot, tmp_path, model_path, key, value):
    """A hand-edited or damaged settings file: the window opens with the default for what it
    cannot use, and one note names the key and the file (the status bar and the log)."""
    s = ini_settings(tmp_path)
    s.setValue("volume", 0.5)
    s.setValue("distance", 2.0)
    s.setValue(key, value)
    s.sync()
    w = MainWindow(ini_settings(tmp_path), model_path=model_path, output=None, autostart=False)
    qtbot.addWidget(w)
    try:
        notes = [m for lvl, m in w.messages if lvl == "info" and "reset to their defaults" in m]
        assert len(notes) == 1 and key in notes[0] and "settings.ini" in notes[0], w.messages
        assert w.statusBar().currentMessage() == notes[0]
        assert w.vol_slider.value() == (100 if key == "volume" else 50)
        assert w.wet_slider.value() == 100
        assert w.distance.value() == pytest.approx(1.0 if key == "distance" else 2.0)
        assert w.live_config.jitter_ms is None
    finally:
        w.shutdown()
