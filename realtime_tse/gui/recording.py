"""The window's recording (a part of :class:`realtime_tse.gui.app.MainWindow`): the Record button
starts and stops the engine's recording, the panel shows its time and file, a recording that stops
by itself (disk full, ...) is said, and "Open folder" shows where the recordings are.

Each function takes the window ``win``; the engine does the recording
(:meth:`realtime_tse.live.engine.LiveEngine.start_recording`), so the Qt thread never writes audio.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl

__all__ = ["start_recording", "stop_recording", "show_recording", "open_recordings_folder"]


def start_recording(win):
    """Start recording the engine's output: into ``win.recordings_dir`` when set (a time-stamped
    name, :func:`realtime_tse.live.recording_paths.recording_path`), else the engine's default folder.
    Returns the :class:`realtime_tse.live.recorder.Recorder` (also ``win.recorder``), or None when
    no engine runs or the recording cannot start (the banner says why; the button stays off)."""
    eng = win.engine
    if eng is None:
        win.show_message("Nothing to record: the audio engine is not running.")
        win.record_btn.setChecked(False)
        return None
    path = None
    if win.recordings_dir is not None:
        from realtime_tse.live.recording_paths import recording_path  # noqa: PLC0415
        path = recording_path(win.recordings_dir)
    try:
        win.recorder = eng.start_recording(path)
    except Exception as e:
        win.recorder = None
        win.record_btn.setChecked(False)
        win.show_message(f"Could not start recording: {e}")
        return None
    win.record_btn.setChecked(True)
    win.record_btn.setText("\u25a0 Stop  [R]")
    win.record_btn.setStyleSheet("background: #c0392b; color: white; font-weight: bold;")
    win.rec_path.setText(f"recording to {win.recorder.path}")
    return win.recorder


def stop_recording(win, reason: str | None = "") -> Path | None:
    """Stop the recording in progress; the file and its sidecar are kept. ``reason`` (words), when
    given, is said in the banner as an info. Returns the file's path, or None when nothing was
    recording. A problem closing the file is said in the banner, never raised."""
    rec, win.recorder = win.recorder, None
    win.record_btn.setChecked(False)
    win.record_btn.setText("\u25cf Record  [R]")
    win.record_btn.setStyleSheet("")
    if rec is None:
        return None
    path = Path(rec.path)
    eng = win.engine or win.host.engine
    try:
        if eng is not None:
            eng.stop_recording()
    except Exception as e:
        win.show_message(f"Problem closing the recording {path}: {e}")
    win.last_recording = path
    win.rec_time.setText(f"{getattr(rec, 'elapsed_s', 0.0):.1f} s")
    win.rec_path.setText(f"saved {path}")
    if reason:
        win.show_message(f"Recording stopped because {reason}; saved {path}.", level="info")
    return path


def show_recording(win) -> None:
    """Each UI tick: the recording's time (mm:ss.s); when a write failed and the recording stopped
    by itself, leave recording mode and say why and where the audio up to there is."""
    rec = win.recorder
    if rec is not None and getattr(rec, "failed", False):
        # the recording stopped by itself (disk full, ...): say why, leave recording mode
        reason = rec.error or "a write failed"
        at = float(getattr(rec, "duration_s", 0.0))
        path = win.stop_recording(reason=None)
        win.rec_path.setText(f"stopped at {at:.1f} s: {path}")
        win.show_message(f"The recording stopped at {at:.1f} s: {reason}. What was "
                         f"recorded until then is kept in {path}.")
        rec = None
    if rec is not None:
        t = float(getattr(rec, "elapsed_s", 0.0))
        win.rec_time.setText(f"{int(t // 60):02d}:{t % 60:04.1f}")


def open_recordings_folder(win) -> None:
    """Open the folder of the last recording (else ``win.recordings_dir``, else the default
    recordings folder, else the home folder) in the desktop's file manager (``win.open_url``);
    the folder is created when missing."""
    if win.last_recording is not None:
        folder = win.last_recording.parent
    elif win.recordings_dir is not None:
        folder = win.recordings_dir
    else:
        try:
            from realtime_tse.live.recording_paths import default_recordings_dir  # noqa: PLC0415
            folder = Path(default_recordings_dir())
        except Exception:
            folder = Path.home()
    folder.mkdir(parents=True, exist_ok=True)
    win.open_url(QUrl.fromLocalFile(str(folder)))
