"""The desktop app end to end: the real window, the real engine, the demo input, no playback.

Runs offscreen (QT_QPA_PLATFORM=offscreen unless set). Every test uses a temporary QSettings file and
a temporary recordings folder. Uses the shipped checkpoint when present; otherwise an untrained
lite-causal model saved in a temporary folder (then the talker-distance check is skipped).
"""
import json
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPoint, QSettings, Qt  # noqa: E402

from realtime_tse.gui.app import DEMO_INPUT, SHIPPED_MODEL, MainWindow, describe_room  # noqa: E402

pytestmark = pytest.mark.timeout(60)
DEMO_JSON = DEMO_INPUT.with_name("demo.json")
START_TIMEOUT_MS = 15000


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """None = the shipped checkpoint (what a user gets); else an untrained stand-in."""
    if SHIPPED_MODEL.is_file():
        return None
    from models.checkpoint import save_checkpoint
    from models.config import ModelConfig
    from models.net import build_model
    p = tmp_path_factory.mktemp("model") / "random-lite-causal.safetensors"
    save_checkpoint(p, build_model(ModelConfig.preset("lite-causal")),
                    {"room": {"name": "d1", "room_min": [7, 8, 3], "room_max": [7, 8, 3],
                              "mic": [3.5, 4, 1.1], "rt60_min": 0.2, "rt60_max": 0.2}})
    return str(p)


def _settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


@pytest.fixture
def window(qtbot, tmp_path, model_path):
    opened = []
    w = MainWindow(_settings(tmp_path), model_path=model_path, source=("demo", None), output=None,
                   recordings_dir=tmp_path / "recordings", open_url=opened.append,
                   ask_open_file=lambda *a: "")
    w.opened_urls = opened
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.engine is not None or bool(w.messages), timeout=START_TIMEOUT_MS)
    assert w.engine is not None, w.messages
    yield w
    w.shutdown()


def _pump(qtbot, seconds):
    qtbot.wait(int(seconds * 1000))


def test_launch_on_demo_slider_sets_distance_and_bypass_toggles(window, qtbot):
    eng = window.engine
    assert window.current_source()[0] == "demo" and window.current_output() is None
    # the model box names the shipped file by its network and room
    assert window.model_combo.itemText(0) == ("Shipped: lite-lstm-d1" if SHIPPED_MODEL.is_file()
                                              else "Shipped model (missing)")
    lo, hi = window.model.distance_range
    assert window.distance.range() == (pytest.approx(lo), pytest.approx(hi))
    window.distance.slider.setValue(250)
    assert eng.distance_m == pytest.approx(2.5)
    assert window.distance.slider.hasFocus()  # arrows work from the start
    qtbot.keyClick(window.distance.slider, Qt.Key_Left)
    assert eng.distance_m == pytest.approx(2.45)
    window.distance.spin.setValue(3.0)
    assert eng.distance_m == pytest.approx(3.0)
    assert window.radar.query_m == pytest.approx(3.0)
    assert window.profile.query_line.value() == pytest.approx(3.0)
    # bypass: the button and the B hotkey
    assert not eng.bypass
    window.bypass_btn.click()
    assert eng.bypass
    qtbot.keyClick(window, Qt.Key_B)
    assert not eng.bypass
    # dry/wet and volume reach the engine
    window.wet_slider.setValue(40)
    window.vol_slider.setValue(50)
    assert eng.wet == pytest.approx(0.4) and eng.volume == pytest.approx(0.5)
    # the status bar shows what runs
    _pump(qtbot, 0.5)
    assert "compute:" in window.st_device.text()
    assert "latency" in window.st_latency.text() and "xruns" in window.st_xruns.text()
    assert "kHz" in window.st_rates.text()
    assert "kHz" in window.model_info.text() and "training room" in window.model_info.text()


def test_record_writes_an_input_rate_file_of_the_recorded_length(window, qtbot):
    import soundfile as sf

    qtbot.keyClick(window, Qt.Key_R)  # hotkey
    rec = window.recorder
    assert rec is not None, window.messages
    t0 = time.monotonic()
    _pump(qtbot, 2.5)
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


def test_profile_and_radar_get_data(window, qtbot):
    scans0 = window.engine.scan_count
    qtbot.waitUntil(lambda: window.profile.has_data and window.radar._dist.size > 0, timeout=15000)
    assert window.engine.scan_count > scans0 or scans0 > 0
    assert window.talkers_label.text().startswith(("Detected talkers", "No clear talker"))
    # clicking the radar on the 2 m ring sets d_q to 2 m
    p = window.radar.point_at(2.0, 150)
    qtbot.mouseClick(window.radar, Qt.LeftButton, pos=QPoint(int(p.x()), int(p.y())))
    assert window.engine.distance_m == pytest.approx(2.0)


