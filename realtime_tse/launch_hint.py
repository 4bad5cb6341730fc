"""Commands named in hints work as printed, from where the user is: the installed scripts
(``realtime-tse``, ``tse-train``, ``tse-eval``) by the name the shell finds, else by their path in
the virtual environment (:func:`app_command`); how to get the window after a headless run
(:func:`window_hint`)."""
from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["app_command", "window_hint"]

_REPO = Path(__file__).resolve().parent.parent
_MODULES = {"realtime-tse": "realtime_tse.cli",  # python -m fallbacks
            "tse-train": "realtime_tse.train.cli"}


def _shown(path: Path, cwd: Path) -> str:
    """``path`` as typed from ``cwd``: relative below it (``.venv/bin/realtime-tse``), else absolute."""
    try:
        rel = path.relative_to(cwd)
    except ValueError:
        return shlex.quote(str(path))
    return shlex.quote(str(rel) if "/" in str(rel) else f"./{rel}")


def app_command(cwd: str | Path | None = None, name: str = "realtime-tse") -> str:
    """The command ``name`` (an installed script of this package) as the user can type it in
    ``cwd`` (default: the current directory): ``name`` when the shell finds this environment's
    script by it, else the script's path next to this Python (e.g. ``.venv/bin/realtime-tse``),
    else ``python -m MODULE`` with this Python (``name`` itself when it has no module form)."""
    cwd = Path(cwd or os.getcwd()).resolve()
    exe = Path(sys.executable)
    script = exe.parent / name
    on_path = shutil.which(name)
    if on_path and (not script.is_file() or Path(on_path).resolve() == script.resolve()):
        return name
    if script.is_file():
        return _shown(script.absolute(), cwd)
    module = _MODULES.get(name)
    return f"{_shown(exe.absolute(), cwd)} -m {module}" if module else name


def window_hint(cwd: str | Path | None = None) -> str:
    """What the headless run prints last: how to get the window, every command runnable as printed
    from ``cwd``; names the repository's ``scripts/run_app.sh`` only where it exists, and says
    how to install Xvfb where ``xvfb-run`` is missing."""
    cwd = Path(cwd or os.getcwd()).resolve()
    app = app_command(cwd)
    run_app = _REPO / "scripts" / "run_app.sh"
    desktop = f"`{app}`" + (f" or `bash {_shown(run_app, cwd)}`" if run_app.is_file() else "")
    xvfb = f"`xvfb-run -a {app}`"
    if shutil.which("xvfb-run") is None:
        xvfb += " (after `sudo apt-get install xvfb`)"
    return (f"To get the window: run {desktop} in a desktop session (DISPLAY or WAYLAND_DISPLAY "
            f"set); on a server without a display, {xvfb}, or `QT_QPA_PLATFORM=offscreen {app}` "
            "to run it unseen.")
