"""Sound files in and out of the command line: read once (so pipes work), written whole.

Reading (:func:`read_sound`): ``"-"`` is standard input; a regular file is opened once by name; a
pipe, a FIFO, ``/dev/stdin`` or a process substitution (``<(cmd)``) is read once into memory and
decoded from there (a second open would find the header gone). Names reach libsndfile as the file
system's bytes (:func:`soundfile_name`), so a name that is not UTF-8 works.

Writing (:func:`encode_sound`, :func:`write_sound`): the audio is encoded in memory and written
with :func:`realtime_tse.file_write.write_bytes_atomic` (temporary file in the same folder, moved
into place when complete; a previous file keeps its content on failure), or straight into a
stream: standard output for ``"-"`` (WAV, as sox and ffmpeg do), a named pipe (FIFO), a
character device or ``/dev/stdout`` (:func:`is_stream`; whole-or-nothing does not apply to a
stream, and a temporary file moved over a FIFO would replace it). A stream write fails unless
every byte was delivered (a reader that closes the pipe early is a "broken pipe"). NaN/Inf samples are written as 0, as the live output
guard does (:mod:`realtime_tse.safety`); never as full scale.
"""
from __future__ import annotations

import errno
import io
import os
import stat
import sys
from pathlib import Path

import numpy as np

from .file_write import FileWriteError, write_bytes_atomic
from .safety import sanitize

__all__ = ["STDIO", "AudioFileError", "display_path", "soundfile_name", "read_sound", "encode_sound",
           "write_sound", "is_stdio", "is_stream", "stdout_fd", "write_stream"]

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


def is_stream(path) -> bool:
    """True for ``"-"`` and for a path that names a stream rather than a file: a named pipe
    (FIFO), a character device, a socket (after symbolic links: ``/dev/stdout`` on a pipe), or one
    of ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``, ``/proc/self/fd/N`` (whatever they point at;
    a temporary file cannot be moved over them). A missing path, a regular file or a folder is not
    a stream."""
    if is_stdio(path):
        return True
    s = str(path)
    if s in ("/dev/stdout", "/dev/stderr") or s.startswith(("/dev/fd/", "/proc/self/fd/")):
        return True
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def stdout_fd() -> int | None:
    """The file descriptor of standard output, flushed of any text printed before; None when
    ``sys.stdout`` is open but has no descriptor (a capture in memory: write to its ``buffer``).

    Raises:
        FileWriteError: standard output is closed (the program was started with ``>&-``).
    """
    out = sys.stdout
    closed = FileWriteError("standard output", "standard output is closed", errno.EBADF)
    if out is None or getattr(out, "closed", False):
        raise closed
    try:
        out.flush()
        fd = out.fileno()
    except (io.UnsupportedOperation, AttributeError):
        return None
    except (OSError, ValueError) as e:
        raise closed from e
    try:
        os.fstat(fd)
    except OSError as e:
        raise closed from e
    return fd


def write_stream(path, data: bytes) -> None:
    """Write ``data`` straight into a stream (:func:`is_stream`): every byte, or an error.

    Args:
        path: ``"-"`` (standard output) or the stream's path (a FIFO is opened for writing, which
            waits for a reader, as ``cat > fifo`` does).
        data: the bytes.
    Raises:
        FileWriteError: the stream is closed, cannot be opened, or took fewer bytes than
            ``data`` holds ("broken pipe": the reader went away first; "standard output is
            closed"; ...).
    """
    name = "standard output" if is_stdio(path) else display_path(path)
    if is_stdio(path):
        fd, own = stdout_fd(), False
        if fd is None:  # an in-memory standard output (a test's capture)
            try:
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            except (OSError, ValueError, AttributeError) as e:
                raise FileWriteError(name, _reason(e) if isinstance(e, OSError) else str(e),
                                     getattr(e, "errno", None)) from e
            return
    else:
        try:
            fd, own = os.open(path, os.O_WRONLY), True
        except OSError as e:
            raise FileWriteError(name, _reason(e), e.errno) from e
    try:
        view = memoryview(data)
        done = 0
        while done < len(view):
            try:
                n = os.write(fd, view[done:done + (1 << 20)])
            except InterruptedError:
                continue
            except OSError as e:
                raise FileWriteError(name, _reason(e), e.errno) from e
            if n <= 0:
                raise FileWriteError(name, f"only {done} of {len(view)} bytes written", errno.EIO)
            done += n
    finally:
        if own:
            try:
                os.close(fd)
            except OSError:
                pass


def _reason(e: OSError) -> str:
    if e.errno == errno.EPIPE:
        return "broken pipe"
    if e.errno == errno.EBADF:
        return "the stream is closed"
    return str(e.strerror or e).lower()


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
    """Write ``x`` to ``path`` whole or not at all, or straight into a stream (``"-"``: standard
    output; a FIFO, a character device, ``/dev/stdout``: :func:`is_stream`).

    Args:
        path: the file, or a stream (written once encoded; every byte delivered or an error).
        x: [N] or [N, C] float samples, full scale 1.0 (NaN/Inf written as 0).
        fmt, subtype: as :func:`encode_sound`.
    Returns:
        ``path`` (a Path, or ``"-"``).
    Raises:
        AudioFileError: cannot encode. FileWriteError: cannot write (the message says why: "no
        space left on device", "read-only file system", "broken pipe", "standard output is
        closed", ...); a previous file is unchanged.
    """
    data = encode_sound(x, sample_rate, fmt, subtype)
    if is_stream(path):
        write_stream(path, data)
        return STDIO if is_stdio(path) else Path(path)
    return write_bytes_atomic(Path(path), data)
