"""The app's entry point (realtime_tse/gui/launch.py): ``main`` runs the window and returns 0 with
no stray Quit event left behind; SIGTERM closes the app as closing the window does."""
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from PySide6.QtCore import QSettings  # noqa: E402

from realtime_tse.gui.app import MainWindow  # noqa: E402
from tests.gui_fixtures import model_path  # noqa: E402,F401

pytestmark = pytest.mark.timeout(60)


def test_sigterm_closes_the_window_as_a_close_does(tmp_path, model_path):
    """``kill -TERM`` (or a logout's SIGHUP) closes the app as closing the window does: exit 0,
    the settings saved."""
    import signal
    import subprocess
    import sys
    ini = tmp_path / "settings.ini"
    cmd = [sys.executable, "-m", "realtime_tse.gui.launch", "--settings", str(ini), "--demo",
           "--no-output", "--distance", "2.5"] + (["--model", model_path] if model_path else [])
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "RTSE_RECORDINGS_DIR": str(tmp_path / "rec")}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8.0)  # the window is up and the engine runs (the machine is slow)
        assert p.poll() is None, p.communicate()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, (p.returncode, err[-2000:])
    text = ini.read_text()
    assert "distance=2.5" in text and "volume=" in text, text


def test_main_runs_the_app_and_returns_0(qtbot, tmp_path, model_path):
    """``realtime-tse`` (no arguments) calls main(); here with options so it uses temp settings."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from realtime_tse.gui import launch

    seen = {}

    def quit_when_running():
        wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        if wins and wins[-1].engine is not None:
            seen["distance"] = wins[-1].engine.distance_m
            QApplication.instance().quit()
        else:
            QTimer.singleShot(100, quit_when_running)

    QTimer.singleShot(100, quit_when_running)
    argv = ["--settings", str(tmp_path / "s.ini"), "--demo", "--no-output", "--distance", "2.5"]
    if model_path:
        argv += ["--model", model_path]
    assert launch.main(argv) == 0
    # main() leaves no stray Quit event behind: a later event loop still runs
    from PySide6.QtCore import QEventLoop
    loop = QEventLoop()
    QTimer.singleShot(30, loop.quit)
    assert loop.exec() == 0
    assert seen.get("distance") == pytest.approx(2.5)
    assert QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat).value("source/kind") == "demo"
