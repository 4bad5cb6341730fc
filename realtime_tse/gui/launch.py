"""The desktop app's entry point: :func:`main` parses the window's options, makes the
QApplication, opens :class:`realtime_tse.gui.app.MainWindow` and runs the event loop until the
window closes (``realtime-tse`` with no arguments, through :mod:`realtime_tse.cli.live`;
``python -m realtime_tse.gui.launch --help``).

SIGTERM and SIGHUP (a logout, ``kill``) close the window as closing it does: the recording in
progress is finalised and the settings saved, and ``main`` returns 0.
"""
from __future__ import annotations

import argparse
import signal
import sys

# PySide6 must be imported before pyqtgraph (through .app) so pyqtgraph picks the PySide6 binding
from PySide6.QtCore import QEvent, QSettings
from PySide6.QtWidgets import QApplication

from .app import MainWindow
from .window_settings import DEMO_INPUT, SETTINGS_ORG

__all__ = ["main"]


def _parse(argv):
    """The window's options (``argv``: strings) -> argparse.Namespace; exits 2 on a bad option."""
    ap = argparse.ArgumentParser(prog="realtime-tse", description="Desktop app: listen to the talker at a distance.")
    ap.add_argument("--model", help="checkpoint (.safetensors) instead of the shipped model")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--demo", action="store_true", help="use the shipped demo input")
    src.add_argument("--input-file", help="audio file as input (looped)")
    ap.add_argument("--no-output", action="store_true", help="no playback")
    ap.add_argument("--distance", type=float, help="initial query distance in metres")
    ap.add_argument("--device", default="auto", help="compute device: auto, cpu, cuda")
    ap.add_argument("--settings", help="settings INI file (default: the user's Qt settings)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    """Start the app and run it until its window closes. ``argv``: options as strings (see
    ``--help``); None = no options. Returns the event loop's exit code (0 on a normal close)."""
    args = _parse(list(argv) if argv is not None else [])
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "realtime-tse"])
    app.setApplicationName("realtime-tse")
    app.setOrganizationName(SETTINGS_ORG)
    settings = QSettings(args.settings, QSettings.IniFormat) if args.settings else None
    source = ("demo", str(DEMO_INPUT)) if args.demo else (("file", args.input_file) if args.input_file else None)
    win = MainWindow(settings, model_path=args.model, source=source,
                     output=None if args.no_output else "remembered", device=args.device,
                     distance=args.distance)
    win.show()
    # SIGTERM / SIGHUP (a logout, `kill`) close the window as the user would: the recording in
    # progress is finalised and the settings saved (Python runs the handler at the next UI tick)
    old = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            try:
                old[sig] = signal.signal(sig, lambda *_: app.quit())
            except (ValueError, OSError):  # not the main thread
                pass
    try:
        rc = app.exec()
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
    win.shutdown()
    # Closing the last window posts one more Quit event (Qt 6 quitAutomatically); drop it so that
    # an event loop run later in the same process (tests) does not receive it and return at once.
    quit_on_close = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)
    win.close()
    win.deleteLater()
    app.sendPostedEvents(None, QEvent.DeferredDelete)
    app.removePostedEvents(app, QEvent.Quit)
    app.setQuitOnLastWindowClosed(quit_on_close)
    return int(rc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
