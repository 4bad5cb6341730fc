"""Model -> Calibrate room...: the room calibration (``realtime-tse calibrate``) as a step-by-step
dialog.

Three pages: the set-up (room size, microphone position, distances, devices, sweep, output folder,
or a room TOML), the measurement (one instruction at a time: "put the loudspeaker N m from the
microphone ...", Play, the level check and the RIR's figures, a table of the takes), and the result
(the plot PNG of :mod:`realtime_tse.calibration.plot` and the commands that train on it).

The measuring runs on a helper thread (a take lasts seconds); results come back through queued Qt
signals. The work is a :class:`realtime_tse.calibration.folder.Session`: takes go to the work folder
beside the output folder, and the folder appears complete at the end, so a dialog closed half way
(or a device that vanished) loses nothing: the same set-up resumes.

The pages' widgets are built by :mod:`.calibrate_pages`; this module: what the dialog does.

``add_calibrate_action(window, menu)`` puts the action in a menu; while the dialog is open the
window's live engine is muted (``engine.volume = 0``), so that the app does not play into the
measurement, and restored afterwards.

The plot is a PNG in a QLabel, not a live pyqtgraph plot (nothing animates here, and see
PLATFORM.md for the PySide6 / pyqtgraph crash to avoid).
"""
from __future__ import annotations

import logging
import threading
import traceback
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QPixmap
from PySide6.QtWidgets import (QDialog, QFileDialog, QMenu, QStackedWidget, QTableWidgetItem,
                               QVBoxLayout)

from ..calibration.folder import RoomSetup, Session, parse_distances, read_room_toml
from ..calibration.measure import CalibrationError, SweepConfig, latency_from, measure_rir
from ..calibration.playrec import DuplexPlayRecord
from ..launch_hint import app_command
from .calibrate_pages import measure_page, result_page, setup_page

__all__ = ["CalibrateDialog", "add_calibrate_action"]

log = logging.getLogger(__name__)


class _Bridge(QObject):
    """Carries a helper thread's result to the Qt thread (queued signals)."""

    done = Signal(object)
    failed = Signal(str, bool)   # message, is a take problem (level, decay) rather than a fault


