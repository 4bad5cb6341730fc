"""Sound files in and out of the command line: read once (so pipes work), written whole.

Reading (:func:`read_sound`): ``"-"`` is standard input; a regular file is opened once by name; a
pipe, a FIFO, ``/dev/stdin`` or a process substitution (``<(cmd)``) is read once into memory and
decoded from there (a second open would find the header gone). Names reach libsndfile as the file
system's bytes (:func:`soundfile_name`), so a name that is not UTF-8 works.

Writing (:func:`encode_sound`, :func:`write_sound`): the audio is encoded in memory and written
with :func:`realtime_tse.file_write.write_bytes_atomic` (temporary file in the same folder, moved
into place when complete; a previous file keeps its content on failure), or to standard output
for ``"-"`` (WAV, as sox and ffmpeg do). NaN/Inf samples are written as 0, as the live output
guard does (:mod:`realtime_tse.safety`); never as full scale.
"""
from __future__ import annotations

import io
import os
import stat
import sys
from pathlib import Path

import numpy as np

from .file_write import FileWriteError, write_bytes_atomic
from .safety import sanitize

__all__ = ["STDIO", "AudioFileError", "display_path", "soundfile_name", "read_sound", "encode_sound",
           "write_sound", "is_stdio"]

STDIO = "-"  # the name that means standard input (reading) or standard output (writing)


class AudioFileError(ValueError):
    """A sound file cannot be read or encoded; the message names the file and says why."""


def display_path(path) -> str:
    """``path`` as text that any terminal takes: bytes of a name that are not UTF-8 appear as
    ``\\xe9`` escapes (printing the raw name to a UTF-8 standard output would fail)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_stdio(path) -> bool:
    """True for ``"-"``: standard input / output."""
    return str(path) == STDIO


def soundfile_name(path) -> str | bytes:
    """``path`` as libsndfile should get it: the file system's bytes on POSIX (any name the file
    system holds, UTF-8 or not), the string elsewhere."""
    if os.name == "posix":
        return os.fsencode(Path(path))
    return str(path)


def _read_bytes(path) -> bytes:
    if is_stdio(path):
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def read_sound(path) -> tuple[np.ndarray, int, dict]:
    """Read a whole sound file, opening it once.

    Args:
        path: a file name (str / Path, any bytes the file system allows), or ``"-"`` for standard
            input. Pipes, FIFOs and process substitutions are read into memory once.
    Returns:
        ``(x, sample_rate, info)``: ``x`` float32 ``[N, C]`` (full scale 1.0; NaN/Inf kept as
        they are), ``sample_rate`` in Hz, ``info`` = ``{"channels", "subtype", "format"}``.
    Raises:
        FileNotFoundError: no such file. IsADirectoryError: a folder.
        AudioFileError: not a sound file libsndfile reads, or reading failed.
    """
    import soundfile as sf  # noqa: PLC0415
    name = "standard input" if is_stdio(path) else display_path(path)
    regular = False
    if not is_stdio(path):
        st = os.stat(path)  # FileNotFoundError, PermissionError
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{path}: is a directory, not a sound file")
        regular = stat.S_ISREG(st.st_mode)
    try:
        src = soundfile_name(path) if regular else io.BytesIO(_read_bytes(path))
        with sf.SoundFile(src) as f:
            info = {"channels": int(f.channels), "subtype": f.subtype, "format": f.format}
            x = f.read(dtype="float32", always_2d=True)
            sr = int(f.samplerate)
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError, OSError) as e:
        raise AudioFileError(f"{name}: cannot read audio ({_plain(e)})") from e
    return x, sr, info


def _plain(e: BaseException) -> str:
    """A library's error message without the file name it repeats."""
    msg = str(e)
    if msg.startswith("Error opening ") and ": " in msg:
        msg = msg.split(": ", 1)[1]
    return msg


def encode_sound(x, sample_rate: int, fmt: str, subtype: str | None = None) -> bytes:
    """Encode ``x`` ([N] or [N, C] float, full scale 1.0) as a whole file in memory.

    NaN/Inf samples are encoded as 0. ``fmt``: a libsndfile format ("WAV", "FLAC", "OGG", ...);
    ``subtype`` None: the format's default. Samples beyond full scale are clipped by libsndfile
    for integer subtypes (limit them first, see ``realtime_tse.cli.main.write_audio``).

    Raises:
        AudioFileError: the format / subtype / rate combination is not supported.
    """
    import soundfile as sf  # noqa: PLC0415
    a, _ = sanitize(np.asarray(x, dtype=np.float32))
    buf = io.BytesIO()
    try:
        sf.write(buf, a, int(sample_rate), format=fmt, subtype=subtype)
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioFileError(f"cannot encode {fmt} {subtype or ''} at {sample_rate} Hz "
                             f"({_plain(e)})".replace("  ", " ")) from e
    return buf.getvalue()


def write_sound(path, x, sample_rate: int, fmt: str, subtype: str | None = None) -> str | Path:
    """Write ``x`` to ``path`` whole or not at all, or to standard output for ``"-"``.

    Args:
        path: the file, or ``"-"`` (standard output; written whole once encoded).
        x: [N] or [N, C] float samples, full scale 1.0 (NaN/Inf written as 0).
        fmt, subtype: as :func:`encode_sound`.
    Returns:
        ``path`` (a Path, or ``"-"``).
    Raises:
        AudioFileError: cannot encode. FileWriteError: cannot write (the message says why: "no
        space left on device", "read-only file system", ...); a previous file is unchanged.
    """
    data = encode_sound(x, sample_rate, fmt, subtype)
    if is_stdio(path):
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except OSError as e:
            raise FileWriteError("standard output", str(e.strerror or e).lower(), e.errno) from e
        return STDIO
    return write_bytes_atomic(Path(path), data)
