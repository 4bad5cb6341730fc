"""The desktop app's window: pick a source, a model and a distance, and hear that talker live.

:class:`MainWindow` is the window, usable on its own (tests build it with a temporary QSettings
file); :func:`realtime_tse.gui.launch.main` starts the app with it (``realtime-tse`` with no
arguments).

Threading: the Qt thread never runs the model. Loading a checkpoint and (re)starting the
:class:`realtime_tse.live.engine.LiveEngine` happen on a helper thread (:class:`EngineHost`), which hands
the running engine back through a queued Qt signal. A 25 Hz QTimer pulls levels, stats, the latest
distance scan and errors from the engine; the sliders write ``distance_m``, ``bypass``, ``wet`` and
``volume`` straight into it (plain attribute writes, atomic in CPython).

Errors (device lost, bad checkpoint, unreadable file) appear in an inline banner at the top of the
window, never in a modal dialog: the app stays usable, and a recording in progress is stopped and
kept. ``MainWindow.messages`` keeps every message shown, for tests and for the log.

Settings (QSettings): window geometry, source, output device, distance, model path, volume, dry/wet,
the live settings (:class:`realtime_tse.live_config.LiveConfig` as JSON under "live").

The window's parts, each in its own module: :mod:`.layout` (the widgets, one function per panel,
and which action each triggers), :mod:`.window_settings` (what it remembers), :mod:`.readout` (what
it shows of the engine: status bar, meters, scan, model), :mod:`.devices` (the device lists),
:mod:`.engine_host` (the engine off the Qt thread), :mod:`.recording` (the Record button's
actions); this module: the window's state and actions.
"""
from __future__ import annotations

import math
import sys
import traceback
from pathlib import Path

# PySide6 must be imported before pyqtgraph so pyqtgraph picks the PySide6 binding
from PySide6.QtCore import QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMainWindow

from ..live_config import LiveConfig
from .devices import list_device_choices
from .engine_host import EngineHost, describe_room, source_text
from .calibrate_dialog import add_calibrate_action
from .layout import build_ui
from .readout import show_model, show_scan, show_stats
from .recording import open_recordings_folder, show_recording, start_recording, stop_recording
from .window_settings import (DEMO_INPUT, SETTINGS_APP, SETTINGS_ORG, SHIPPED_MODEL,
                              restore_settings, save_settings)

__all__ = ["MainWindow", "EngineHost", "DEMO_INPUT", "SHIPPED_MODEL", "describe_room"]

UI_HZ = 25


