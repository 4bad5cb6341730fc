"""The desktop app's entry point: :func:`main` parses the app's options, makes the QApplication,
opens :class:`realtime_tse.gui.app.MainWindow` and runs the event loop until the window closes
(``python -m realtime_tse.gui.launch``); :func:`run` does the same from options already parsed
(``realtime-tse`` with no arguments, through :mod:`realtime_tse.cli.live`). The options are the
app's, defined once in :mod:`realtime_tse.app_options`: ``--help`` here lists the same options as
``realtime-tse --help``.

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

from ..app_options import APP_DESCRIPTION, PROG, add_app_options, unused_options
from .app import MainWindow
from .window_settings import DEMO_INPUT, SETTINGS_ORG

__all__ = ["main", "run"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m realtime_tse.gui.launch", allow_abbrev=False,
        description=f"{APP_DESCRIPTION} This module opens the window (the run without it: "
                    f"{PROG} --headless).")
    add_app_options(ap)
    return ap


def _parse(argv):
    """The app's options (``argv``: strings) -> argparse.Namespace; exits 2 on a bad option and
    on ``--headless`` (this module opens the window)."""
    ap = _parser()
    args = ap.parse_args(argv)
    if args.headless:
        ap.error(f"--headless: this module opens the window; for the run without it: "
                 f"{PROG} --headless")
    return args


def _output_choice(args):
    """What the window plays to: None (no playback), "remembered" (its last choice) or an output
    device's name (``--output-device`` by index or name).

    Raises:
        realtime_tse.audio.devices.AudioDeviceError: no output device matches.
    """
    if args.no_output or args.output_device == "null":
        return None
    if args.output_device is None:
        return "remembered"
    from ..audio.devices import find_device  # noqa: PLC0415
    return find_device(args.output_device, "output").name


def main(argv=None) -> int:
    """Start the app and run it until its window closes. ``argv``: options as strings (see
    ``--help``); None = no options. Returns the event loop's exit code (0 on a normal close), 1
    when ``--output-device`` matches no device (the error and the devices there are on standard
    error)."""
    from ..audio.devices import AudioDeviceError  # noqa: PLC0415
    args = _parse(list(argv) if argv is not None else [])
    try:
        return run(args)
    except AudioDeviceError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    """:func:`main` from options already parsed (a parser with
    :func:`realtime_tse.app_options.add_app_options`). Options the window does not use
    (``--threads``, ``--seconds``, ``-o``) are named in a note on standard error.

    Raises:
        realtime_tse.audio.devices.AudioDeviceError: ``--output-device`` matches no device.
    """
    unused = unused_options(args, window=True)
    if unused:
        print(f"{PROG}: note: {', '.join(unused)}: not used by the window (only without it: "
              f"{PROG} --headless)", file=sys.stderr)
    output = _output_choice(args)
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "realtime-tse"])
    app.setApplicationName("realtime-tse")
    app.setOrganizationName(SETTINGS_ORG)
    settings = QSettings(args.settings, QSettings.IniFormat) if args.settings else None
    source = ("demo", str(DEMO_INPUT)) if args.demo else (("file", args.input_file) if args.input_file else None)
    win = MainWindow(settings, model_path=args.model, source=source, output=output,
                     device=args.device, block_ms=args.block_ms, distance=args.distance)
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
