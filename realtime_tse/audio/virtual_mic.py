"""A virtual microphone: the engine's output as a capture device other apps can record from.

Video calls, OBS, Audacity or a recorder pick "realtime-tse (extracted voice)" like any microphone.
It is built from the sound server's own modules through ``pactl`` (PulseAudio, and PipeWire through
pipewire-pulse, which implements the same modules):

* ``module-null-sink`` named ``<name>_sink``: a sink that plays nowhere; the engine's output is
  written into it by a ``pacat`` child process (out of the audio process, so it never takes the
  engine's GIL; the server converts the rate);
* ``module-remap-source`` named ``<name>`` on that sink's monitor: the capture device apps see,
  with the description shown in their device lists.

Both modules carry the property ``realtime_tse.mark=1`` beside their descriptions so that a
pair left behind by a run that was killed is found at the next start: a complete pair is reused,
a half pair is unloaded and made again; never a second pair. :meth:`VirtualMic.close` unloads
them (also at interpreter exit), by module number once the listing shows the number still names
them: pipewire-pulse, unlike PulseAudio, gives a freed number to the next module loaded.

Where no sound server runs (``pactl info`` fails) or ``pactl`` / ``pacat`` are missing,
:class:`VirtualMicError` says why and what to install.
"""
from __future__ import annotations

import atexit
import fcntl
import queue
import re
import shutil
import subprocess
import termios
import threading
from dataclasses import dataclass

import numpy as np

from ..safety import sanitize

DEFAULT_NAME = "realtime_tse_voice"
DEFAULT_DESCRIPTION = "realtime-tse (extracted voice)"
_MARK = "realtime_tse.mark=1"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class VirtualMicError(RuntimeError):
    """The virtual microphone cannot be made (no sound server, missing tools, a refused module)."""


def _pactl(*args: str, timeout: float = 10.0) -> str:
    exe = shutil.which("pactl")
    if exe is None:
        raise VirtualMicError("pactl not found: the virtual microphone needs PulseAudio or PipeWire's "
                              "pulse server and its tools (apt-get install pulseaudio-utils)")
    r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        msg = ((r.stderr or r.stdout).strip().splitlines() or ["no message"])[0]
        raise VirtualMicError(f"pactl {' '.join(args[:2])} failed: {msg}")
    return r.stdout


def server_name() -> str:
    """The sound server's name (e.g. "pulseaudio", "PulseAudio (on PipeWire 0.3.65)").

    Raises VirtualMicError when none answers."""
    try:
        info = _pactl("info")
    except VirtualMicError as e:
        raise VirtualMicError("no sound server is running (PulseAudio or PipeWire with pipewire-pulse); "
                              f"start one, or install it: apt-get install pulseaudio ({e})") from None
    for line in info.splitlines():
        if line.startswith("Server Name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _pipe_bytes(fd: int) -> int:
    """Bytes waiting in a pipe (``FIONREAD``, either end on Linux); 0 where it cannot be asked."""
    try:
        return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little", signed=True)
    except (OSError, ValueError):
        return 0


def _our_modules(name: str) -> dict[str, int]:
    """{"sink": index, "source": index} of this name's modules already loaded (stale or live)."""
    found: dict[str, int] = {}
    for line in _pactl("list", "short", "modules").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or _MARK not in parts[2]:
            continue
        if parts[1] == "module-null-sink" and f"sink_name={name}_sink" in parts[2]:
            found["sink"] = int(parts[0])
        elif parts[1] == "module-remap-source" and f"source_name={name} " in parts[2] + " ":
            found["source"] = int(parts[0])
    return found


def find_virtual_mics() -> list[str]:
    """Names of the virtual microphones this project made that exist now (for ``devices``).

    Empty where no sound server runs or pactl is missing."""
    try:
        out = _pactl("list", "short", "modules")
    except (VirtualMicError, OSError, subprocess.TimeoutExpired):
        return []
    names = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1] == "module-remap-source" and _MARK in parts[2]:
            m = re.search(r"source_name=(\S+)", parts[2])
            if m:
                names.append(m.group(1))
    return names