# --------------------------------------------------------------------------- the window
class MainWindow(QMainWindow):
    """The app window.

    Args:
        settings: a QSettings (tests pass one on a temporary INI file); default: the user's.
        model_path: checkpoint to use instead of the remembered / shipped one.
        source: ("demo", None) | ("file", path) | ("device", id) instead of the remembered one.
        output: output device id, or None for no playback; "remembered" keeps the saved choice.
        block_ms: model block (ms) instead of the remembered live settings' (LiveConfig, kept in
            the settings under "live").
        autostart: start the engine right away.
        ask_open_file: callable(caption, filter) -> path or "" (tests inject it; default QFileDialog).
        open_url: callable(QUrl) (tests inject it; default QDesktopServices.openUrl).
        recordings_dir: where recordings go (default: the recorder's default folder).
        distance: initial query distance in metres instead of the remembered one.
    """

    def __init__(self, settings: QSettings | None = None, *, model_path=None, source=None,
                 output="remembered", device="auto", block_ms=None, autostart=True,
                 ask_open_file=None, open_url=None, recordings_dir=None, distance=None):
        super().__init__()
        self.settings = settings if settings is not None else QSettings(SETTINGS_ORG, SETTINGS_APP)
        self.ask_open_file = ask_open_file or self._qt_open_file
        self.open_url = open_url or QDesktopServices.openUrl
        self.recordings_dir = Path(recordings_dir) if recordings_dir else None
        self.compute_device = device
        # the live settings, kept between launches (QSettings "live", JSON); block_ms overrides
        self.bad_settings: list[str] = []  # saved values that could not be used (one note)
        self.live_config = LiveConfig.from_json(self.settings.value("live"), self.bad_settings)
        if block_ms is not None:
            self.live_config = LiveConfig.build(self.live_config, block_ms=float(block_ms))
        self.messages: list[tuple[str, str]] = []
        self.engine = None
        self.model = None
        self.recorder = None
        self.last_recording: Path | None = None
        self._last_scan_count = -1
        self._last_notice: str | None = None
        self._reported_error = None
        self._closing = False
        self.host = EngineHost(self)
        self.host.progress.connect(self._show_progress)
        self.host.ready.connect(self._on_engine_ready)
        self.host.failed.connect(self._on_engine_failed)
        self.host.engine_error.connect(self._on_engine_error)

        self.setWindowTitle("realtime-tse \u2014 listen by distance")
        build_ui(self)
        add_calibrate_action(self)  # menu bar: Model -> Calibrate room...
        restore_settings(self, model_path, source, output, distance)
        self.vmic_check.blockSignals(True)
        self.vmic_check.setChecked(bool(self.live_config.virtual_mic))
        self.vmic_check.blockSignals(False)
        self.timer = QTimer(self)
        self.timer.setInterval(int(1000 / UI_HZ))
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        if autostart:  # from the event loop: the window is shown and painted first
            QTimer.singleShot(0, self.restart_engine)

    # ----------------------------------------------------------------- settings
    def save_settings(self):
        """Remember the window's choices (QSettings; see :mod:`.window_settings`)."""
        save_settings(self)

    # ----------------------------------------------------------------- choices
    def current_source(self):
        d = self.source_combo.currentData()
        return tuple(d) if d else ("demo", str(DEMO_INPUT))

    def current_output(self):
        d = self.output_combo.currentData()
        return None if not d or d[0] == "none" else d[1]  # None = no playback

    def current_model_path(self):
        return self.model_combo.currentData()

    def source_index(self, kind, value=None) -> int:
        """Index of a source entry ("device", "demo", "file" with its value; "browse"), or -1.
        (QComboBox.findData compares Python tuples by identity, so this compares in Python.)"""
        for k in range(self.source_combo.count()):
            d = self.source_combo.itemData(k)
            if d and d[0] == kind and (kind in ("demo", "browse") or str(d[1]) == str(value)):
                return k
        return -1

    def _select_source(self, source):
        kind, value = source
        k = self.source_index(kind, value)
        if k >= 0:
            self.source_combo.setCurrentIndex(k)
            return
        if kind == "file":
            self._add_file_item(value)

    def _add_file_item(self, path):
        path = str(path)
        for k in range(self.source_combo.count()):
            if self.source_combo.itemData(k) == ("file", path):
                self.source_combo.setCurrentIndex(k)
                return
        pos = self.source_combo.count() - 1  # before "Audio file..."
        self.source_combo.insertItem(pos, f"File: {Path(path).name}", ("file", path))
        self.source_combo.setItemData(pos, path, Qt.ToolTipRole)
        self.source_combo.setCurrentIndex(pos)

    def _add_model_item(self, path):
        path = str(path)
        i = self.model_combo.findData(path)
        if i < 0:
            self.model_combo.addItem(f"Own: {Path(path).name}", path)
            i = self.model_combo.count() - 1
            self.model_combo.setItemData(i, path, Qt.ToolTipRole)
        self.model_combo.setCurrentIndex(i)

    def _on_source_activated(self, _index):
        kind, _ = self.current_source()
        if kind == "browse":
            path = self.ask_open_file("Open an audio file (played in a loop)",
                                      "Audio (*.wav *.flac *.ogg *.mp3 *.aiff);;All files (*)")
            if path:
                self._add_file_item(path)
            else:
                self._select_source(self._active_source or ("demo", str(DEMO_INPUT)))
                return
        self.restart_engine()

    def open_audio_file(self, path) -> None:
        """Use an audio file as the input (looped); what the "Audio file..." entry does."""
        self._add_file_item(path)
        self.restart_engine()

    def browse_checkpoint(self):
        path = self.ask_open_file("Open a model checkpoint", "Checkpoints (*.safetensors);;All files (*)")
        if path:
            self.open_checkpoint(path)

    def open_checkpoint(self, path) -> None:
        """Load a user's checkpoint; on failure the error shows and the current model keeps running."""
        self._add_model_item(path)
        self.restart_engine()

    def restart_engine(self):
        """Apply the current source / output / model choices (the work runs off the Qt thread;
        the status bar says what it is doing while it runs)."""
        if self._closing:
            return
        if self.recorder is not None:
            self.stop_recording(reason="the audio setup changed")
        self._active_source = self.current_source()
        self._show_progress("starting\u2026")
        self.host.request(model_path=self.current_model_path(), source=self.current_source(),
                          output=self.current_output(), params=self._engine_params(),
                          device=self.compute_device, live=self.live_config)

    _active_source = None
    _running_source = ("demo", None)

    def _engine_params(self):
        return dict(distance_m=float(self.distance.value()), bypass=self.bypass_btn.isChecked(),
                    mode="suppress" if self.suppress_btn.isChecked() else "extract",
                    wet=self.wet_slider.value() / 100.0, volume=self.vol_slider.value() / 100.0)

    # ----------------------------------------------------------------- engine events
    def _show_progress(self, text: str | None) -> None:
        """What the engine host is doing (``text``, in words) in the status bar, with the moving
        bar; None: done (the bar hides, the caller sets the state)."""
        if text is None:
            self.st_busy.hide()
            return
        self.st_state.setText(text)
        self.st_busy.show()
        if self.model is None:  # the first model: a short line (the status bar has the detail)
            loading = text.startswith(("loading", "starting\u2026"))
            self.model_info.setText("Loading the model\u2026" if loading
                                    else "Model loaded, starting the audio\u2026")

    def _on_engine_ready(self, engine, model):
        self._show_progress(None)
        if self._closing:
            return
        self.engine = engine
        self._reported_error = None
        self._last_scan_count = -1
        if model is not self.model:
            self.model = model
            self._show_model(model)
        for k, v in self._engine_params().items():
            setattr(engine, k, v)
        self.profile.curve.setData([], [])
        self.radar.clear()
        self._running_source = self.current_source()
        self.st_state.setText(f"running: {source_text(self._running_source)}")

    def _on_engine_failed(self, kind, message):
        if kind == "virtual_mic":   # the audio goes on without it: say why, untick the box
            self.show_message(message)
            self.live_config = LiveConfig.build(self.live_config, virtual_mic=None)
            self.vmic_check.blockSignals(True)
            self.vmic_check.setChecked(False)
            self.vmic_check.blockSignals(False)
            return
        self._show_progress(None)
        if kind == "model":
            # the file did not load: fall back to the model that runs (if any) in the combo box
            self.show_message(message + (" \u2014 still using the previous model." if self.engine else ""))
            if self.engine is not None:
                self.st_state.setText(f"running: {source_text(self._running_source)}")
            cur = self.host.model_key[0] if self.host.model_key else None
            i = self.model_combo.findData(cur) if cur else 0
            self.model_combo.setCurrentIndex(max(0, i))
            if self.engine is None:
                self.st_state.setText("stopped: no model (open a checkpoint)")
                if self.model is None:
                    self.model_info.setText("No model loaded: open a checkpoint.")
        elif kind == "source":
            self.show_message(message + (" \u2014 still playing the previous input." if self.engine else ""))
            if self.engine is not None:
                self._select_source(self._running_source)
                self.st_state.setText(f"running: {source_text(self._running_source)}")
            else:
                self.st_state.setText("stopped")
        else:
            self.engine = None
            if self.host.model is not None and self.host.model is not self.model:
                self.model = self.host.model
                self._show_model(self.model)
            self.show_message(message + " Choose another input or output on the left.")
            self.st_state.setText("stopped (audio error)")

    def refresh_devices(self, fresh: bool = True) -> tuple[int, int]:
        """Rebuild the device entries of the Input and Output lists from a fresh device list
        (``list_device_choices(fresh)``), keeping the demo/file entries and the current choices (by
        device name; a chosen device that vanished stays listed, marked "(not found)").
        Returns (inputs, outputs) listed."""
        ins, outs = list_device_choices(fresh=fresh)
        cur_src, cur_out = self.current_source(), self.output_combo.currentData()
        self.source_combo.set_devices(ins, "\U0001f3a4", cur_src, at=0)
        self.output_combo.set_devices(outs, "\U0001f50a", cur_out, at=1)  # output: after "None"
        self._inputs, self._outputs = ins, outs
        return len(ins), len(outs)

    def _on_engine_error(self, engine, message):
        """An engine reported an error: show it, keep the recording, refresh the device lists (a
        device may have gone or come). Errors of an engine that is no longer the current one (e.g.
        stopped by a restart) are ignored."""
        if self._closing or engine is None or engine is not self.engine:
            return
        try:
            self.refresh_devices()
        except Exception:  # noqa: BLE001
            traceback.print_exc()
        if self._reported_error == message:
            return
        self._reported_error = message
        saved = ""
        if self.recorder is not None:
            p = self.stop_recording(reason=None)
            saved = f" The recording so far is kept: {p}." if p else ""
        self.show_message(f"Audio stopped: {message.rstrip('.')}.{saved} "
                          "Pick an input or output on the left to restart.")
        self.st_state.setText("stopped (audio error)")
        self.engine = None  # its stream is gone; the host stops it on the next restart

    def _show_model(self, model):
        show_model(self, model, self._saved_distance)
        self._saved_distance = None

    # ----------------------------------------------------------------- user actions
    def _on_distance(self, d):
        eng = self.engine
        if eng is not None:
            try:
                eng.distance_m = float(d)
            except ValueError:  # outside the model's range (the slider's range follows the model)
                pass
        self.radar.set_query(d)
        self.profile.set_query(d)

    def _on_bypass(self, on):
        eng = self.engine
        if eng is not None:
            eng.bypass = bool(on)
        self.bypass_btn.setText("BYPASSED  [B]" if on else "Bypass  [B]")
        self.bypass_btn.setStyleSheet("background: #b8860b; color: white; font-weight: bold;" if on else "")

    def _on_mode(self, on):
        """Keep everyone else (suppress) or the talkers at the distance (extract): from the next
        block on; a running recording notes the change in its sidecar."""
        eng = self.engine
        if eng is not None:
            eng.mode = "suppress" if on else "extract"
        self.suppress_btn.setStyleSheet("background: #4a6fa5; color: white; font-weight: bold;" if on else "")

    def _on_virtual_mic(self, on):
        """Offer the output as a virtual microphone (or stop): the audio restarts with it."""
        from realtime_tse.audio.virtual_mic import DEFAULT_NAME  # noqa: PLC0415
        want = DEFAULT_NAME if on else None
        if self.live_config.virtual_mic == want:
            return
        self.live_config = LiveConfig.build(self.live_config, virtual_mic=want)
        if not self._closing and self.engine is not None:
            self.restart_engine()

    def _on_wet(self, v):
        self.wet_label.setText(f"{v:3d} % wet")
        eng = self.engine
        if eng is not None:
            eng.wet = v / 100.0

    def _on_volume(self, v):
        db = 20 * math.log10(v / 100.0) if v > 0 else -math.inf
        self.vol_label.setText(f"{v:3d} %" + (f" ({db:+.0f} dB)" if v > 0 else " (mute)"))
        eng = self.engine
        if eng is not None:
            eng.volume = v / 100.0

    def toggle_recording(self):
        """Start recording, or stop the recording in progress (the Record button, key R)."""
        if self.recorder is None:
            self.start_recording()
        else:
            self.stop_recording()

    def _on_record_clicked(self, _checked):
        self.toggle_recording()

    def start_recording(self):
        """Record the engine's output (see :func:`.recording.start_recording`)."""
        return start_recording(self)

    def stop_recording(self, reason: str | None = "") -> Path | None:
        """Stop the recording in progress (see :func:`.recording.stop_recording`)."""
        return stop_recording(self, reason)

    def open_model_card(self) -> None:
        """Open the model card (``docs/model-card.md``) in the desktop's viewer; when this
        installation has none, say where it is published."""
        from ..model_card import MODEL_CARD, model_card_path  # noqa: PLC0415
        p = model_card_path()
        if p.is_file():
            self.open_url(QUrl.fromLocalFile(str(p)))
        else:
            self.show_message(f"The model card is not in this installation: see {MODEL_CARD} in "
                              "the realtime-tse repository.", level="info")

    def open_recordings_folder(self):
        """Open the folder of the recordings (see :func:`.recording.open_recordings_folder`)."""
        open_recordings_folder(self)

    # ----------------------------------------------------------------- messages
    def show_message(self, text: str, level: str = "error") -> None:
        """Show ``text`` in the banner (non-modal). level: "error" or "info"."""
        self.messages.append((level, text))
        print(f"realtime-tse [{level}]: {text}", file=sys.stderr)
        style = ("background: #5c1d1d; color: #ffe4e1; border: 1px solid #c0392b; border-radius: 4px;"
                 if level == "error" else
                 "background: #1d3b5c; color: #e1efff; border: 1px solid #2e86c1; border-radius: 4px;")
        self.banner.setStyleSheet(f"#banner {{{style}}} QLabel {{color: inherit;}}")
        self.banner_text.setText(("\u26a0 " if level == "error" else "\u2139 ") + text)
        self.banner.show()

    @staticmethod
    def _qt_open_file(caption, filt):
        path, _ = QFileDialog.getOpenFileName(None, caption, str(Path.home()), filt)
        return path

    # ----------------------------------------------------------------- the UI timer
    def _tick(self):
        eng = self.engine
        if eng is None:
            self.in_meter.set_level(None)
            self.out_meter.set_level(None)
            return
        st = eng.stats()  # realtime_tse.live.stats.LiveStats
        if st.error:
            self._on_engine_error(eng, str(st.error))
        if st.notice and st.notice != self._last_notice:  # e.g. NaN input: said once, not per tick
            self._last_notice = st.notice
            self.show_message(st.notice, level="info")
        show_stats(self, st)  # meters and status bar
        if st.scan_count != self._last_scan_count:
            scan = eng.latest_scan
            if scan is not None:
                self._last_scan_count = st.scan_count
                show_scan(self, scan)  # profile, radar, detected talkers
        show_recording(self)  # its time, or why it stopped by itself

    # ----------------------------------------------------------------- shutdown
    def shutdown(self):
        """Stop recording (keeping the file) and the engine; save settings. Idempotent."""
        if self._closing:
            return
        self._closing = True
        self.timer.stop()
        try:
            self.save_settings()
        except Exception:
            traceback.print_exc()
        if self.recorder is not None:
            self.stop_recording(reason=None)
        self.host.wait(15.0)
        self.engine = None
        self.host.stop_engine()

    def showEvent(self, ev):  # noqa: N802
        super().showEvent(ev)
        if not getattr(self, "_focused_once", False):
            self._focused_once = True
            self.distance.slider.setFocus()  # arrow keys move the distance right away

    def closeEvent(self, ev):  # noqa: N802
        self.shutdown()
        super().closeEvent(ev)
