"""What the ``realtime-tse`` commands share: the program name, user-facing errors (:class:`CLIError`,
one line, exit status 1), stop signals raised like Ctrl-C, reading and writing sound files, loading
the model, checking a distance and saying where the talkers are."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ..app_options import PROG
from ..audio_file import display_path
from ..paths import demo_input_path

DEMO_INPUT = demo_input_path()   # the repository's assets/demo/, or the installed package's copy
MIN_EXTRACT_S = 0.1


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


class StopSignal(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread where Ctrl-C raises KeyboardInterrupt: a live
    run stops the same way (recording closed, summary printed); exit status 128 + the signal's
    number (143 for SIGTERM, 129 for SIGHUP)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """The exit status of an interrupted command: 128 + the signal (SIGINT: 130)."""
    return 128 + getattr(interrupt, "signum", 2)


def _raise_stop(signum, _frame):
    raise StopSignal(signum)


def stop_signals_like_ctrl_c() -> dict:
    """Make SIGTERM and SIGHUP raise :class:`StopSignal` in the main thread (as Ctrl-C raises
    KeyboardInterrupt). Returns the previous handlers (for :func:`restore_signals`); nothing is
    changed outside the main thread."""
    import signal  # noqa: PLC0415
    old = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            old[sig] = signal.signal(sig, _raise_stop)
        except (ValueError, OSError):  # not the main thread
            pass
    return old


def restore_signals(old: dict) -> None:
    import signal  # noqa: PLC0415
    for sig, h in old.items():
        try:
            signal.signal(sig, h)
        except (ValueError, OSError, TypeError):
            pass


def _note(msg: str) -> None:
    print(f"{PROG}: note: {msg}", file=sys.stderr)


# ------------------------------------------------------------------------------------ helpers
def _set_threads(n: int | None) -> None:
    import torch  # noqa: PLC0415
    if n is None:
        env = os.environ.get("RTSE_THREADS")
        n = int(env) if env and env.isdigit() else max(1, min(4, (os.cpu_count() or 2) // 2))
    torch.set_num_threads(max(1, int(n)))


def _load(args):
    from ..model import load_model  # noqa: PLC0415
    _set_threads(getattr(args, "threads", None))
    return load_model(args.model, device=args.device)


def read_audio(path, min_seconds: float = MIN_EXTRACT_S):
    """Read a sound file as mono float32 (NaN/Inf samples -> 0, with a note), opening it once:
    ``"-"`` is standard input, and pipes or process substitutions (``<(cmd)``) work; any name the
    file system holds works (:func:`realtime_tse.audio_file.read_sound`).

    Returns:
        (x [N] float32, sample_rate Hz, info dict {"channels", "subtype", "format"}).
    Raises:
        CLIError: missing, unreadable, empty or shorter than ``min_seconds``.
    """
    import numpy as np  # noqa: PLC0415
    from ..audio_file import AudioFileError, is_stdio, read_sound  # noqa: PLC0415
    p = Path(path)
    name = "standard input" if is_stdio(path) else display_path(p.name)
    try:
        x, sr, info = read_sound(path)
    except FileNotFoundError as e:
        raise CLIError(f"{p}: no such file") from e
    except IsADirectoryError as e:
        raise CLIError(f"{p}: is a directory, not a sound file") from e
    except (AudioFileError, OSError) as e:
        raise CLIError(str(e) if isinstance(e, AudioFileError) else
                       f"{p}: cannot read audio ({e.strerror or e})") from e
    where = "standard input" if is_stdio(path) else display_path(p)
    if x.shape[0] == 0:
        raise CLIError(f"{where}: the file holds no audio (0 samples)")
    if x.shape[0] < min_seconds * sr:
        raise CLIError(f"{where}: too short ({x.shape[0] / sr:.3f} s; need at least "
                       f"{min_seconds:g} s)")
    if x.shape[1] > 1:
        _note(f"{name} has {x.shape[1]} channels; mixed down to mono")
        x = x.mean(axis=1)
    else:
        x = x[:, 0]
    from ..safety import sanitize  # noqa: PLC0415
    x, bad = sanitize(x)
    if bad:
        _note(f"{name}: {bad} NaN/Inf samples replaced by silence")
    return np.ascontiguousarray(x, dtype=np.float32), int(sr), info


def _output_ext(p) -> str:
    """The output format's name (``WAV``, ``FLAC``, ...) for ``p``: from its extension; WAV for
    standard output and for a stream without one (``/dev/stdout``)."""
    from ..audio_file import is_stdio, is_stream  # noqa: PLC0415
    if is_stdio(p):
        return "WAV"
    ext = Path(p).suffix.lstrip(".").upper()
    return "WAV" if not ext and is_stream(p) else ext


def check_output_path(path, example: str = "out.wav") -> Path:
    """Refuse a path a command is to write, before any work is done: the one rule for every
    output file of the command line (``extract -o``, ``scan --json`` / ``--plot``,
    ``stream --record``, the headless run's ``-o``). A missing folder is never created: the user
    names an existing one.

    A stream (a FIFO, a character device, ``/dev/stdout``) passes as it is. ``example``: a file
    name the message about a folder suggests (``scan.json``, ...).

    Returns:
        the path, ``~`` expanded.
    Raises:
        CLIError: the path is a folder; its folder does not exist, or the "folder" is a file; the
            folder takes no new file (permission denied, read-only or not a writable file system:
            a probe file is created and deleted to find out).
    """
    from ..audio_file import is_stream  # noqa: PLC0415
    p = Path(path).expanduser()
    if p.is_dir():
        raise CLIError(f"cannot write {p}: it is a folder (name a file in it, e.g. {p / example})")
    if is_stream(p):
        return p
    parent = p.parent
    if parent.exists() and not parent.is_dir():
        raise CLIError(f"cannot write {p}: {parent} is a file, not a folder")
    if not parent.exists():
        raise CLIError(f"cannot write {p}: no such folder {parent} (create it first)")
    why = _folder_refuses(parent)
    if why:
        raise CLIError(f"cannot write {p}: {why}")
    return p


def check_output_audio_path(path) -> None:
    """Refuse an output sound file's path before any work is done on it: the format by its
    extension, then :func:`check_output_path`.

    ``-`` (standard output) passes when standard output is open; a stream (a FIFO, a character
    device, ``/dev/stdout``) passes when its extension, if any, is a known format.

    Raises:
        CLIError: standard output is closed; the path is a folder; an unknown format (by the
            file's extension); any refusal of :func:`check_output_path`.
    """
    import soundfile as sf  # noqa: PLC0415
    from ..audio_file import is_stdio, stdout_fd  # noqa: PLC0415
    from ..file_write import FileWriteError  # noqa: PLC0415
    if is_stdio(path):
        try:
            stdout_fd()
        except FileWriteError as e:
            raise CLIError(f"{e} (it was closed when the command started: use -o FILE, or "
                           f"-o - with a pipe or a redirection)") from e
        return
    p = Path(path).expanduser()
    if p.is_dir():   # "it is a folder" before "unknown format": a folder has no extension
        check_output_path(p)
    ext = _output_ext(p)
    if ext not in sf.available_formats() and ext != "OGA":
        raise CLIError(f"{p}: unknown output format {p.suffix!r} (use .wav, .flac, ...)")
    check_output_path(p)


def _folder_refuses(folder: Path) -> str | None:
    """Why a new file cannot be created in the existing folder ``folder`` (plain words, as
    :func:`realtime_tse.file_write.write_error_reason` says them), found by creating and deleting
    a probe file there; None when it can."""
    import os  # noqa: PLC0415
    import secrets  # noqa: PLC0415
    probe = folder / f".rtse-probe.{secrets.token_hex(4)}.tmp"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as e:
        from ..file_write import write_error_reason  # noqa: PLC0415
        return write_error_reason(e, folder / "x")[0]
    try:
        os.unlink(probe)
    except OSError:
        pass
    return None


def write_audio(path, x, sr: int, like_subtype: str | None = None) -> Path | str:
    """Write mono float audio whole or not at all; float input subtypes stay float in WAV, else
    the format's default. ``path`` ``"-"``: WAV to standard output.

    NaN/Inf samples are written as 0 (as the live output guard does), with a note. An integer file
    (FLAC, 16-bit WAV, ...) cannot hold samples beyond full scale: when ``x`` has any, it is
    passed through the peak limiter of :mod:`realtime_tse.safety` (ceiling -1 dBFS) instead of
    being clipped, and a note says how many samples were over and by how much. The file is
    encoded in memory and moved into place when complete
    (:func:`realtime_tse.audio_file.write_sound`): a previous file at ``path`` is kept as it was
    when writing fails.

    Returns:
        the path written (``"-"`` for standard output).
    Raises:
        CLIError: unknown format, or the file cannot be written ("cannot write OUT: no space left
            on device", "...: read-only file system", ...).
    """
    import numpy as np  # noqa: PLC0415
    import soundfile as sf  # noqa: PLC0415
    from ..audio_file import AudioFileError, is_stdio, write_sound  # noqa: PLC0415
    from ..file_write import FileWriteError  # noqa: PLC0415
    from ..safety import sanitize  # noqa: PLC0415
    p = path if is_stdio(path) else Path(path).expanduser()
    ext = _output_ext(p)
    if ext not in sf.available_formats() and ext != "OGA":
        raise CLIError(f"{p}: unknown output format {p.suffix!r} (use .wav, .flac, ...)")
    fmt = "OGG" if ext == "OGA" else ext
    subtype = None
    if like_subtype in ("FLOAT", "DOUBLE") and ext in ("WAV", "W64", "AIFF", "CAF"):
        subtype = "FLOAT"
    x, bad = sanitize(np.asarray(x, dtype=np.float32))
    if bad:
        _note(f"{bad} output samples were NaN/Inf: written as silence")
    chosen = subtype or sf.default_subtype(fmt) or ""
    if not chosen.startswith(("FLOAT", "DOUBLE")):
        over = int(np.count_nonzero(np.abs(x) > 1.0))
        if over:
            from ..safety import CEILING_DBFS, PeakLimiter  # noqa: PLC0415
            lim = PeakLimiter(sr, CEILING_DBFS)
            peak = float(np.max(np.abs(x)))
            x = lim.process(x)
            _note(f"{over} output samples beyond full scale (peak {20 * np.log10(peak):+.1f} dBFS) "
                  f"limited to {CEILING_DBFS:g} dBFS for {chosen or ext} (up to "
                  f"{lim.max_reduction_db:.1f} dB of gain reduction); write a .wav from a float "
                  f"input to keep the values")
    try:
        return write_sound(p, x, sr, fmt, subtype)
    except FileWriteError as e:
        raise CLIError(str(e)) from e
    except AudioFileError as e:
        raise CLIError(f"{p}: {e}") from e


def _check_distance(model, d) -> float:
    try:
        return float(model.check_distance(d)[0])
    except ValueError as e:
        raise CLIError(str(e)) from e


def _fmt_talkers(res) -> str:
    """The detector's talkers of a ScanResult (``talkers_m``) as one line."""
    from realtime_tse.models.detection import MIN_CONTRAST_DB, SILENCE_DBFS  # noqa: PLC0415
    if not res.talkers_m:
        if res.input_dbfs < SILENCE_DBFS:
            return "no talker detected (input too quiet)"
        return f"no talker detected (no peak stands {MIN_CONTRAST_DB:g} dB above the median)"
    return "talkers at " + ", ".join(f"{d:.2f} m" for d in res.talkers_m)
