"""The app's custom widgets alone (no engine, no model): fast."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPoint, Qt  # noqa: E402

from realtime_tse.gui.widgets import DistanceControl, DistanceRadar, LevelMeter, ProfilePlot  # noqa: E402


def test_distance_control_slider_spin_and_keys(qtbot):
    dc = DistanceControl(0.0, 5.0, 1.0)
    qtbot.addWidget(dc)
    seen = []
    dc.distanceChanged.connect(seen.append)
    dc.slider.setFocus()
    qtbot.keyClick(dc.slider, Qt.Key_Right)
    assert dc.value() == pytest.approx(1.05)
    assert dc.spin.value() == pytest.approx(1.05)
    qtbot.keyClick(dc.slider, Qt.Key_PageUp)
    assert dc.value() == pytest.approx(1.55)
    dc.spin.setValue(2.5)
    assert dc.value() == pytest.approx(2.5) and seen[-1] == pytest.approx(2.5)
    assert dc.readout.text() == "2.50 m"
    dc.set_value(99)  # clamped to the range
    assert dc.value() == pytest.approx(5.0)
    dc.set_range(0.5, 4.0)
    assert dc.value() == pytest.approx(4.0) and dc.range() == (0.5, 4.0)


def test_radar_click_snaps_to_talker_ring_or_radius(qtbot):
    r = DistanceRadar(5.0)
    qtbot.addWidget(r)
    r.resize(600, 340)
    r.show()
    r.set_profile(np.arange(0, 5.01, 0.5), np.linspace(-20, 0, 11), [1.1, 3.2])
    got = []
    r.distanceClicked.connect(got.append)
    for metres, angle in ((3.0, 120), (1.95, 45), (4.3, 90)):
        p = r.point_at(metres, angle)
        qtbot.mouseClick(r, Qt.LeftButton, pos=QPoint(int(round(p.x())), int(round(p.y()))))
    assert got[0] == pytest.approx(3.2)       # near the 3.2 m talker: snaps to it
    assert got[1] == pytest.approx(2.0)       # near the 2 m ring
    assert got[2] == pytest.approx(4.3, abs=0.06)
    r.set_query(2.0)
    assert not r.grab().isNull()


def test_level_meter_and_profile_accept_odd_values(qtbot):
    m = LevelMeter("In")
    qtbot.addWidget(m)
    for v in (None, float("nan"), -float("inf"), -12.0, 5.0):
        m.set_level(v)
    assert m.level_db == 0.0
    m.set_level(-40)
    assert m.level_db == pytest.approx(-1.5)  # falls back slowly
    p = ProfilePlot(0.0, 5.0)
    qtbot.addWidget(p)
    assert not p.has_data
    p.set_profile([], [], [])
    assert not p.has_data
    d = np.arange(0, 5.01, 0.5)
    p.set_profile(d, -20 + 10 * np.exp(-(d - 1) ** 2), [1.0])
    assert p.has_data and len(p.peak_labels) == 1
    p.set_query(2.0)
    assert p.query_line.value() == pytest.approx(2.0)
