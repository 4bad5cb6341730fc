"""The desktop app end to end: the real window, the real engine, the demo input, no playback.

Runs offscreen (QT_QPA_PLATFORM=offscreen unless set). Every test uses a temporary QSettings file and
a temporary recordings folder. Uses the shipped checkpoint when present; otherwise an untrained
lite-causal model saved in a temporary folder (then the talker-distance check is skipped).
"""
import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPoint, Qt  # noqa: E402

from realtime_tse.gui.app import DEMO_INPUT, SHIPPED_MODEL, MainWindow, describe_room  # noqa: E402
from tests.gui_fixtures import START_TIMEOUT_MS, ini_settings, model_path, pump, window  # noqa: E402,F401

pytestmark = pytest.mark.timeout(60)
DEMO_JSON = DEMO_INPUT.with_name("demo.json")


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
    pump(qtbot, 0.5)
    assert "compute:" in window.st_device.text()
    assert "latency" in window.st_latency.text() and "xruns" in window.st_xruns.text()
    assert "kHz" in window.st_rates.text()
    assert "kHz" in window.model_info.text() and "training room" in window.model_info.text()


def test_status_bar_says_the_demo_is_16_khz_resampled_for_the_model(window, qtbot):
    """The demo file is 16 kHz and the model (the shipped one, or its stand-in) runs at 8 kHz: the
    status bar says what is listened to and that it is resampled, not the model's rate alone."""
    import soundfile as sf
    assert sf.info(str(DEMO_INPUT)).samplerate == 16000 and window.model.sample_rate == 8000
    qtbot.waitUntil(lambda: window.st_rates.text().startswith("input"), timeout=START_TIMEOUT_MS)
    assert window.st_rates.text() == "input 16 kHz, resampled to 8 kHz for the model"


@pytest.mark.parametrize("source, model, output, text", [
    (16000, 8000, 0, "input 16 kHz, resampled to 8 kHz for the model"),
    (48000, 8000, 48000, "input 48 kHz, resampled to 8 kHz for the model"),
    (48000, 8000, 44100, "input 48 kHz, resampled to 8 kHz for the model, output 44.1 kHz"),
    (16000, 16000, 0, "input 16 kHz, the model's rate"),
    (0, 8000, 0, "model 8 kHz"),   # no stream yet
])
def test_rates_text_in_plain_words(source, model, output, text):
    from realtime_tse.gui.readout import rates_text
    from realtime_tse.live.stats import LiveStats
    st = LiveStats(source_sample_rate=source, model_sample_rate=model, output_sample_rate=output,
                   device_sample_rate=output or model)
    assert rates_text(st) == text


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
    pump(qtbot, 4.0)
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


@pytest.mark.audio
def test_first_launch_with_devices_uses_the_microphone_and_plays(pulse_null_sink, qtbot, tmp_path,
                                                                model_path):
    """With a (PulseAudio null-sink) device present: microphones and outputs are listed, a first
    launch picks the default microphone and output, and choosing the demo with playback runs."""
    w = MainWindow(ini_settings(tmp_path), model_path=model_path, recordings_dir=tmp_path / "rec",
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
        pump(qtbot, 1.5)
        assert w.engine.device_latency_ms > 0
        assert "device" in w.st_latency.text() and w.st_rates.text().startswith("input 16 kHz")
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
    w = MainWindow(ini_settings(tmp_path), model_path=model_path, source=("demo", None), output=None,
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
    w = MainWindow(ini_settings(tmp_path), model_path=model_path, source=("file", str(path)), output=None,
                   recordings_dir=tmp_path / "recordings", open_url=lambda u: None,
                   ask_open_file=lambda *a: "")
    qtbot.addWidget(w)
    try:
        qtbot.waitUntil(lambda: any("NaN" in t for _, t in w.messages), timeout=60000)
        pump(qtbot, 1.5)
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
    w = MainWindow(ini_settings(tmp_path), model_path=model_path, source=("demo", None), output=None,
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
