"""The window's widgets: where each one sits and which window action it triggers (a part of
:class:`realtime_tse.gui.app.MainWindow`, built by :func:`build_ui`; one function per panel).

The left column holds the Audio box (input, output), the Model box (checkpoint list and its
actions: add a model action there), the Output mix (bypass, dry/wet, volume, meters) and
Recording; the right side the distance control, the radar and the profile; below, the status bar.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QFrame, QGroupBox, QHBoxLayout, QLabel,
                               QLayout, QProgressBar, QPushButton, QSizePolicy, QSlider, QSplitter,
                               QStatusBar, QToolButton, QVBoxLayout, QWidget)

from .devices import DeviceCombo
from .widgets import TALKER_COLOR, DistanceControl, DistanceRadar, LevelMeter, ProfilePlot

__all__ = ["build_ui"]


def build_ui(win) -> None:
    """Build the window's widgets as attributes of ``win`` (a MainWindow) and connect them."""
    central = QWidget()
    outer = QVBoxLayout(central)
    outer.setContentsMargins(8, 6, 8, 4)
    outer.setSpacing(6)
    outer.addWidget(_banner(win))

    body = QHBoxLayout()
    body.setSpacing(8)
    outer.addLayout(body, 1)

    # ---- left column: source, model, mix, levels, record
    left = QVBoxLayout()
    left.setSpacing(6)
    side = QWidget()
    side.setLayout(left)
    side.setFixedWidth(330)
    body.addWidget(side)
    left.addWidget(_audio_box(win))
    left.addWidget(_model_box(win))
    left.addWidget(_mix_box(win))
    left.addWidget(_record_box(win))
    keys = QLabel("<b>Keys</b>: \u2190 \u2192 move the distance 5 cm (Page Up/Down: 50 cm) "
                  "&middot; <b>B</b> bypass &middot; <b>S</b> keep everyone else &middot; <b>R</b> record")
    keys.setWordWrap(True)
    keys.setContentsMargins(4, 4, 4, 0)
    left.addWidget(keys)
    left.addStretch(1)

    # ---- right: distance control on top, radar + profile below
    right = QVBoxLayout()
    right.setSpacing(6)
    body.addLayout(right, 1)
    _distance_side(win, right)
    win.setCentralWidget(central)
    _status_bar(win)

    # ---- hotkeys (window-wide)
    QShortcut(QKeySequence("B"), win, activated=win.bypass_btn.toggle)
    QShortcut(QKeySequence("R"), win, activated=win.toggle_recording)
    QShortcut(QKeySequence("S"), win, activated=win.suppress_btn.toggle)

    win._on_wet(win.wet_slider.value())
    win._on_volume(win.vol_slider.value())
    win.resize(1120, 720)
    # the minimum size is fixed here, not re-derived by the layout each time a text changes (a
    # changed minimum is pushed to the window system; the offscreen platform prints a warning
    # for each, and a window that grows when a label gets longer is not wanted anyway)
    win.layout().setSizeConstraint(QLayout.SetNoConstraint)
    win.setMinimumSize(win.minimumSizeHint())


def _banner(win) -> QFrame:
    """The error / info banner (hidden until a message arrives)."""
    win.banner = QFrame()
    win.banner.setObjectName("banner")
    bl = QHBoxLayout(win.banner)
    bl.setContentsMargins(10, 4, 4, 4)
    win.banner_text = QLabel()
    win.banner_text.setWordWrap(True)
    win.banner_text.setTextInteractionFlags(Qt.TextSelectableByMouse)
    close = QToolButton()
    close.setText("\u2715")
    close.setToolTip("Dismiss")
    close.clicked.connect(win.banner.hide)
    bl.addWidget(win.banner_text, 1)
    bl.addWidget(close)
    win.banner.hide()
    return win.banner


def _audio_box(win) -> QGroupBox:
    """Input (microphone, demo, file) and output device."""
    g_audio = QGroupBox("Audio")
    fa = QFormLayout(g_audio)
    win.source_combo = DeviceCombo(win.refresh_devices)
    win.source_combo.setObjectName("sourceCombo")
    win.source_combo.setToolTip("What the app listens to: a microphone, the shipped demo, or a file (looped)")
    win.output_combo = DeviceCombo(win.refresh_devices)
    win.output_combo.setObjectName("outputCombo")
    win.output_combo.setToolTip("Where the extracted speech is played")
    fa.addRow("Input", win.source_combo)
    fa.addRow("Output", win.output_combo)
    win.vmic_check = QCheckBox("Virtual microphone (for other apps)")
    win.vmic_check.setObjectName("virtualMicCheck")
    win.vmic_check.setToolTip("Also offer the output as a microphone named "
                              "“realtime-tse (extracted voice)”: pick it in a video call or "
                              "recorder (PulseAudio or PipeWire)")
    win.vmic_check.toggled.connect(win._on_virtual_mic)
    fa.addRow("", win.vmic_check)
    return g_audio


