"""What the window remembers between launches (QSettings; a part of
:class:`realtime_tse.gui.app.MainWindow`): geometry, source, output, model, distance, volume,
dry/wet and the live settings (:class:`realtime_tse.live_config.LiveConfig` as JSON under
"live"). Read once at start (:func:`restore_settings`), written at shutdown (:func:`save_settings`).

A value the window cannot use (not a number, NaN, out of range: a hand-edited or damaged settings
file) falls back to its default, and one note in the status bar and the log names the keys and the
file; the window always opens.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

from ..paths import demo_input_path, shipped_model_path
from .devices import list_device_choices

__all__ = ["restore_settings", "save_settings", "settings_number", "DEMO_INPUT", "SHIPPED_MODEL", "SETTINGS_ORG",
           "SETTINGS_APP"]

SETTINGS_ORG = "realtime-tse"  # the user's QSettings: QSettings(SETTINGS_ORG, SETTINGS_APP)
SETTINGS_APP = "realtime-tse"
# the fixed entries of the lists (repository assets/ or the installed package's copy)
DEMO_INPUT = demo_input_path()
SHIPPED_MODEL = shipped_model_path()

log = logging.getLogger(__name__)


def settings_number(s, key: str, default: float, lo: float, hi: float, bad: list) -> float:
    """The number under ``key`` in QSettings ``s`` when it is finite and within [lo, hi]; else
    ``default``, and ``key`` is appended to ``bad`` (a missing key is not bad)."""
    raw = s.value(key, None)
    if raw is None:
        return default
    try:
        v = float(raw)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and lo <= v <= hi):
        bad.append(f"{key}={raw}")
        return default
    return v


def restore_settings(win, model_path, source, output, distance=None) -> None:
    """Fill the window's lists (devices, demo, files, models) and select what was remembered,
    unless ``model_path`` / ``source`` / ``output`` / ``distance`` say otherwise (see
    :class:`realtime_tse.gui.app.MainWindow`)."""
    s = win.settings
    geo = s.value("geometry")
    if geo is not None:
        win.restoreGeometry(geo)
    # inputs / outputs
    win._inputs, win._outputs = list_device_choices()
    win.source_combo.blockSignals(True)
    for label, idx in win._inputs:
        win.source_combo.addItem(f"\U0001f3a4 {label}", ("device", idx))
    if DEMO_INPUT.is_file():
        win.source_combo.addItem("Demo: two talkers (1 m, 3 m)", ("demo", str(DEMO_INPUT)))
    win.source_combo.addItem("Audio file\u2026", ("browse", None))
    win.source_combo.blockSignals(False)
    if source is None:
        kind = s.value("source/kind", "")
        value = s.value("source/value", "")
        if kind == "file" and value and Path(value).is_file():
            source = ("file", value)
        elif kind == "device" and any(str(i) == str(value) or lab == value for lab, i in win._inputs):
            source = ("device", next(i for lab, i in win._inputs if str(i) == str(value) or lab == value))
        elif kind == "demo":
            source = ("demo", str(DEMO_INPUT))
        elif win._inputs:
            source = ("device", win._inputs[0][1])
        else:
            source = ("demo", str(DEMO_INPUT))  # no microphone: a first launch plays the demo
    if source[0] == "demo" and not source[1]:
        source = ("demo", str(DEMO_INPUT))
    win._select_source(source)
    win.source_combo.activated.connect(win._on_source_activated)

    win.output_combo.addItem("None (no playback)", ("none", None))
    for label, idx in win._outputs:
        win.output_combo.addItem(f"\U0001f50a {label}", ("device", idx))
    if output == "remembered":
        saved = s.value("output", None)
        i = win.output_combo.findText(str(saved)) if saved is not None else -1
        i = i if i >= 0 else (1 if win._outputs else 0)
    else:
        i = 0
        for k in range(win.output_combo.count()):
            d = win.output_combo.itemData(k)
            if output is not None and d[0] == "device" and str(d[1]) == str(output):
                i = k
    win.output_combo.setCurrentIndex(i)
    win.output_combo.activated.connect(lambda _i: win.restart_engine())

    # model
    win.model_combo.blockSignals(True)
    win.model_combo.addItem(f"Shipped: {SHIPPED_MODEL.stem}" if SHIPPED_MODEL.is_file()
                             else "Shipped model (missing)", None)
    win.model_combo.blockSignals(False)
    mp = model_path if model_path is not None else (s.value("model_path", "") or None)
    if mp and Path(mp).is_file():
        win._add_model_item(mp)
    win.model_combo.activated.connect(lambda _i: win.restart_engine())

    # mix + distance (a value the window cannot use falls back to the default, with one note)
    bad = list(getattr(win, "bad_settings", []))
    vol_top = win.vol_slider.maximum() / 100.0
    win.vol_slider.setValue(int(round(settings_number(s, "volume", 1.0, 0.0, vol_top, bad) * 100)))
    win.wet_slider.setValue(int(round(settings_number(s, "wet", 1.0, 0.0, 1.0, bad) * 100)))
    saved_d = settings_number(s, "distance", 1.0, 0.0, 100.0, bad)
    win._saved_distance = float(distance) if distance is not None else saved_d
    win.distance.set_value(win._saved_distance)
    if bad:
        note = (f"Some saved settings could not be used and were reset to their defaults "
                f"({', '.join(bad)}) in {s.fileName()}.")
        log.warning(note)
        win.messages.append(("info", note))
        win.statusBar().showMessage(note, 30000)


def save_settings(win) -> None:
    """Remember the window's choices (written at shutdown)."""
    s = win.settings
    s.setValue("geometry", win.saveGeometry())
    kind, value = win.current_source()
    s.setValue("source/kind", kind)
    if kind == "device":
        label = next((lab for lab, i in win._inputs if i == value), str(value))
        s.setValue("source/value", label)
    else:
        s.setValue("source/value", str(value or ""))
    s.setValue("output", win.output_combo.currentText())
    s.setValue("distance", float(win.distance.value()))
    s.setValue("model_path", win.current_model_path() or "")
    s.setValue("volume", win.vol_slider.value() / 100.0)
    s.setValue("wet", win.wet_slider.value() / 100.0)
    s.setValue("live", win.live_config.to_json())
    s.sync()