@dataclass
class VirtualMic:
    """The virtual microphone of one run: :meth:`open`, :meth:`write` blocks, :meth:`close`.

    Args:
        sample_rate: rate of the blocks given to :meth:`write` (Hz); the server converts it.
        name: the capture device's name (letters, digits, ``_.-``); ``<name>_sink`` is its sink.
        description: what apps show in their device lists.
        latency_ms: the ``pacat`` playback buffer asked of the server (ms).
        max_backlog_ms: audio the pipe to ``pacat`` may hold before blocks are dropped (ms).
    Raises ValueError for a bad name or rate.
    """

    sample_rate: int
    name: str = DEFAULT_NAME
    description: str = DEFAULT_DESCRIPTION
    latency_ms: float = 20.0
    max_backlog_ms: float = 40.0

    def __post_init__(self):
        if not _NAME_RE.match(self.name or ""):
            raise ValueError(f"virtual microphone name {self.name!r}: use 1 to 64 letters, digits, '_', '.', '-'")
        if int(self.sample_rate) <= 0:
            raise ValueError(f"sample_rate must be > 0 Hz, got {self.sample_rate}")
        self._proc: subprocess.Popen | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=64)
        self._writer: threading.Thread | None = None
        self._modules: dict[str, int] = {}
        self.reused = False
        self.dropped_blocks = 0
        self.trimmed_blocks = 0

    def open(self) -> "VirtualMic":
        """Make (or reuse) the sink and source and start feeding the sink.

        Raises VirtualMicError (no server, missing tools, module refused)."""
        self.server = server_name()
        pacat = shutil.which("pacat")
        if pacat is None:
            raise VirtualMicError("pacat not found: apt-get install pulseaudio-utils")
        found = _our_modules(self.name)
        if set(found) == {"sink", "source"}:
            self._modules, self.reused = found, True
        else:
            for idx in found.values():          # half a pair from a killed run: start clean
                _pactl("unload-module", str(idx))
            desc = self.description.replace('"', "").replace("'", "")
            sink = _pactl("load-module", "module-null-sink", f"sink_name={self.name}_sink",
                          f"sink_properties=\"device.description='{desc} output' {_MARK}\"",
                          "channels=1").strip()
            self._modules["sink"] = int(sink)
            try:
                src = _pactl("load-module", "module-remap-source", f"source_name={self.name}",
                             f"master={self.name}_sink.monitor", "channels=1",
                             f"source_properties=\"device.description='{desc}' {_MARK}\"").strip()
            except VirtualMicError:
                _pactl("unload-module", sink)
                self._modules.clear()
                raise
            self._modules["source"] = int(src)
        self._proc = subprocess.Popen(
            [pacat, "--playback", f"--device={self.name}_sink", f"--rate={int(self.sample_rate)}",
             "--channels=1", "--format=float32le", f"--latency-msec={max(1, int(self.latency_ms))}",
             "--client-name=realtime-tse", "--stream-name=extracted voice"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._writer = threading.Thread(target=self._feed, args=(self._proc,), name="virtual-mic", daemon=True)
        self._writer.start()
        atexit.register(self.close)
        return self

    def _feed(self, proc: subprocess.Popen) -> None:
        limit = int(self.max_backlog_ms * 1e-3 * self.sample_rate) * 4   # float32 bytes
        fd = proc.stdin.fileno()
        while True:
            data = self._queue.get()
            if data is None:
                return
            try:
                if _pipe_bytes(fd) > limit:     # pacat is behind: keep the delay, drop this block
                    self.trimmed_blocks += 1
                    continue
                proc.stdin.write(data)
                proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                self.dropped_blocks += 1

    @property
    def is_open(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def write(self, block: np.ndarray) -> None:
        """Send one block [N] (float, the caller's ``sample_rate``) to the virtual microphone.

        Non-finite samples become 0 and the block is clipped to +-1 (the output rule). A block
        that cannot be queued (the feeder is behind) or written (it exited) is counted in
        ``dropped_blocks``; never blocks or raises on the audio path."""
        if self._proc is None:
            return
        x, _ = sanitize(np.asarray(block, dtype=np.float32).reshape(-1))   # NaN/Inf -> 0
        try:
            self._queue.put_nowait(np.clip(x, -1.0, 1.0).astype("<f4").tobytes())
        except queue.Full:
            self.dropped_blocks += 1

    def close(self) -> None:
        """Stop feeding and unload the sink and source where they are still this name's marked
        modules (idempotent; errors ignored: the server may already be gone)."""
        proc, self._proc = self._proc, None
        writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(None)
            writer.join(timeout=2)
        if proc is not None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
        mods, self._modules = self._modules, {}
        try:
            still = _our_modules(self.name) if mods else {}
        except (VirtualMicError, OSError, subprocess.TimeoutExpired):
            still = {}
        for key in ("source", "sink"):
            # only a module that is still ours: pipewire-pulse gives a freed module number to the
            # next module loaded, so the number alone may name someone else's module by now
            if key in mods and still.get(key) == mods[key]:
                try:
                    _pactl("unload-module", str(mods[key]))
                except (VirtualMicError, OSError, subprocess.TimeoutExpired):
                    pass
        try:
            atexit.unregister(self.close)
        except Exception:
            pass

    def __enter__(self) -> "VirtualMic":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