@pytest.mark.xfail(strict=False, reason=(
    "the shipped CPU-trained model has not learned the distance cue yet: on the demo its "
    "profile rises to one broad maximum near 1.5 m whatever the talkers' distances; this passes "
    "once a model that meets the distance floors ships"))
def test_radar_finds_the_demo_talkers_with_the_shipped_model(window, qtbot):
    qtbot.waitUntil(lambda: window.profile.has_data, timeout=15000)
    if not SHIPPED_MODEL.is_file():
        pytest.skip(f"{SHIPPED_MODEL.name} not shipped yet: an untrained model cannot find talkers")
    truth = [t["distance_m"] for t in json.loads(DEMO_JSON.read_text())["talkers"].values()]
    # let the profile settle over a few seconds of both talkers
    _pump(qtbot, 4.0)
    scan = window.engine.latest_scan
    found = window.radar.talkers_m
    detail = (f"radar talkers {found}, engine peaks {scan.peaks_m}, truth {truth}, profile "
              f"{dict(zip(scan.distances_m.round(2).tolist(), scan.isdr_db.round(1).tolist()))}")
    assert found, "no talker stands out of the profile: " + detail
    for d in found:
        assert min(abs(d - x) for x in truth) <= 0.5, detail
    # clicking a detected talker listens to it
    t = found[0]
    p = window.radar.point_at(t, 90)
    qtbot.mouseClick(window.radar, Qt.LeftButton, pos=QPoint(int(p.x()), int(p.y())))
    assert window.engine.distance_m == pytest.approx(round(t, 2), abs=0.011)


def test_bad_checkpoint_shows_error_and_app_keeps_running(window, qtbot, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"this is not a checkpoint")
    eng = window.engine
    window.open_checkpoint(str(bad))
    qtbot.waitUntil(lambda: bool(window.messages), timeout=10000)
    level, text = window.messages[-1]
    assert level == "error" and "broken.safetensors" in text
    assert window.banner.isVisible()
    assert window.engine is eng and window.current_model_path() != str(bad)
    # still running: the distance still reaches the engine and the audio keeps flowing
    window.distance.set_value(1.5)
    assert eng.distance_m == pytest.approx(1.5)
    n = eng.scan_count
    qtbot.waitUntil(lambda: eng.scan_count > n, timeout=10000)
    # an unreadable audio file: error shown, app alive
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....nonsense")
    window.messages.clear()
    window.open_audio_file(str(junk))
    qtbot.waitUntil(lambda: bool(window.messages), timeout=10000)
    assert "junk.wav" in window.messages[-1][1]
    window._select_source(("demo", None))
    window.restart_engine()
    qtbot.waitUntil(lambda: window.engine is not None and window.engine is not eng, timeout=START_TIMEOUT_MS)


def test_audio_file_entry_asks_for_a_file_and_plays_it(window, qtbot):
    far = str(DEMO_INPUT.with_name("demo_far.wav"))
    answers = ["", far]  # first the user cancels, then picks a file
    window.ask_open_file = lambda *a: answers.pop(0)
    eng = window.engine
    browse = window.source_index("browse")
    assert browse >= 0
    window.source_combo.setCurrentIndex(browse)
    window.source_combo.activated.emit(browse)  # cancelled: back to the demo, same engine
    assert window.current_source()[0] == "demo" and window.engine is eng
    window.source_combo.setCurrentIndex(browse)
    window.source_combo.activated.emit(browse)
    assert window.current_source() == ("file", far)
    qtbot.waitUntil(lambda: window.engine is not None and window.engine is not eng, timeout=START_TIMEOUT_MS)
    assert window.engine.input_file == far
    assert "demo_far.wav" in window.source_combo.currentText()


def test_device_error_keeps_the_recording(window, qtbot):
    window.start_recording()
    _pump(qtbot, 1.0)
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
    _pump(qtbot, 1.0)
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


def test_settings_persist_between_launches(window, qtbot, tmp_path, model_path):
    window.distance.set_value(2.25)
    window.vol_slider.setValue(33)
    window.resize(760, 560)  # inside the offscreen screen (800x600): restoreGeometry clamps to it
    window.live_config.jitter_ms = 30.0  # a live setting (LiveConfig)
    size = window.size()  # what Qt made of it (the layout's minimum width may be larger)
    window.shutdown()
    w2 = MainWindow(_settings(tmp_path), model_path=model_path, output=None, autostart=False)
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
    s = _settings(tmp_path)
    s.setValue("volume", 0.5)
    s.setValue("distance", 2.0)
    s.setValue(key, value)
    s.sync()
    w = MainWindow(_settings(tmp_path), model_path=model_path, output=None, autostart=False)
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


