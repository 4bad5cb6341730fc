"""The calibration dialog offscreen (pytest-qt): set-up, takes through the simulated-room test
double, a level problem and a vanished device on the way, the plot at the end; and the menu action."""
import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from PySide6.QtWidgets import QMainWindow  # noqa: E402

from realtime_tse.calibration.folder import work_dir_for  # noqa: E402
from realtime_tse.gui.calibrate_dialog import CalibrateDialog, add_calibrate_action  # noqa: E402
from tests.calibration_fixtures import FakeRoom, identity, room_rirs  # noqa: E402
from tests.test_rt_calibration import SETUP  # noqa: E402

pytestmark = pytest.mark.timeout(120)
LAT = 1120
DISTS = [1.0, 2.0, 3.0]


def _fill(dlg, out):
    dlg.name_edit.setText("lab")
    assert dlg.size().width() > 0  # QWidget.size() is not shadowed by a field
    for box, v in zip(dlg.room_size + dlg.mic, SETUP.size_m + SETUP.mic_m):
        box.setValue(v)
    dlg.distances_edit.setText(", ".join(f"{d:g}" for d in DISTS))
    dlg.rate_combo.setCurrentIndex(dlg.rate_combo.findData(16000))
    dlg.sweep_s.setValue(1.0)
    dlg.gap_s.setValue(1.0)
    dlg.repeats.setValue(1)
    dlg.out_edit.setText(str(out))


def _play(qtbot, dlg):
    n = len(dlg.messages)
    dlg.play_btn.click()
    qtbot.waitUntil(lambda: not dlg.busy and len(dlg.messages) > n + 1, timeout=30000)


def test_dialog_measures_and_shows_the_plot(qtbot, tmp_path):
    rirs = room_rirs(SETUP, DISTS, 0.3)
    # calls: latency, 1 m (clipped: too loud), 1 m, 2 m (device gone), 2 m (reopened), 3 m
    rooms = [FakeRoom([identity(), 30 * rirs[0], rirs[0]], LAT, fail_at=3),
             FakeRoom(rirs[1:], LAT)]
    opened = []

    def factory(inp, outp, rate):
        opened.append((inp, outp, rate))
        return rooms[len(opened) - 1]

    dlg = CalibrateDialog(play_record_factory=factory, devices=([("Mic", "mic")], [("Spk", "spk")]))
    qtbot.addWidget(dlg)
    dlg.show()
    _fill(dlg, tmp_path / "lab")
    dlg.distances_edit.setText("1, 9")
    assert not dlg.start() and "outside the room" in dlg.setup_msg.text()
    _fill(dlg, tmp_path / "lab")
    assert dlg.start() and dlg.pages.currentIndex() == 1
    assert opened == [("mic", "spk", 16000)]
    assert "touching" in dlg.instruction.text()
    _play(qtbot, dlg)  # latency
    assert "Put the loudspeaker 1 m from the microphone" in dlg.instruction.text()
    _play(qtbot, dlg)  # clipped
    assert "clipped" in dlg.status.text() and "1 m" in dlg.instruction.text()
    _play(qtbot, dlg)  # 1 m
    assert "2 m" in dlg.instruction.text()
    _play(qtbot, dlg)  # the device vanishes: the finished takes stay, Play reopens
    assert "stopped mid-sweep" in dlg.status.text() and dlg.play_record is None
    assert len(list((work_dir_for(tmp_path / "lab") / "rirs").glob("*.wav"))) == 1
    _play(qtbot, dlg)  # 2 m, on a reopened device
    _play(qtbot, dlg)  # 3 m
    assert len(opened) == 2 and dlg.finish_btn.isEnabled() and dlg.table.rowCount() == 4
    dlg.finish_btn.click()
    qtbot.waitUntil(lambda: dlg.pages.currentIndex() == 2, timeout=60000)
    assert dlg.out_path == tmp_path / "lab" and (dlg.out_path / "plot.png").is_file()
    pix = dlg.plot_label.pixmap()
    assert not pix.isNull() and pix.width() > 300
    assert "tse-train --measured" in dlg.result_text.text()
    dlg.grab().save(str(tmp_path / "dialog.png"))


class _BlockingRoom:
    """A play-record callable whose take lasts until the audio is closed, then fails as a
    closed stream does."""

    def __init__(self):
        self.started, self.closed = threading.Event(), threading.Event()

    def __call__(self, x, rate):
        self.started.set()
        if not self.closed.wait(20):
            raise AssertionError("the dialog never closed the audio")
        from realtime_tse.audio.devices import AudioDeviceError
        raise AudioDeviceError("the audio device stopped mid-sweep (the audio stream stopped)")

    def close(self):
        self.closed.set()


def test_closing_mid_take_ends_the_measuring_thread_first(qtbot, tmp_path):
    """The dialog is not closed (and then destroyed) while its helper thread still measures and
    would report into it: closing stops the audio and waits for the thread."""
    room = _BlockingRoom()
    dlg = CalibrateDialog(play_record_factory=lambda *a: room,
                          devices=([("Mic", "mic")], [("Spk", "spk")]))
    qtbot.addWidget(dlg)
    dlg.show()
    _fill(dlg, tmp_path / "lab")
    assert dlg.start()
    dlg.play_btn.click()
    assert room.started.wait(10) and dlg.busy
    helpers = [t for t in threading.enumerate() if t.name == "tse-calibrate"]
    assert len(helpers) == 1 and helpers[0].is_alive()
    dlg.reject()
    assert room.closed.is_set() and not helpers[0].is_alive()
    assert not dlg.isVisible()


class _Engine:
    volume = 0.8


def test_menu_action_mutes_the_engine_while_the_dialog_is_open(qtbot):
    w = QMainWindow()
    qtbot.addWidget(w)
    w.engine = _Engine()
    act = add_calibrate_action(w, devices=([], []))
    menus = [a for a in w.menuBar().actions() if a.text() == "&Model"]
    assert len(menus) == 1 and act in menus[0].menu().actions()
    assert act.text() == "Calibrate room\u2026"
    act.trigger()
    dlg = w.calibrate_dialog
    assert dlg.isVisible() and w.engine.volume == 0.0
    dlg.reject()
    assert w.engine.volume == 0.8
    # no devices: a clear message on the set-up page, nothing started
    dlg2 = CalibrateDialog(w, devices=([], []), play_record_factory=None)
    qtbot.addWidget(dlg2)

    def no_device(*a):
        from realtime_tse.audio.devices import AudioDeviceError
        raise AudioDeviceError("no default input device. Available input devices:\n  (none)")

    dlg2._factory = no_device
    assert not dlg2.start() and "no default input device" in dlg2.setup_msg.text()