class CalibrateDialog(QDialog):
    """The calibration dialog (module docstring).

    Args:
        parent: the window. play_record_factory: ``(input_name, output_name, rate) -> play-record
            callable`` (tests pass a simulated room); default: a
            :class:`realtime_tse.calibration.playrec.DuplexPlayRecord`, opened. devices: ``(inputs, outputs)``
            lists of (label, name) (default: :func:`realtime_tse.gui.devices.list_device_choices`).
        ask_open_file, ask_folder: callables for the file dialogs (tests inject them).
    Attributes: ``session``, ``messages`` (every status line shown), ``out_path`` (the finished
        folder), ``plot_label`` (the plot's QLabel).
    """

    def __init__(self, parent=None, *, play_record_factory=None, devices=None, ask_open_file=None,
                 ask_folder=None):
        super().__init__(parent)
        self.setWindowTitle("Calibrate room")
        self.resize(760, 560)
        self._factory = play_record_factory or self._open_duplex
        self._ask_open_file = ask_open_file or (lambda cap, filt: QFileDialog.getOpenFileName(
            self, cap, "", filt)[0])
        self._ask_folder = ask_folder or (lambda cap: QFileDialog.getExistingDirectory(self, cap))
        self.session: Session | None = None
        self.play_record = None
        self.steps: list[tuple[str, float, int]] = []
        self.step = 0
        self.busy = False
        self.messages: list[str] = []
        self.out_path: Path | None = None
        self._extra: dict = {}
        self._rt60_guess: float | None = None
        self._helper: threading.Thread | None = None  # the take or the finish running now
        self._bridge = _Bridge(self)
        self._bridge.done.connect(self._on_done)
        self._bridge.failed.connect(self._on_failed)
        self.pages = QStackedWidget()
        self.pages.addWidget(setup_page(self, devices))
        self.pages.addWidget(measure_page(self))
        self.pages.addWidget(result_page(self))
        lay = QVBoxLayout(self)
        lay.addWidget(self.pages)

    # ------------------------------------------------------------------ set-up
    def _load_toml(self):
        path = self._ask_open_file("Room TOML", "TOML (*.toml)")
        if not path:
            return
        try:
            s = read_room_toml(path)
        except (OSError, ValueError) as e:
            self.setup_msg.setText(str(e))
            return
        self.name_edit.setText(s.name)
        for box, v in zip(self.room_size + self.mic, tuple(s.size_m) + tuple(s.mic_m)):
            box.setValue(v)
        self._extra = dict(s.extra)
        self._rt60_guess = s.rt60_guess_s

    def _browse_out(self):
        d = self._ask_folder("Folder for the calibration")
        if d:
            self.out_edit.setText(str(Path(d) / (self.name_edit.text().strip() or "my_room")))

    def _say(self, text: str, color: str = "") -> None:
        self.messages.append(text)
        self.status.setStyleSheet(f"color: {color}" if color else "")
        self.status.setText(text)

    def start(self) -> bool:
        """Check the set-up, open the audio and go to the measuring page (or say what is wrong on
        the set-up page). Returns whether it went on."""
        try:
            setup = RoomSetup(self.name_edit.text().strip() or "my_room",
                              tuple(s.value() for s in self.room_size),
                              tuple(s.value() for s in self.mic),
                              self._rt60_guess, self._extra)
            distances = parse_distances(self.distances_edit.text())
            cfg = SweepConfig(sample_rate=int(self.rate_combo.currentData()),
                              sweep_s=self.sweep_s.value(), repeats=self.repeats.value(),
                              gap_s=self.gap_s.value(), level_dbfs=self.level_db.value())
            for d in distances:
                setup.check_distance(d)
            if setup.rt60_guess_s and cfg.sweep_s < setup.rt60_guess_s:
                raise ValueError(f"the sweep ({cfg.sweep_s:g} s) is shorter than the room's RT60 "
                                 f"({setup.rt60_guess_s:g} s): make it longer")
            self.play_record = self._factory(self.input_combo.currentData(),
                                             self.output_combo.currentData(), cfg.sample_rate)
            self.session = Session(self.out_edit.text().strip(), setup, cfg, distances,
                                   self.positions.value())
        except Exception as e:  # noqa: BLE001  (bad values, no device, an existing folder)
            self.setup_msg.setText(str(e))
            self.messages.append(str(e))
            self._close_audio()
            return False
        s = self.session
        self.steps = ([("latency", 0.0, 0)] if self.latency_check.isChecked() and s.latency_s is None
                      else []) + [("take", d, p) for d, p in s.pending()]
        self.step = 0
        self.pages.setCurrentIndex(1)
        if s.resumed:
            self._say(f"resuming: {len(s.plan()) - len(s.pending())} of {len(s.plan())} takes were "
                      "measured before")
        self._show_step()
        return True

    # ------------------------------------------------------------------ measuring
    def _show_step(self):
        s = self.session
        if self.step >= len(self.steps):
            self.instruction.setText("All takes measured. Finish writes the folder and the plot.")
            self.play_btn.setEnabled(False)
            self.finish_btn.setEnabled(True)
            return
        kind, d, p = self.steps[self.step]
        self.progress_label.setText(f"step {self.step + 1} of {len(self.steps)}")
        if kind == "latency":
            self.instruction.setText("Put the loudspeaker right at the microphone (touching it), "
                                     "then press Play.")
        else:
            where = (f" (spot {p} of {s.positions}: another place at the same distance)"
                     if s.positions > 1 else "")
            self.instruction.setText(f"Put the loudspeaker {d:g} m from the microphone, at talking "
                                     f"height (about 1.6 m), facing it{where}; keep the volume as "
                                     "it is. Then press Play.")
        self.play_btn.setEnabled(True)

    def play(self) -> None:
        """Measure the current step on a helper thread."""
        if self.busy or self.step >= len(self.steps):
            return
        kind, d, _p = self.steps[self.step]
        s, pr = self.session, self.play_record
        if pr is None:  # the device failed before: open it again
            try:
                pr = self.play_record = self._factory(self.input_combo.currentData(),
                                                      self.output_combo.currentData(),
                                                      s.cfg.sample_rate)
            except Exception as e:  # noqa: BLE001
                self._say(f"cannot open the audio devices: {e}", "#b00020")
                return
        self.busy = True
        self.play_btn.setEnabled(False)
        self._say(f"playing {s.cfg.repeats} sweep(s), {s.cfg.take_s:.0f} s \u2026")
        lat = s.latency_s if kind == "take" else None

        def work():
            try:
                result = ("done", measure_rir(pr, s.cfg, d, lat))
            except CalibrationError as e:
                result = ("failed", str(e), True)
            except Exception as e:  # noqa: BLE001  (AudioDeviceError, ...)
                traceback.print_exc()
                result = ("failed", f"{type(e).__name__}: {e}", False)
            self._report(*result)

        self._start_helper(work, "tse-calibrate")

    def _on_done(self, m) -> None:
        self.busy = False
        if isinstance(m, Path):  # finish() ended
            self._show_result(m)
            return
        kind, d, p = self.steps[self.step]
        s = self.session
        if kind == "latency":
            s.set_latency(latency_from(m), "measured")
            self._add_row("latency", "0", f"{s.latency_s * 1000:.1f} ms", "", "", "")
        else:
            s.save_take(m, p)
            self._add_row(f"d{d:g} p{p}", f"{d:g}", f"{m.rt60_s:.2f}", f"{m.drr_db:+.1f}",
                          "" if m.path_m is None else f"{m.path_m:.2f}", "; ".join(m.warnings))
        lv = m.levels
        self._say(f"level: peak {lv.peak_dbfs:.1f} dBFS, sweep {lv.sweep_dbfs:.1f} dBFS, noise "
                  f"floor {lv.noise_dbfs:.1f} dBFS" + ("".join(f"\n\u26a0 {w}" for w in m.warnings)),
                  "#8a5a00" if m.warnings else "")
        self.step += 1
        self._show_step()

    def _on_failed(self, message: str, take_problem: bool) -> None:
        self.busy = False
        if take_problem:
            self._say(f"{message}\nFix it, then press Play to measure again.", "#b00020")
        else:
            self._close_audio()
            self._say(f"{message}\nFinished takes are kept. Reconnect the device and press Play "
                      "(or close: the same set-up resumes later).", "#b00020")
        self.play_btn.setEnabled(self.step < len(self.steps))
        self.finish_btn.setEnabled(self.step >= len(self.steps))

    def _add_row(self, *cells) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        for c, text in enumerate(cells):
            self.table.setItem(r, c, QTableWidgetItem(str(text)))

    # ------------------------------------------------------------------ result
    def finish(self) -> None:
        """Write the folder and the plot (helper thread), then show the result page."""
        if self.busy or self.session is None:
            return
        self.busy = True
        self.finish_btn.setEnabled(False)
        self._say("writing the folder: figures, the simulated room, the plot \u2026")
        s = self.session

        def work():
            try:
                result = ("done", s.finish())
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                result = ("failed", f"{type(e).__name__}: {e}", False)
            self._report(*result)

        self._start_helper(work, "tse-calibrate-finish")

    def _show_result(self, out: Path) -> None:
        import json
        self.out_path = out
        self._close_audio()
        pix = QPixmap(str(out / "plot.png"))
        self.plot_label.setPixmap(pix.scaledToWidth(min(pix.width(), 740), Qt.SmoothTransformation)
                                  if not pix.isNull() else pix)
        rep = json.loads((out / "calibration.json").read_text())
        train = app_command(name="tse-train")
        self.result_text.setText(
            f"Wrote {out}: {len(rep['takes'])} RIRs (rirs.csv), room.toml (RT60 "
            f"{rep['rt60_median_s']:.2f} s), plot.png.\nNext, in a terminal:\n"
            f"  {train} {out}/room.toml --speech SPEECH_DIR --out runs/room\n"
            f"  {train} --measured {out}/rirs.csv --init runs/room/best.safetensors "
            "--speech SPEECH_DIR --out runs/room-ft")
        self.pages.setCurrentIndex(2)

    # ------------------------------------------------------------------ audio
    def _open_duplex(self, input_name, output_name, rate):
        return DuplexPlayRecord(input_name, output_name, rate).open()

    def _close_audio(self) -> None:
        pr, self.play_record = self.play_record, None
        close = getattr(pr, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001
                traceback.print_exc()

    # ------------------------------------------------------------------ helper thread
    def _start_helper(self, work, name: str) -> None:
        """Run ``work`` (a take or the finish; it ends with :meth:`_report`) on a helper thread,
        one at a time (``busy`` guards the callers)."""
        t = threading.Thread(target=work, name=name, daemon=True)
        self._helper = t
        t.start()

    def _report(self, kind: str, *args) -> None:
        """The helper thread's result to the Qt thread (queued signal; never raises: a dialog
        destroyed after :meth:`wait_helper` gave up has no bridge left)."""
        try:
            (self._bridge.done if kind == "done" else self._bridge.failed).emit(*args)
        except RuntimeError:  # the C++ side of the bridge is gone
            pass

    def wait_helper(self, timeout_s: float = 15.0) -> bool:
        """Wait for the helper thread (a take or the finish) to end: the dialog must not be
        destroyed while that thread still reports into it. True when none runs any more."""
        t = self._helper
        if t is None or t is threading.current_thread():
            return True
        t.join(timeout_s)
        if t.is_alive():
            return False
        self._helper = None
        return True

    def done(self, result: int) -> None:  # accept / reject / close: release the devices
        self._close_audio()  # a take in progress ends at once on the closed stream
        if not self.wait_helper():
            log.warning("calibration dialog closed while its measuring thread still runs (15 s)")
        super().done(result)


def add_calibrate_action(window, menu: QMenu | None = None, **dialog_kwargs) -> QAction:
    """Add "Calibrate room..." to ``menu`` (default: the window's "Model" menu in its menu bar,
    created when missing). Triggering it mutes the window's live engine (``window.engine.volume``,
    when there is one), opens :class:`CalibrateDialog` window-modal and restores the volume when the
    dialog closes. Returns the action; the open dialog is ``window.calibrate_dialog``."""
    if menu is None:
        bar = window.menuBar()
        menu = next((a.menu() for a in bar.actions()
                     if a.menu() is not None and a.text().replace("&", "") == "Model"), None)
        if menu is None:
            menu = bar.addMenu("&Model")
    action = QAction("Calibrate room\u2026", window)
    action.setToolTip("Measure your room's RIRs at known distances, to fine-tune a model on them")

    def open_dialog():
        eng = getattr(window, "engine", None)
        before = getattr(eng, "volume", None)
        if before is not None:
            eng.volume = 0.0
        dlg = CalibrateDialog(window, **dialog_kwargs)
        window.calibrate_dialog = dlg

        def restore(_result):
            if before is not None and getattr(window, "engine", None) is eng:
                eng.volume = before

        dlg.finished.connect(restore)
        dlg.open()

    action.triggered.connect(open_dialog)
    menu.addAction(action)
    return action