def _model_box(win) -> QGroupBox:
    """The checkpoint list, the model's actions (Open\u2026) and what the model is."""
    g_model = QGroupBox("Model")
    vm = QVBoxLayout(g_model)
    row = QHBoxLayout()
    win.model_combo = QComboBox()
    win.model_combo.setObjectName("modelCombo")
    win.model_combo.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
    win.open_model_btn = QPushButton("Open\u2026")
    win.open_model_btn.setToolTip("Open a checkpoint (.safetensors) trained for your own room")
    win.open_model_btn.clicked.connect(win.browse_checkpoint)
    row.addWidget(win.model_combo, 1)
    row.addWidget(win.open_model_btn)
    vm.addLayout(row)
    win.model_info = QLabel("loading the model\u2026")
    win.model_info.setWordWrap(True)
    vm.addWidget(win.model_info)
    win.model_figures = QLabel()  # measured figures and the model card link (readout.show_model)
    win.model_figures.setObjectName("modelFigures")
    win.model_figures.setWordWrap(True)
    win.model_figures.setToolTip("From the checkpoint's provenance: its test evaluation as it "
                                 "was published with the model")
    win.model_figures.linkActivated.connect(lambda _href: win.open_model_card())
    vm.addWidget(win.model_figures)
    return g_model


def _mix_box(win) -> QGroupBox:
    """Bypass, dry/wet, volume and the level meters."""
    g_mix = QGroupBox("Output mix")
    fm = QFormLayout(g_mix)
    win.bypass_btn = QPushButton("Bypass  [B]")
    win.bypass_btn.setObjectName("bypassButton")
    win.bypass_btn.setCheckable(True)
    win.bypass_btn.setToolTip("Hear the unprocessed input (hotkey B)")
    win.bypass_btn.toggled.connect(win._on_bypass)
    win.suppress_btn = QPushButton("Keep everyone else  [S]")
    win.suppress_btn.setObjectName("suppressButton")
    win.suppress_btn.setCheckable(True)
    win.suppress_btn.setToolTip("Remove the talkers at the listening distance and keep everyone "
                                "else (hotkey S)")
    win.suppress_btn.toggled.connect(win._on_mode)
    win.wet_slider, win.wet_label, wrow = _percent_slider(
        100, "0 % = the input as it is, 100 % = only the extracted talker", win._on_wet)
    win.vol_slider, win.vol_label, vrow = _percent_slider(
        200, "Output gain: 100 % = unchanged, up to 200 % (+6 dB)", win._on_volume)
    buttons = QHBoxLayout()
    buttons.addWidget(win.bypass_btn)
    buttons.addWidget(win.suppress_btn)
    fm.addRow(buttons)
    fm.addRow("Dry/wet", wrow)
    fm.addRow("Volume", vrow)
    win.in_meter = LevelMeter("In")
    win.out_meter = LevelMeter("Out")
    fm.addRow(win.in_meter)
    fm.addRow(win.out_meter)
    return g_mix


def _percent_slider(top: int, tip: str, slot) -> tuple[QSlider, QLabel, QHBoxLayout]:
    """A 0..``top`` % slider at 100 % calling ``slot(value)`` when moved, its value label, and the
    row holding both."""
    slider = QSlider(Qt.Horizontal)
    slider.setRange(0, top)
    slider.setValue(100)
    slider.setToolTip(tip)
    label = QLabel()
    label.setMinimumWidth(74)
    slider.valueChanged.connect(slot)
    row = QHBoxLayout()
    row.addWidget(slider, 1)
    row.addWidget(label)
    return slider, label, row


