#!/usr/bin/env python
"""Screenshot of the desktop app running on the demo input -> docs/screenshot.png.

Starts the real window (offscreen unless a display is set; under Xvfb use e.g.
``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/screenshot.py``), plays the shipped demo
mixture through the engine with no playback, lets it run ``--seconds`` (default 6) so the distance
profile and the radar have data, sets the query to ``--distance`` and saves the window. Uses a
throw-away settings file, so the user's own settings are neither read nor changed.

With no shipped checkpoint (assets/models/lite-lstm-d1.safetensors) pass ``--model``; or
``--random-model`` builds an untrained lite-causal model in a temporary folder (layout checks only:
its profile means nothing).

Usage: python scripts/screenshot.py [--out docs/screenshot.png] [--seconds 6] [--distance 1.0]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default=str(ROOT / "docs" / "screenshot.png"))
    ap.add_argument("--seconds", type=float, default=6.0, help="run time before the shot (s)")
    ap.add_argument("--distance", type=float, default=1.0, help="query distance shown (m)")
    ap.add_argument("--model", help="checkpoint (default: the shipped one)")
    ap.add_argument("--random-model", action="store_true", help="untrained lite-causal model (layout only)")
    ap.add_argument("--size", default="1120x720", help="window size WxH")
    args = ap.parse_args(argv)

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = tempfile.TemporaryDirectory(prefix="tse-shot-")
    model = args.model
    if args.random_model:
        from realtime_tse.models.checkpoint import save_checkpoint
        from realtime_tse.models.config import ModelConfig
        from realtime_tse.models.net import build_model
        model = str(Path(tmp.name) / "random-lite-causal.safetensors")
        save_checkpoint(model, build_model(ModelConfig.preset("lite-causal")),
                        {"note": "untrained, for screenshots of the layout only"})

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from realtime_tse.gui.app import DEMO_INPUT, MainWindow

    app = QApplication.instance() or QApplication(["realtime-tse"])
    settings = QSettings(str(Path(tmp.name) / "settings.ini"), QSettings.IniFormat)
    win = MainWindow(settings, model_path=model, source=("demo", str(DEMO_INPUT)), output=None,
                     recordings_dir=Path(tmp.name) / "recordings")
    w, h = (int(v) for v in args.size.lower().split("x"))
    win.resize(w, h)
    win.show()

    def pump(seconds, until=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            if until is not None and until():
                return True
            time.sleep(0.01)
        return until() if until else True

    if not pump(60, until=lambda: win.engine is not None or bool(win.messages)):
        print("the engine did not start within 60 s", file=sys.stderr)
    if win.engine is None:
        print("no engine: " + "; ".join(m for _, m in win.messages), file=sys.stderr)
    win.distance.set_value(args.distance)
    pump(args.seconds)
    pump(20, until=lambda: win.profile.has_data)  # on a slow machine the first scan may be late
    pump(0.3)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok = win.grab().save(str(out))
    eng = win.engine
    print(f"saved {out} ({'ok' if ok else 'FAILED'}); talkers {win.radar.talkers_m}; "
          f"scans {getattr(eng, 'scan_count', 0)}; rtf {getattr(eng, 'rtf', float('nan')):.2f}; "
          f"messages {win.messages}")
    win.shutdown()
    win.close()
    tmp.cleanup()
    return 0 if ok and win.profile.has_data else 1


if __name__ == "__main__":
    sys.exit(main())
