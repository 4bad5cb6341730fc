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


# ------------------------------------------------------------------ one set of options, two entry points
def _options(help_text: str) -> set[str]:
    """The option strings an argparse help lists under "options:" (e.g. {"-o", "--output", ...})."""
    opts, inside = set(), False
    for line in help_text.splitlines():
        if line.rstrip().endswith(":") and not line.startswith(" "):
            inside = line.startswith("options")
            continue
        if inside and line.lstrip().startswith("-"):
            names = line.strip().split("  ")[0]
            opts |= {part.split()[0] for part in names.split(", ")}
    return opts


@pytest.mark.timeout(300)
def test_both_entry_points_list_the_same_options():
    """``realtime-tse --help`` (the console script) and ``python -m realtime_tse.gui.launch --help``
    list one set of options: realtime_tse.app_options defines them for both."""
    import subprocess
    import sys
    from pathlib import Path
    exe = Path(sys.executable).with_name("realtime-tse")
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "realtime_tse.cli"]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    texts = []
    for cmd in (cli, [sys.executable, "-m", "realtime_tse.gui.launch"]):
        r = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=240, env=env)
        assert r.returncode == 0, r.stderr
        texts.append(r.stdout)
    cli_opts, window_opts = (_options(t) for t in texts)
    assert cli_opts == window_opts, (cli_opts ^ window_opts)
    assert {"--model", "--device", "--demo", "--input-file", "--no-output", "--output-device",
            "--distance", "--block-ms", "--settings", "--headless", "-o", "--output"} <= cli_opts


def test_realtime_tse_passes_every_option_to_the_window(monkeypatch, tmp_path, capsys):
    """``realtime-tse`` with a display hands its parsed options to the window as they are (no
    option is dropped or rebuilt by hand)."""
    from realtime_tse.cli import live
    from realtime_tse.cli.main import main
    got = []
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(live, "_qt_can_start", lambda timeout=20.0, while_waiting=None: (True, ""))
    monkeypatch.setattr(live, "_import_gui", lambda: lambda args: got.append(args) or 0)
    ini = tmp_path / "s.ini"
    assert main(["--demo", "--no-output", "--settings", str(ini), "--block-ms", "32",
                 "--distance", "2.5", "--device", "cpu"]) == 0
    (args,) = got
    assert (args.demo, args.no_output, args.settings, args.block_ms, args.distance, args.device) \
        == (True, True, str(ini), 32.0, 2.5, "cpu")


def test_the_window_module_refuses_headless_and_names_what_it_does_not_use(capsys):
    from argparse import Namespace

    from realtime_tse.app_options import unused_options
    from realtime_tse.gui import launch
    with pytest.raises(SystemExit) as e:
        launch._parse(["--headless"])
    assert e.value.code == 2
    assert "this module opens the window" in capsys.readouterr().err
    args = launch._parse(["--seconds", "3", "-o", "x.wav", "--threads", "2", "--settings", "s.ini"])
    assert unused_options(args, window=True) == ["--threads", "--seconds", "-o/--output"]
    assert unused_options(args, window=False) == ["--settings"]
    assert unused_options(Namespace(), window=True) == []


def test_an_unknown_output_device_is_one_line_before_the_window(capsys):
    from realtime_tse.gui import launch
    assert launch.main(["--output-device", "no-such-device-anywhere-7", "--demo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("realtime-tse: error: ") and "Traceback" not in err, err