def _record_box(win) -> QGroupBox:
    """Record button, elapsed time, folder button, the file's path."""
    g_rec = QGroupBox("Record the extracted speech")
    vr = QVBoxLayout(g_rec)
    rrow = QHBoxLayout()
    win.record_btn = QPushButton("\u25cf Record  [R]")
    win.record_btn.setObjectName("recordButton")
    win.record_btn.setCheckable(True)
    win.record_btn.setToolTip("Start/stop recording the output to a WAV file (hotkey R)")
    win.record_btn.clicked.connect(win._on_record_clicked)
    win.rec_time = QLabel("")
    win.rec_time.setMinimumWidth(70)
    win.folder_btn = QPushButton("Open folder")
    win.folder_btn.setToolTip("Open the recordings folder")
    win.folder_btn.clicked.connect(win.open_recordings_folder)
    rrow.addWidget(win.record_btn)
    rrow.addWidget(win.rec_time)
    rrow.addStretch(1)
    rrow.addWidget(win.folder_btn)
    vr.addLayout(rrow)
    win.rec_path = QLabel("not recording")
    win.rec_path.setWordWrap(True)
    win.rec_path.setTextInteractionFlags(Qt.TextSelectableByMouse)
    vr.addWidget(win.rec_path)
    return g_rec


def _distance_side(win, right: QVBoxLayout) -> None:
    """The distance control on top, the radar and the profile below, the detected talkers."""
    dist_box = QFrame()
    dist_box.setFrameShape(QFrame.StyledPanel)
    dl = QVBoxLayout(dist_box)
    dl.setContentsMargins(10, 6, 10, 6)
    win.distance = DistanceControl(0.0, 5.0, 1.0)
    win.distance.distanceChanged.connect(win._on_distance)
    dl.addWidget(win.distance)
    hint = QLabel("Drag the slider, use the arrow keys, click a ring or a talker on the radar, or "
                  "drag the orange line in the profile. You hear only the talkers within the "
                  "highlighted band.")
    hint.setWordWrap(True)
    hf = hint.font()
    hf.setPointSizeF(hf.pointSizeF() * 0.9)
    hint.setFont(hf)
    dl.addWidget(hint)
    right.addWidget(dist_box)

    split = QSplitter(Qt.Vertical)
    win.radar = DistanceRadar(5.0)
    win.radar.setObjectName("radar")
    win.radar.distanceClicked.connect(win.distance.set_value)
    win.profile = ProfilePlot(0.0, 5.0)
    win.profile.distanceDragged.connect(win.distance.set_value)
    split.addWidget(win.radar)
    split.addWidget(win.profile)
    split.setStretchFactor(0, 3)
    split.setStretchFactor(1, 2)
    split.setSizes([330, 220])
    split.setChildrenCollapsible(False)
    right.addWidget(split, 1)
    win.talkers_label = QLabel("Detected talkers: \u2014")
    win.talkers_label.setStyleSheet(f"color: {TALKER_COLOR.name()}; font-weight: bold;")
    right.addWidget(win.talkers_label)


def _status_bar(win) -> None:
    """State, compute device, real-time factor, latency, xruns, rates."""
    sb = QStatusBar()
    win.setStatusBar(sb)
    win.st_state = QLabel("starting\u2026")
    win.st_busy = QProgressBar()  # moves while the model loads and the audio opens
    win.st_busy.setRange(0, 0)
    win.st_busy.setTextVisible(False)
    win.st_busy.setFixedSize(90, 12)
    win.st_busy.hide()
    sb.addWidget(win.st_busy)
    win.st_device = QLabel()
    win.st_rtf = QLabel()
    win.st_latency = QLabel()
    win.st_xruns = QLabel()
    win.st_rates = QLabel()
    sb.addWidget(win.st_state, 1)
    for w in (win.st_state, win.st_device, win.st_rtf, win.st_latency, win.st_xruns, win.st_rates):
        # an explicit minimum width replaces the text's: the status text changes every tick and
        # must not make the window wider than the user made it (it is cut when too narrow)
        w.setMinimumWidth(24)
    for w in (win.st_device, win.st_rtf, win.st_latency, win.st_xruns, win.st_rates):
        w.setContentsMargins(6, 0, 6, 0)
        sb.addPermanentWidget(w)
    win.st_device.setToolTip("Where the model runs")
    win.st_rtf.setToolTip("Real-time factor: compute time / audio time (below 1 = real time)")
    win.st_latency.setToolTip(
        "Microphone-to-speaker delay as the audio devices report it: the model's algorithmic "
        "latency (block + frame - hop) + the captured audio's age + the jitter buffer + the "
        "output device's delay (for a file: the algorithmic latency only)")
    win.st_xruns.setToolTip("Audio buffer under/overflows since start")
