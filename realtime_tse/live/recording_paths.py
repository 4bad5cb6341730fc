"""Where recordings go and what they are called: the default folder (``$RTSE_RECORDINGS_DIR``, else
the desktop's music folder), a fallback when it cannot be written, the time-stamped name of a new
recording (the one naming rule of the engine, the window and the CLI) and the never-overwrite rule
(:func:`unique_path`, used by :class:`realtime_tse.live.recorder.Recorder`).
"""
from __future__ import annotations

import errno
import logging
import os
import re
from datetime import datetime
from pathlib import Path

from ..file_write import write_error_reason

__all__ = ["default_recordings_dir", "writable_recordings_dir", "recording_path", "unique_path"]

log = logging.getLogger(__name__)


def default_recordings_dir(create: bool = True) -> Path:
    """Where recordings go by default: ``$RTSE_RECORDINGS_DIR``, else ``<XDG music dir>/realtime-tse``
    (``$XDG_MUSIC_DIR``, then ``~/.config/user-dirs.dirs``, then ``~/Music``); created on demand."""
    env = os.environ.get("RTSE_RECORDINGS_DIR")
    if env:
        d = Path(env).expanduser()
    else:
        music = os.environ.get("XDG_MUSIC_DIR")
        if not music:
            cfg = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "user-dirs.dirs"
            try:
                m = re.search(r'^XDG_MUSIC_DIR="([^"]*)"', cfg.read_text(), re.M)
                if m:
                    music = m.group(1).replace("$HOME", str(Path.home()))
            except OSError:
                pass
        d = Path(music).expanduser() / "realtime-tse" if music else \
            Path.home() / "Music" / "realtime-tse"
    if create:
        d.mkdir(parents=True, exist_ok=True)
    return d


def writable_recordings_dir() -> tuple[Path, str | None]:
    """The recordings folder (:func:`default_recordings_dir`), created, and None; or, when it
    cannot be created or written (a read-only home, ``~/Music`` not a folder) and
    ``$RTSE_RECORDINGS_DIR`` does not name it, ``<temporary dir>/realtime-tse-<user>`` and a
    one-line note saying where the recordings go instead and how to choose.

    Raises:
        OSError: ``$RTSE_RECORDINGS_DIR`` is set and cannot be used (the message names it), or not
            even the temporary folder can be created.
    """
    import getpass  # noqa: PLC0415
    import tempfile  # noqa: PLC0415
    d = default_recordings_dir(create=False)
    try:
        d.mkdir(parents=True, exist_ok=True)
        if not os.access(d, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(d))
        return d, None
    except OSError as e:
        why, _ = write_error_reason(e, d / "x")
        if os.environ.get("RTSE_RECORDINGS_DIR"):
            raise OSError(e.errno, f"cannot use RTSE_RECORDINGS_DIR={d}: {why}") from e
        try:
            user = getpass.getuser()
        except Exception:  # noqa: BLE001
            user = str(os.getuid()) if hasattr(os, "getuid") else "user"
        fb = Path(tempfile.gettempdir()) / f"realtime-tse-{user}"
        fb.mkdir(parents=True, exist_ok=True)
        return fb, (f"cannot create {d} ({why}); recordings go to {fb} instead (choose the folder "
                    f"with RTSE_RECORDINGS_DIR, or the file with -o)")


def recording_path(folder: str | Path | None = None, prefix: str = "tse", suffix: str = "",
                   ext: str = ".wav") -> Path:
    """The name of a new recording: ``<folder>/<prefix>-YYYYmmdd-HHMMSS<suffix><ext>`` (local time;
    the one naming rule of the engine, the window and the CLI). ``folder`` None: the
    :func:`default_recordings_dir`, or where it cannot be written the temporary folder of
    :func:`writable_recordings_dir` (logged); a given folder is created. The :class:`Recorder`
    makes the name unique (:func:`unique_path`)."""
    if folder is None:
        d, why = writable_recordings_dir()
        if why:
            log.warning(why)
    else:
        d = Path(folder).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{prefix}-{datetime.now().strftime('%Y%m%d-%H%M%S')}{suffix}{ext}"


def unique_path(path: str | Path, reserve: bool = True, companion_suffix: str | None = None) -> Path:
    """``path`` if it does not exist, else ``stem-1.suffix``, ``stem-2.suffix``, ... With
    ``reserve`` the chosen name is created empty with O_EXCL, so no one else can take it.
    ``companion_suffix`` (e.g. ``".json"``): also skip names whose ``name + suffix`` file exists."""
    path = Path(path)
    stem, suffix = path.stem, path.suffix
    cand, i = path, 0
    while True:
        if companion_suffix and cand.with_name(cand.name + companion_suffix).exists():
            pass
        elif reserve:
            try:
                fd = os.open(cand, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                os.close(fd)
                return cand
            except FileExistsError:
                pass
        elif not cand.exists():
            return cand
        i += 1
        cand = path.with_name(f"{stem}-{i}{suffix}")
