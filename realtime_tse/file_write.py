"""How realtime-tse writes a file: whole or not at all.

Every file the app writes in one go (extracted audio, scan JSON and plots, calibration files,
recording sidecars) is written to a temporary file in the same folder (``.<name>.<random>.tmp``
plus the name's suffix, so libraries that pick a format by the extension still do) and moved over
the target with ``os.replace`` once it is complete and flushed to disk. On any failure the
temporary file is deleted and a file already at the target keeps its content. (The atomic-writes
libraries on PyPI are unmaintained; this is the few lines they were.)

Failures are raised as :class:`FileWriteError`, whose message names the file and the cause in
plain words ("no space left on device", "read-only file system", "permission denied") instead of
a C library's "System error.".

A recording is the one file written as it grows (:mod:`realtime_tse.live.recorder`): what was
recorded before a failure must stay.
"""
from __future__ import annotations

import errno
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["FileWriteError", "atomic_path", "write_bytes_atomic", "write_json_atomic", "write_error_reason"]


class FileWriteError(OSError):
    """A file could not be written; ``str(e)`` is ``"cannot write PATH: REASON"``, ``e.errno``
    the cause's errno when known, ``e.path`` the target."""

    def __init__(self, path, reason: str, err: int | None = None):
        super().__init__(err, f"cannot write {path}: {reason}")
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return self.strerror


_PLAIN = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system",
          errno.EACCES: "permission denied", errno.EPERM: "permission denied",
          errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large",
          errno.ENOENT: "no such folder", errno.ENOTDIR: "a part of the path is not a folder",
          errno.EISDIR: "is a folder", errno.EIO: "input/output error"}


def _folder_errno(folder: Path) -> int | None:
    """Why nothing can be written into ``folder`` (an errno), from the file system's own figures;
    None when nothing says so."""
    try:
        st = os.statvfs(folder)
    except OSError as e:
        return e.errno
    if st.f_flag & os.ST_RDONLY:
        return errno.EROFS
    if st.f_bavail == 0 or (st.f_favail == 0 and st.f_files > 0):
        return errno.ENOSPC
    if not os.access(folder, os.W_OK | os.X_OK):
        return errno.EACCES
    return None


def write_error_reason(e: BaseException, path) -> tuple[str, int | None]:
    """The cause of a failed write of ``path`` in plain words, and its errno when known.

    ``e``: what the write raised. An ``OSError`` with an errno speaks for itself; anything else
    (libsndfile's "System error.", a library's own error) is explained by the target folder's state
    (read-only, full, not writable) when that explains it, else by ``str(e)``.
    """
    err = getattr(e, "errno", None) if isinstance(e, OSError) else None
    if err is None:
        err = _folder_errno(Path(path).parent)
    if err == errno.ENOENT and Path(path).parent.is_dir():  # /proc: the folder takes no new file
        return "not a writable file system (the folder takes no new files)", err
    if err is not None:
        return _PLAIN.get(err, os.strerror(err).lower()), err
    return str(e) or type(e).__name__, None


@contextmanager
def atomic_path(path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; moved over ``path`` when the block
    ends without an exception, deleted when it raises.

    The temporary file exists (empty, mode 0666 less the umask) when the block starts. Its folder
    is ``path``'s, created if missing.

    Raises:
        FileWriteError: creating, flushing or moving the file failed with an ``OSError`` (the
            message says why in plain words). Other exceptions from the block pass unchanged (the
            temporary file is deleted all the same).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            cand = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
            try:
                os.close(os.open(cand, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                tmp = cand
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - 100 collisions of 32 random bits
            raise FileExistsError(errno.EEXIST, "no free temporary name", str(path.parent))
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        if isinstance(e, FileWriteError):
            raise
        reason, err = write_error_reason(e, path)
        raise FileWriteError(path, reason, err) from e
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all (:func:`atomic_path`). Returns ``path``.

    Raises:
        FileWriteError: the file could not be written; a previous file at ``path`` is unchanged.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def write_json_atomic(path, doc, indent: int = 2) -> Path:
    """Write ``doc`` as JSON text (``indent`` spaces, a final newline) to ``path`` whole or not at
    all (:func:`write_bytes_atomic`). Returns ``path``.

    Raises:
        FileWriteError: the file could not be written; a previous file at ``path`` is unchanged.
        TypeError: ``doc`` holds something JSON cannot encode.
    """
    import json

    return write_bytes_atomic(path, (json.dumps(doc, indent=indent) + "\n").encode())
