"""The calibration dialog's pages (a part of :class:`realtime_tse.gui.calibrate_dialog.CalibrateDialog`,
one function per page): the widgets as attributes of the dialog ``dlg`` and which of its actions
each button triggers.

The set-up page's defaults: the room 5 x 4 x 2.7 m, the microphone at (2.5, 0.6, 0.9) m,
distances 0.5 to 3 m, three 3 s sweeps 1.5 s apart at -12 dBFS, written to
``~/realtime-tse/rooms/my_room``.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QPushButton, QSpinBox, QTableWidget, QVBoxLayout,
                               QWidget)

from .devices import list_device_choices

__all__ = ["setup_page", "measure_page", "result_page", "spin_box", "DEFAULT_OUT", "RATES"]

DEFAULT_OUT = Path.home() / "realtime-tse" / "rooms"
RATES = (48000, 44100, 16000)


def spin_box(lo, hi, value, step=0.1, decimals=2, suffix=" m") -> QDoubleSpinBox:
    """A QDoubleSpinBox over [lo, hi] showing ``value`` with ``decimals`` and ``suffix`` (a unit)."""
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setDecimals(decimals)
    s.setSingleStep(step)
    s.setValue(value)
    s.setSuffix(suffix)
    return s


def setup_page(dlg, devices) -> QWidget:
    """The set-up page: room name, size and microphone (or a room TOML), distances, spots per
    distance, devices (``devices``: ``(inputs, outputs)`` lists of (label, name), None = the
    system's), rate, sweep, the latency check and the output folder; Next starts the measuring."""
    w = QWidget()
    f = QFormLayout(w)
    dlg.name_edit = QLineEdit("my_room")
    dlg.room_size = [spin_box(1.0, 50.0, v) for v in (5.0, 4.0, 2.7)]
    dlg.mic = [spin_box(0.01, 50.0, v) for v in (2.5, 0.6, 0.9)]
    load = QPushButton("Load room.toml\u2026")
    load.clicked.connect(dlg._load_toml)
    row = QHBoxLayout()
    for s in dlg.room_size:
        row.addWidget(s)
    row.addWidget(load)
    f.addRow("Room name", dlg.name_edit)
    f.addRow("Room size x, y, z", row)
    mrow = QHBoxLayout()
    for s in dlg.mic:
        mrow.addWidget(s)
    f.addRow("Microphone x, y, z", mrow)
    dlg.distances_edit = QLineEdit("0.5, 1, 1.5, 2, 2.5, 3")
    dlg.distances_edit.setToolTip("loudspeaker distances from the microphone, in metres")
    f.addRow("Distances (m)", dlg.distances_edit)
    dlg.positions = QSpinBox()
    dlg.positions.setRange(1, 5)
    f.addRow("Spots per distance", dlg.positions)
    if devices is None:
        devices = list_device_choices()
    dlg.input_combo, dlg.output_combo = QComboBox(), QComboBox()
    for combo, items in ((dlg.input_combo, devices[0]), (dlg.output_combo, devices[1])):
        for label, name in items:
            combo.addItem(label, name)
    f.addRow("Microphone (input)", dlg.input_combo)
    f.addRow("Loudspeaker (output)", dlg.output_combo)
    dlg.rate_combo = QComboBox()
    for r in RATES:
        dlg.rate_combo.addItem(f"{r} Hz", r)
    f.addRow("Sample rate", dlg.rate_combo)
    dlg.sweep_s = spin_box(0.5, 30.0, 3.0, 0.5, 1, " s")
    dlg.gap_s = spin_box(0.2, 30.0, 1.5, 0.5, 1, " s")
    dlg.repeats = QSpinBox()
    dlg.repeats.setRange(1, 32)
    dlg.repeats.setValue(3)
    dlg.level_db = spin_box(-60.0, -1.0, -12.0, 1.0, 0, " dBFS")
    srow = QHBoxLayout()
    for label, wdg in (("sweep", dlg.sweep_s), ("gap", dlg.gap_s), ("repeats", dlg.repeats),
                       ("level", dlg.level_db)):
        srow.addWidget(QLabel(label))
        srow.addWidget(wdg)
    f.addRow("Sweeps", srow)
    dlg.latency_check = QCheckBox("first measure the loop latency (loudspeaker at the "
                                   "microphone), to check each distance by its delay")
    dlg.latency_check.setChecked(True)
    f.addRow(dlg.latency_check)
    dlg.out_edit = QLineEdit(str(DEFAULT_OUT / "my_room"))
    browse = QPushButton("Browse\u2026")
    browse.clicked.connect(dlg._browse_out)
    orow = QHBoxLayout()
    orow.addWidget(dlg.out_edit, 1)
    orow.addWidget(browse)
    f.addRow("Write to", orow)
    dlg.setup_msg = QLabel("")
    dlg.setup_msg.setWordWrap(True)
    dlg.setup_msg.setStyleSheet("color: #b00020")
    f.addRow(dlg.setup_msg)
    brow = QHBoxLayout()
    brow.addStretch(1)
    cancel = QPushButton("Cancel")
    cancel.clicked.connect(dlg.reject)
    dlg.next_btn = QPushButton("Next \u2192")
    dlg.next_btn.setDefault(True)
    dlg.next_btn.clicked.connect(dlg.start)
    brow.addWidget(cancel)
    brow.addWidget(dlg.next_btn)
    f.addRow(brow)
    return w

def measure_page(dlg) -> QWidget:
    """The measuring page: the step, the instruction, the status line, the takes' table, Play,
    Close and Finish."""
    w = QWidget()
    v = QVBoxLayout(w)
    dlg.progress_label = QLabel("")
    dlg.instruction = QLabel("")
    dlg.instruction.setWordWrap(True)
    dlg.instruction.setStyleSheet("font-size: 15px; font-weight: bold")
    dlg.status = QLabel("")
    dlg.status.setWordWrap(True)
    dlg.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
    dlg.table = QTableWidget(0, 6)
    dlg.table.setHorizontalHeaderLabels(["take", "distance (m)", "RT60 (s)", "DRR (dB)",
                                          "by delay (m)", "notes"])
    dlg.table.horizontalHeader().setStretchLastSection(True)
    row = QHBoxLayout()
    dlg.play_btn = QPushButton("\u25b6 Play sweep")
    dlg.play_btn.clicked.connect(dlg.play)
    dlg.finish_btn = QPushButton("Finish")
    dlg.finish_btn.setEnabled(False)
    dlg.finish_btn.clicked.connect(dlg.finish)
    stop = QPushButton("Close (keeps finished takes)")
    stop.clicked.connect(dlg.reject)
    row.addWidget(dlg.play_btn)
    row.addStretch(1)
    row.addWidget(stop)
    row.addWidget(dlg.finish_btn)
    for wdg in (dlg.progress_label, dlg.instruction, dlg.status):
        v.addWidget(wdg)
    v.addWidget(dlg.table, 1)
    v.addLayout(row)
    return w

def result_page(dlg) -> QWidget:
    """The result page: the plot and the commands that train on the folder, Close."""
    w = QWidget()
    v = QVBoxLayout(w)
    dlg.plot_label = QLabel("")
    dlg.plot_label.setAlignment(Qt.AlignCenter)
    dlg.result_text = QLabel("")
    dlg.result_text.setWordWrap(True)
    dlg.result_text.setTextInteractionFlags(Qt.TextSelectableByMouse)
    close = QPushButton("Close")
    close.clicked.connect(dlg.accept)
    v.addWidget(dlg.plot_label, 1)
    v.addWidget(dlg.result_text)
    v.addWidget(close, 0, Qt.AlignRight)
    return w