def test_sigterm_closes_the_window_as_a_close_does(tmp_path, model_path):
    """``kill -TERM`` (or a logout's SIGHUP) closes the app as closing the window does: exit 0,
    the settings saved."""
    import signal
    import subprocess
    import sys
    ini = tmp_path / "settings.ini"
    cmd = [sys.executable, "-m", "realtime_tse.gui.app", "--settings", str(ini), "--demo",
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


def test_screenshot_artifact(window, qtbot, tmp_path):
    qtbot.waitUntil(lambda: window.profile.has_data, timeout=15000)
    out_dir = tmp_path
    if os.environ.get("TSE_ARTIFACTS"):
        out_dir = os.environ["TSE_ARTIFACTS"]
        os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "gui_running.png")
    assert window.grab().save(path)
    assert os.path.getsize(path) > 10_000


def test_describe_room_handles_partial_provenance():
    assert "unknown" in describe_room({})
    assert "D1" in describe_room({"room": {"name": "d1", "room_min": [7, 8, 3], "room_max": [7, 8, 3],
                                           "rt60_min": 0.2, "rt60_max": 0.2}})
    assert "lab" in describe_room({"room": "lab"})


def test_main_runs_the_app_and_returns_0(qtbot, tmp_path, model_path):
    """``realtime-tse`` (no arguments) calls main(); here with options so it uses temp settings."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from realtime_tse.gui import app as gui_app

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
    assert gui_app.main(argv) == 0
    # main() leaves no stray Quit event behind: a later event loop still runs
    from PySide6.QtCore import QEventLoop
    loop = QEventLoop()
    QTimer.singleShot(30, loop.quit)
    assert loop.exec() == 0
    assert seen.get("distance") == pytest.approx(2.5)
    assert QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat).value("source/kind") == "demo"


@pytest.mark.audio
def test_first_launch_with_devices_uses_the_microphone_and_plays(pulse_null_sink, qtbot, tmp_path,
                                                                model_path):
    """With a (PulseAudio null-sink) device present: microphones and outputs are listed, a first
    launch picks the default microphone and output, and choosing the demo with playback runs."""
    w = MainWindow(_settings(tmp_path), model_path=model_path, recordings_dir=tmp_path / "rec",
                   autostart=False)
    qtbot.addWidget(w)
    try:
        assert w._inputs and w._outputs
        assert w.current_source()[0] == "device" and "(default)" in w.source_combo.currentText()
        assert w.current_output() is not None
        w.restart_engine()
        qtbot.waitUntil(lambda: w.engine is not None or bool(w.messages), timeout=START_TIMEOUT_MS)
        assert w.engine is not None, w.messages
        assert w.engine.stream.input_file is None if hasattr(w.engine.stream, "input_file") else True
        w._select_source(("demo", None))
        eng = w.engine
        w.restart_engine()
        qtbot.waitUntil(lambda: w.engine is not None and w.engine is not eng, timeout=START_TIMEOUT_MS)
        _pump(qtbot, 1.5)
        assert w.engine.device_latency_ms > 0
        assert "device" in w.st_latency.text() and "audio" in w.st_rates.text()
    finally:
        w.shutdown()


def test_device_lists_refresh_when_opened_and_keep_devices_by_name(qtbot, tmp_path, model_path,
                                                                    monkeypatch):
    """A microphone that appears after start is offered when the list opens; a chosen device is
    kept by name when indices shift, and marked when it is gone."""
    from realtime_tse.audio import devices as audio_devices
    from realtime_tse.audio.devices import AudioDeviceError, DeviceInfo
    devs = [DeviceInfo(0, "USB mic", 1, 0, 48000.0, "ALSA")]
    monkeypatch.setattr(audio_devices, "list_devices", lambda refresh=False: list(devs))
    monkeypatch.setattr(audio_devices, "list_devices_fresh", lambda timeout_s=5.0: list(devs))

    def no_default(spec, kind="input"):
        raise AudioDeviceError("no default")
    monkeypatch.setattr(audio_devices, "find_device", no_default)
    w = MainWindow(_settings(tmp_path), model_path=model_path, source=("demo", None), output=None,
                   autostart=False)
    qtbot.addWidget(w)
    entries = lambda c: [c.itemData(k) for k in range(c.count())]  # noqa: E731
    assert ("device", "USB mic") in entries(w.source_combo)
    assert ("device", "pulse") not in entries(w.source_combo)
    w.source_combo.setCurrentIndex(w.source_index("device", "USB mic"))
    devs[:] = [DeviceInfo(0, "pulse", 32, 32, 44100.0, "ALSA"),
               DeviceInfo(1, "USB mic", 1, 0, 48000.0, "ALSA")]  # indices shift
    w.source_combo.showPopup()  # opening the list refreshes it
    w.source_combo.hidePopup()
    assert ("device", "pulse") in entries(w.source_combo)
    assert ("device", "pulse") in entries(w.output_combo)
    assert w.current_source() == ("device", "USB mic")  # kept by name, not by index
    devs[:] = [DeviceInfo(0, "pulse", 32, 32, 44100.0, "ALSA")]  # the microphone is unplugged
    assert w.refresh_devices() == (1, 1)
    assert w.current_source() == ("device", "USB mic")
    assert "(not found)" in w.source_combo.currentText()


def test_nan_in_an_audio_file_is_said_once_and_never_played(qtbot, tmp_path, model_path):
    """A float WAV holding one NaN (a broken file): the window says so once (info banner), the
    output stays finite and audible (the meter is not at its -120 dB floor)."""
    import numpy as np
    import soundfile as sf

    from tests.rt_fixtures import demo_at
    x = demo_at(16000, 4.0).astype(np.float32)
    x[8000] = np.nan
    path = tmp_path / "broken.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    w = MainWindow(_settings(tmp_path), model_path=model_path, source=("file", str(path)), output=None,
                   recordings_dir=tmp_path / "recordings", open_url=lambda u: None,
                   ask_open_file=lambda *a: "")
    qtbot.addWidget(w)
    try:
        qtbot.waitUntil(lambda: any("NaN" in t for _, t in w.messages), timeout=60000)
        _pump(qtbot, 1.5)
        nan_msgs = [(lv, t) for lv, t in w.messages if "NaN" in t]
        assert len(nan_msgs) == 1 and nan_msgs[0][0] == "info"
        st = w.engine.stats()
        assert st.nonfinite_in >= 1 and np.isfinite(st.output_level_db) and st.output_level_db > -100
    finally:
        w.shutdown()


def test_model_menu_opens_the_calibration_dialog_and_mutes_playback(window, qtbot):
    bar = window.menuBar()
    menus = [a.menu() for a in bar.actions() if a.text().replace("&", "") == "Model"]
    assert len(menus) == 1
    acts = [a for a in menus[0].actions() if a.text() == "Calibrate room\u2026"]
    assert len(acts) == 1
    before = window.engine.volume
    acts[0].trigger()
    dlg = window.calibrate_dialog
    qtbot.waitUntil(dlg.isVisible, timeout=5000)
    assert window.engine.volume == 0.0
    dlg.reject()
    assert window.engine.volume == before


def test_keep_everyone_else_toggles_the_mode_by_button_and_key_s(window, qtbot):
    eng = window.engine
    assert eng.mode == "extract" and not window.suppress_btn.isChecked()
    window.suppress_btn.click()
    assert eng.mode == "suppress"
    qtbot.keyClick(window, Qt.Key_S)
    assert eng.mode == "extract"


def test_virtual_microphone_box_makes_one_for_other_apps(pulse_null_sink, qtbot, tmp_path, model_path):
    from realtime_tse.audio.virtual_mic import DEFAULT_NAME, find_virtual_mics
    w = MainWindow(_settings(tmp_path), model_path=model_path, source=("demo", None), output=None,
                   recordings_dir=tmp_path / "recordings", open_url=lambda *a: None,
                   ask_open_file=lambda *a: "")
    qtbot.addWidget(w)
    w.show()
    try:
        qtbot.waitUntil(lambda: w.engine is not None or bool(w.messages), timeout=START_TIMEOUT_MS)
        first = w.engine
        w.vmic_check.setChecked(True)
        qtbot.waitUntil(lambda: w.engine is not None and w.engine is not first, timeout=START_TIMEOUT_MS)
        assert w.engine.virtual_mic is not None and DEFAULT_NAME in find_virtual_mics()
        second = w.engine
        w.vmic_check.setChecked(False)
        qtbot.waitUntil(lambda: w.engine is not None and w.engine is not second, timeout=START_TIMEOUT_MS)
        assert w.engine.virtual_mic is None and DEFAULT_NAME not in find_virtual_mics()
    finally:
        w.shutdown()
    assert DEFAULT_NAME not in find_virtual_mics()


def test_virtual_microphone_without_a_sound_server_says_why_and_audio_goes_on(window, qtbot, monkeypatch,
                                                                              tmp_path):
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/no-server-here")
    first = window.engine
    window.vmic_check.setChecked(True)
    qtbot.waitUntil(lambda: any("No virtual microphone" in str(m) for m in window.messages),
                    timeout=START_TIMEOUT_MS)
    qtbot.waitUntil(lambda: window.engine is not None and window.engine is not first, timeout=START_TIMEOUT_MS)
    assert not window.vmic_check.isChecked() and window.live_config.virtual_mic is None
    assert window.engine.running and window.engine.virtual_mic is None
    assert any("install" in str(m) for m in window.messages)
