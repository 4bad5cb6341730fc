"""Custom widgets of the desktop app: level meter, distance control, distance radar, profile plot.

Every widget here is passive: the main window pushes values in (``set_level``, ``set_profile``,
``set_query``...) from its UI timer and listens to the signals that a user action emits
(``distanceChanged``, ``distanceClicked``). None of them touches the engine, so each can be shown
and tested alone.

Units: distances in metres, levels in dB (dBFS for the meters, dB relative to the input for the
profile).
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (QDoubleSpinBox, QHBoxLayout, QLabel, QSizePolicy, QSlider,
                               QVBoxLayout, QWidget)

__all__ = ["LevelMeter", "DistanceControl", "DistanceRadar", "ProfilePlot",
           "QUERY_COLOR", "TALKER_COLOR"]

QUERY_COLOR = QColor(255, 170, 40)      # the query distance d_q, everywhere
TALKER_COLOR = QColor(80, 200, 255)     # detected talkers, everywhere
_BG = QColor(24, 28, 34)
_GRID = QColor(90, 100, 115)
_TEXT = QColor(200, 206, 214)


class LevelMeter(QWidget):
    """Horizontal peak-style level meter, ``floor_db`` .. 0 dBFS, with a caption and a dB readout.

    ``set_level(db)`` takes the latest level; the bar falls back at ``decay_db_per_update`` per
    call, so short peaks stay visible at a 25 Hz refresh.
    """

    def __init__(self, caption: str, floor_db: float = -60.0, parent=None):
        super().__init__(parent)
        self.caption = caption
        self.floor_db = float(floor_db)
        self.decay_db_per_update = 1.5
        self._db = self.floor_db
        self.setMinimumHeight(22)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setToolTip(f"{caption} level in dBFS (full scale = 0 dB)")

    @property
    def level_db(self) -> float:
        return self._db

    def set_level(self, db) -> None:
        try:
            db = float(db)
        except (TypeError, ValueError):
            db = self.floor_db
        if not math.isfinite(db):
            db = self.floor_db
        db = max(self.floor_db, min(0.0, db))
        self._db = db if db >= self._db else max(db, self._db - self.decay_db_per_update)
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(240, 22)

    def paintEvent(self, _ev):  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing, False)
        w, h = self.width(), self.height()
        cap_w = 34
        read_w = 62
        bar = QRectF(cap_w, 3, max(10, w - cap_w - read_w - 6), h - 6)
        p.setPen(self.palette().windowText().color())
        p.drawText(QRectF(0, 0, cap_w - 4, h), Qt.AlignVCenter | Qt.AlignLeft, self.caption)
        p.fillRect(bar, QColor(40, 44, 52))
        frac = (self._db - self.floor_db) / -self.floor_db
        if frac > 0:
            # green up to -12 dB, yellow to -3 dB, red above
            for lo, hi, col in ((-1e9, -12.0, QColor(70, 190, 90)), (-12.0, -3.0, QColor(230, 200, 60)),
                                (-3.0, 1.0, QColor(230, 70, 60))):
                a = max(self.floor_db, lo)
                b = min(self._db, hi)
                if b <= a:
                    continue
                x0 = bar.left() + bar.width() * (a - self.floor_db) / -self.floor_db
                x1 = bar.left() + bar.width() * (b - self.floor_db) / -self.floor_db
                p.fillRect(QRectF(x0, bar.top(), x1 - x0, bar.height()), col)
        # ticks every 10 dB
        p.setPen(QColor(20, 20, 20))
        for t in range(int(self.floor_db), 1, 10):
            x = bar.left() + bar.width() * (t - self.floor_db) / -self.floor_db
            p.drawLine(QPointF(x, bar.top()), QPointF(x, bar.top() + 4))
        p.setPen(self.palette().windowText().color())
        txt = "  -inf dB" if self._db <= self.floor_db else f"{self._db:6.1f} dB"
        p.drawText(QRectF(w - read_w, 0, read_w, h), Qt.AlignVCenter | Qt.AlignRight, txt)
        p.end()


class DistanceControl(QWidget):
    """Query distance: a slider (1 cm resolution, arrows move 5 cm, PageUp/Down 50 cm), a spin box
    and a large metre readout, kept in sync. Emits ``distanceChanged(float)`` (metres) on every
    user or programmatic change of value.
    """

    distanceChanged = Signal(float)

    def __init__(self, d_min: float = 0.0, d_max: float = 5.0, value: float = 1.0, parent=None):
        super().__init__(parent)
        self._syncing = False
        title = QLabel("Listen at distance")
        f = title.font()
        f.setBold(True)
        title.setFont(f)
        self.readout = QLabel()
        rf = QFont(self.readout.font())
        rf.setPointSizeF(rf.pointSizeF() * 1.9)
        rf.setBold(True)
        self.readout.setFont(rf)
        self.readout.setStyleSheet(f"color: {QUERY_COLOR.name()};")
        self.readout.setMinimumWidth(110)
        self.readout.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setObjectName("distanceSlider")
        self.slider.setSingleStep(5)
        self.slider.setPageStep(50)
        self.slider.setTickPosition(QSlider.TicksBelow)
        self.slider.setTickInterval(50)
        self.slider.setFocusPolicy(Qt.StrongFocus)
        self.slider.setToolTip("Query distance from the microphone. Arrow keys: 5 cm, Page Up/Down: 50 cm")
        self.spin = QDoubleSpinBox()
        self.spin.setObjectName("distanceSpin")
        self.spin.setDecimals(2)
        self.spin.setSingleStep(0.05)
        self.spin.setSuffix(" m")
        self.spin.setKeyboardTracking(False)
        self.scale_lo = QLabel()
        self.scale_hi = QLabel()
        top = QHBoxLayout()
        top.addWidget(title)
        top.addStretch(1)
        top.addWidget(self.readout)
        mid = QHBoxLayout()
        mid.addWidget(self.scale_lo)
        mid.addWidget(self.slider, 1)
        mid.addWidget(self.scale_hi)
        mid.addWidget(self.spin)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addLayout(mid)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)
        self.set_range(d_min, d_max)
        self.set_value(value)

    # -- public
    def set_range(self, d_min: float, d_max: float) -> None:
        d_min, d_max = float(d_min), float(d_max)
        if d_max <= d_min:
            d_max = d_min + 0.5
        self._syncing = True
        self.slider.setRange(int(round(d_min * 100)), int(round(d_max * 100)))
        self.spin.setRange(d_min, d_max)
        self._syncing = False
        self.scale_lo.setText(f"{d_min:g} m")
        self.scale_hi.setText(f"{d_max:g} m")
        self.set_value(self.value())

    def range(self) -> tuple[float, float]:
        return self.spin.minimum(), self.spin.maximum()

    def value(self) -> float:
        return self.slider.value() / 100.0

    def set_value(self, metres: float) -> None:
        lo, hi = self.spin.minimum(), self.spin.maximum()
        metres = min(hi, max(lo, float(metres)))
        self.slider.setValue(int(round(metres * 100)))  # -> _from_slider -> signal
        self._update_readout()

    # -- internals
    def _update_readout(self):
        self.readout.setText(f"{self.value():.2f} m")

    def _from_slider(self, v: int):
        if self._syncing:
            return
        self._syncing = True
        self.spin.setValue(v / 100.0)
        self._syncing = False
        self._update_readout()
        self.distanceChanged.emit(v / 100.0)

    def _from_spin(self, v: float):
        if self._syncing:
            return
        self.slider.setValue(int(round(v * 100)))


class DistanceRadar(QWidget):
    """Top view around the microphone: rings every ``ring_step_m`` (labelled every metre), the live
    profile as a radial glow, an arc per detected talker, and the query ring with its +-r_spk band.

    A single microphone measures distance, not direction, so talkers are drawn as arcs at their
    distance (the direction is unknown). Clicking sets the query: near a talker (within 0.3 m) it
    snaps to the talker, near a ring (within 0.1 m) to the ring, otherwise it takes the clicked
    radius rounded to 5 cm. Emits ``distanceClicked(float)``.
    """

    distanceClicked = Signal(float)

    def __init__(self, d_max: float = 5.0, parent=None):
        super().__init__(parent)
        self.d_max = float(d_max)
        self.ring_step_m = 0.5
        self.r_spk = 0.5
        self.query_m = 1.0
        self.talkers_m: list[float] = []
        self._dist = np.zeros(0)
        self._level = np.zeros(0)
        self.setMinimumSize(300, 200)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setCursor(Qt.PointingHandCursor)
        self.setToolTip("Click a ring or a talker to listen at that distance")

    # -- data in
    def set_range(self, d_max: float, r_spk: float | None = None) -> None:
        self.d_max = max(0.5, float(d_max))
        if r_spk is not None:
            self.r_spk = float(r_spk)
        self.update()

    def set_query(self, metres: float) -> None:
        self.query_m = float(metres)
        self.update()

    def set_profile(self, distances_m, levels_db, talkers_m) -> None:
        self._dist = np.asarray(distances_m, dtype=float).ravel()
        self._level = np.asarray(levels_db, dtype=float).ravel()
        self.talkers_m = [float(t) for t in (talkers_m or [])]
        self.update()

    def clear(self) -> None:
        self.set_profile([], [], [])

    # -- geometry
    def _geometry(self):
        """Centre (the microphone) and pixels per metre. The view is the upper half-plane plus a
        margin: talkers are drawn as arcs over 180 degrees in front of the microphone."""
        w, h = self.width(), self.height()
        margin = 26
        radius_px = max(20.0, min((w - 2 * margin) / 2.0, h - 2 * margin - 10))
        cx = w / 2.0
        cy = margin + radius_px + 4
        return QPointF(cx, cy), radius_px / self.d_max

    def distance_at(self, pos) -> float:
        c, ppm = self._geometry()
        return math.hypot(pos.x() - c.x(), pos.y() - c.y()) / ppm

    def snap(self, d: float) -> float:
        for t in self.talkers_m:
            if abs(t - d) <= 0.3:
                return round(t, 2)
        ring = round(d / self.ring_step_m) * self.ring_step_m
        if abs(ring - d) <= 0.1:
            d = ring
        else:
            d = round(d * 20) / 20.0
        return float(min(self.d_max, max(0.0, d)))

    def point_at(self, metres: float, angle_deg: float = 90.0) -> QPointF:
        """Widget coordinates of a point ``metres`` from the microphone (90 deg = straight up)."""
        c, ppm = self._geometry()
        a = math.radians(angle_deg)
        return QPointF(c.x() + metres * ppm * math.cos(a), c.y() - metres * ppm * math.sin(a))

    def mousePressEvent(self, ev):  # noqa: N802
        if ev.button() == Qt.LeftButton:
            d = self.distance_at(ev.position())
            if d <= self.d_max + 0.3:
                self.distanceClicked.emit(self.snap(min(d, self.d_max)))
        super().mousePressEvent(ev)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(440, 300)

    # -- drawing
    def paintEvent(self, _ev):  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing, True)
        p.fillRect(self.rect(), _BG)
        c, ppm = self._geometry()

        def arc_rect(r_m):
            r = r_m * ppm
            return QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r)

        # radial glow of the profile: one annulus per grid point, brightness = how far its level
        # rises above the median level (0 at the median, full at +10 dB): a flat profile stays dark
        if self._dist.size and self._level.size == self._dist.size:
            lv = np.nan_to_num(self._level, nan=-120.0)
            norm = np.clip((lv - np.median(lv)) / 10.0, 0, 1)
            step = float(np.median(np.diff(self._dist))) if self._dist.size > 1 else 0.5
            for d, a in sorted(zip(self._dist, norm), key=lambda x: -x[0]):
                r_out = min(self.d_max, d + step / 2)
                col = QColor(TALKER_COLOR)
                col.setAlpha(int(10 + 70 * a * a))
                p.setPen(Qt.NoPen)
                p.setBrush(col)
                p.drawPie(arc_rect(r_out), 0, 180 * 16)
                p.setBrush(_BG)
                r_in = max(0.0, d - step / 2)
                if r_in > 0:
                    p.drawPie(arc_rect(r_in), 0, 180 * 16)
        # query band +- r_spk, then rings
        q = min(max(self.query_m, 0.0), self.d_max)
        band = QColor(QUERY_COLOR)
        band.setAlpha(45)
        pen = QPen(band, max(2.0, 2 * self.r_spk * ppm), Qt.SolidLine, Qt.FlatCap)
        p.setPen(pen)
        p.setBrush(Qt.NoBrush)
        if q > 0:
            p.drawArc(arc_rect(q), 0, 180 * 16)
        p.setPen(QPen(_GRID, 1, Qt.DashLine))
        n_rings = int(round(self.d_max / self.ring_step_m))
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.85))
        p.setFont(small)
        for i in range(1, n_rings + 1):
            r_m = i * self.ring_step_m
            whole = abs(r_m - round(r_m)) < 1e-6
            p.setPen(QPen(_GRID, 1.2 if whole else 0.7, Qt.SolidLine if whole else Qt.DotLine))
            p.drawArc(arc_rect(r_m), 0, 180 * 16)
            if whole:
                p.setPen(_TEXT)
                x = c.x() + r_m * ppm
                p.drawText(QRectF(x - 20, c.y() + 2, 40, 16), Qt.AlignHCenter | Qt.AlignTop, f"{r_m:g} m")
                x = c.x() - r_m * ppm
                p.drawText(QRectF(x - 20, c.y() + 2, 40, 16), Qt.AlignHCenter | Qt.AlignTop, f"{r_m:g} m")
        p.setPen(QPen(_GRID, 1))
        p.drawLine(QPointF(c.x() - self.d_max * ppm, c.y()), QPointF(c.x() + self.d_max * ppm, c.y()))
        # query ring
        if q > 0:
            p.setPen(QPen(QUERY_COLOR, 2.5))
            p.drawArc(arc_rect(q), 0, 180 * 16)
        # talkers: bright arcs with a label
        p.setFont(self.font())
        for k, t in enumerate(self.talkers_m):
            if not (0 < t <= self.d_max + 1e-6):
                continue
            # the whole half ring, faint: one microphone cannot tell the direction
            faint = QColor(TALKER_COLOR)
            faint.setAlpha(110)
            p.setPen(QPen(faint, 3))
            p.setBrush(Qt.NoBrush)
            p.drawArc(arc_rect(t), 0, 180 * 16)
            # a bright arc of at least ~50 px with the blip, staggered so labels do not collide
            span = max(16.0, math.degrees(50.0 / max(1.0, t * ppm)))
            centre = 60.0 if k % 2 == 0 else 115.0
            p.setPen(QPen(TALKER_COLOR, 6, Qt.SolidLine, Qt.RoundCap))
            p.drawArc(arc_rect(t), int((centre - span / 2) * 16), int(span * 16))
            mid = self.point_at(t, centre)
            p.setBrush(TALKER_COLOR)
            p.setPen(QPen(QColor(255, 255, 255), 1.5))
            p.drawEllipse(mid, 7, 7)
            label = f"talker {t:.1f} m"
            fm = p.fontMetrics()
            tw = fm.horizontalAdvance(label) + 10
            box = QRectF(mid.x() - tw / 2, mid.y() - 30, tw, 18)
            p.setPen(Qt.NoPen)
            p.setBrush(QColor(0, 0, 0, 150))
            p.drawRoundedRect(box, 4, 4)
            p.setPen(TALKER_COLOR)
            p.drawText(box, Qt.AlignCenter, label)
        # microphone
        p.setPen(QPen(QColor(255, 255, 255), 1.5))
        p.setBrush(QColor(230, 230, 230))
        p.drawEllipse(c, 6, 6)
        p.setPen(_TEXT)
        p.drawText(QRectF(c.x() - 40, c.y() + 16, 80, 16), Qt.AlignHCenter, "microphone")
        # legend / query label
        p.setPen(QUERY_COLOR)
        p.drawText(QRectF(8, 6, self.width() - 16, 18), Qt.AlignLeft,
                   f"listening at {self.query_m:.2f} m (\u00b1{self.r_spk:g} m)")
        if not self.talkers_m:
            p.setPen(_TEXT)
            p.drawText(QRectF(8, 6, self.width() - 16, 18), Qt.AlignRight,
                       "no clear talker yet" if self._dist.size else "scanning for talkers\u2026")
        p.end()


class ProfilePlot(pg.PlotWidget):
    """Live distance profile: output level relative to the input (dB) against the query distance,
    the query distance as a draggable vertical line, detected talkers as markers.

    Dragging the line emits ``distanceDragged(float)``.
    """

    distanceDragged = Signal(float)

    def __init__(self, d_min: float = 0.0, d_max: float = 5.0, parent=None):
        super().__init__(parent=parent, background=_BG)
        self.setMinimumSize(300, 170)
        pi = self.getPlotItem()
        pi.setLabel("bottom", "query distance", units="m")
        pi.setLabel("left", "extracted level re input", units="dB")
        pi.setTitle("Distance profile (level of what each distance would extract)", size="10pt")
        pi.showGrid(x=True, y=True, alpha=0.25)
        pi.setMenuEnabled(False)
        pi.hideButtons()
        self.setMouseEnabled(x=False, y=False)
        self.curve = pi.plot([], [], pen=pg.mkPen(TALKER_COLOR, width=2), symbol="o", symbolSize=5,
                             symbolBrush=TALKER_COLOR, symbolPen=None, name="profile")
        self.peaks = pg.ScatterPlotItem(size=14, symbol="t1", brush=pg.mkBrush(255, 255, 255),
                                        pen=pg.mkPen(TALKER_COLOR, width=2))
        pi.addItem(self.peaks)
        self.peak_labels: list[pg.TextItem] = []
        self.query_line = pg.InfiniteLine(pos=1.0, angle=90, movable=True,
                                          pen=pg.mkPen(QUERY_COLOR, width=2),
                                          hoverPen=pg.mkPen(QUERY_COLOR, width=4),
                                          label="listening at {value:.2f} m",
                                          labelOpts={"position": 0.08, "color": QUERY_COLOR,
                                                     "fill": (0, 0, 0, 170)})
        pi.addItem(self.query_line)
        self.query_line.sigDragged.connect(lambda ln: self.distanceDragged.emit(float(ln.value())))
        self.empty_text = pg.TextItem("waiting for the first distance scan\u2026", color=_TEXT, anchor=(0.5, 0.5))
        pi.addItem(self.empty_text)
        self._has_data = False
        self.set_range(d_min, d_max)

    def set_range(self, d_min: float, d_max: float) -> None:
        self._range = (float(d_min), float(d_max))
        self.query_line.setBounds(self._range)
        self.setXRange(*self._range, padding=0.03)
        if not self._has_data:
            self.setYRange(-30, 3)
            self.empty_text.setPos((d_min + d_max) / 2, -14)

    def set_profile(self, distances_m, levels_db, talkers_m) -> None:
        d = np.asarray(distances_m, dtype=float).ravel()
        lv = np.asarray(levels_db, dtype=float).ravel()
        if d.size == 0 or d.size != lv.size:
            return
        if not self._has_data:
            self._has_data = True
            self.getPlotItem().removeItem(self.empty_text)
        self.curve.setData(d, lv)
        px, py = [], []
        for t in talkers_m or []:
            px.append(float(t))
            py.append(float(np.interp(t, d, lv)))
        self.peaks.setData(px, py)
        for item in self.peak_labels:
            self.getPlotItem().removeItem(item)
        self.peak_labels = []
        for x, y in zip(px, py):
            ti = pg.TextItem(f"talker {x:.1f} m", color=TALKER_COLOR,
                             anchor=(1.1, 1.0) if self._label_left(x) else (-0.1, 1.0))
            ti.setPos(x, y)
            self.getPlotItem().addItem(ti)
            self.peak_labels.append(ti)
        lo, hi = float(np.nanmin(lv)), float(np.nanmax(lv))
        if math.isfinite(lo) and math.isfinite(hi):
            self.setYRange(min(lo, hi - 6) - 1, hi + 0.25 * max(6.0, hi - lo) + 1, padding=0)

    def _label_left(self, x: float) -> bool:
        """Whether a talker's label at ``x`` (m) goes left of its marker: away from the query line
        when the line is near (the two labels would meet), else away from the nearer edge."""
        lo_d, hi_d = self._range
        span = hi_d - lo_d
        q = float(self.query_line.value())
        room_left, room_right = x - lo_d > 0.2 * span, hi_d - x > 0.2 * span
        if abs(q - x) < 0.3 * span and room_left and room_right:
            return q > x
        return x > lo_d + 0.7 * span

    def set_query(self, metres: float) -> None:
        """Move the query line to ``metres`` (and the talker labels away from it)."""
        if abs(self.query_line.value() - metres) > 1e-6:
            self.query_line.setValue(metres)  # sigDragged fires only on mouse drags: no loop
        for ti in self.peak_labels:
            left = self._label_left(float(ti.pos().x()))
            ti.setAnchor((1.1, 1.0) if left else (-0.1, 1.0))

    @property
    def has_data(self) -> bool:
        return self._has_data
