"""Which way the live audio reaches the sound server (the *audio path*), and PipeWire's JACK
interface as the low-latency one.

Paths (``LiveConfig.audio_path``, the CLI's ``--audio-path``):

- ``"jack"``: PortAudio's JACK host API on PipeWire's own ``libjack`` (Debian/Ubuntu:
  ``pipewire-jack``). The streams are nodes of the PipeWire graph, called once per graph cycle
  (the *quantum*, asked for with ``PIPEWIRE_LATENCY``), with no pipewire-pulse buffering between
  them and the devices.
- ``"alsa"``: PortAudio's ALSA host API (the ``pulse`` / ``default`` devices: the ALSA plugin to
  PulseAudio or pipewire-pulse, or an ALSA card): the path on PulseAudio and wherever PipeWire's
  libjack is missing. On pipewire-pulse the plugin's devices open at the graph's rate
  (:func:`pipewire_pulse_rate`: the server then neither resamples nor misreports the delay).
- ``"auto"`` (the default): ``"jack"`` where PipeWire runs and its libjack is installed, else
  ``"alsa"``; a device named explicitly keeps the host API it belongs to.

PortAudio opens its JACK client when it is initialised, through whichever ``libjack.so.0`` the
dynamic loader finds first (usually JACK2's, which finds no server). :func:`prepare` therefore
loads PipeWire's ``libjack.so.0`` (by its full path, ``RTLD_GLOBAL``) *before* sounddevice loads
PortAudio: the loader then resolves PortAudio's ``libjack.so.0`` to the library already loaded
(the same effect as starting the program under ``pw-jack``, without re-executing it). It must run
before the first ``import sounddevice`` of the process; :func:`realtime_tse.audio.devices._sd` calls it.

Environment: ``RTSE_AUDIO_PATH=alsa`` keeps PipeWire's libjack out of the process (no JACK host
API at all); ``RTSE_PIPEWIRE_LIBJACK=/path/libjack.so.0`` names the library where it is not in a
usual place; ``PIPEWIRE_LATENCY`` set by the user is kept (else :data:`JACK_QUANTUM_MS`).
"""
from __future__ import annotations

import ctypes
import glob
import json
import logging
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["AUDIO_PATHS", "JACK_HOSTAPI", "JACK_QUANTUM_MS", "PathState", "prepare", "state",
           "check_audio_path", "pipewire_running", "pipewire_socket", "pipewire_libjack",
           "pipewire_default_names", "describe", "SERVER_ALSA_DEVICES", "PIPEWIRE_DEFAULT_RATE",
           "pipewire_pulse_rate"]

log = logging.getLogger(__name__)

AUDIO_PATHS = ("auto", "jack", "alsa")
JACK_HOSTAPI = "JACK Audio Connection Kit"  # PortAudio's name of its JACK host API
# the graph quantum asked for on the JACK path: 128 frames at 48 kHz (2.7 ms). The graph runs at
# the smallest quantum its active nodes ask for (within PipeWire's min/max quantum)
JACK_QUANTUM_MS = 2.7
# PortAudio's ALSA devices that reach the sound server through its ALSA plugin
SERVER_ALSA_DEVICES = ("pulse", "default", "pipewire")
PIPEWIRE_DEFAULT_RATE = 48000  # PipeWire's clock.rate unless configured otherwise (Hz)
_LIBJACK_GLOBS = ("/usr/lib/*/pipewire-0.3/jack/libjack.so.0", "/usr/lib64/pipewire-0.3/jack/libjack.so.0",
                  "/usr/lib/pipewire-0.3/jack/libjack.so.0", "/usr/local/lib/*/pipewire-0.3/jack/libjack.so.0")


@dataclass
class PathState:
    """What :func:`prepare` found and did (process-wide).

    Attributes:
        pipewire: a PipeWire server's socket was found.
        libjack: the path of PipeWire's libjack loaded into this process (None: not loaded).
        quantum: ``PIPEWIRE_LATENCY`` as this process's JACK client asks for it ("128/48000";
            None: not set).
        why_not: why the JACK path is not available ("" where it is).
    """

    pipewire: bool = False
    libjack: str | None = None
    quantum: str | None = None
    why_not: str = "not prepared"


_STATE: PathState | None = None


def check_audio_path(value, name: str = "audio_path") -> str:
    """The one check of the audio path setting: one of :data:`AUDIO_PATHS` (case-insensitive).

    Raises:
        ValueError: anything else.
    """
    v = str(value).strip().lower() if value is not None else "auto"
    if v not in AUDIO_PATHS:
        raise ValueError(f"{name} must be one of {', '.join(AUDIO_PATHS)}, got {value!r}")
    return v


def pipewire_socket() -> str | None:
    """The path of the PipeWire server's socket where a client of this process looks for it
    (``$PIPEWIRE_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR``, else ``/run/user/<uid>``; socket
    ``$PIPEWIRE_REMOTE`` or ``pipewire-0``), None where there is none. Does not connect."""
    remote = os.environ.get("PIPEWIRE_REMOTE", "pipewire-0")
    if os.path.isabs(remote):
        return remote if os.path.exists(remote) else None
    for d in (os.environ.get("PIPEWIRE_RUNTIME_DIR"), os.environ.get("XDG_RUNTIME_DIR"),
              f"/run/user/{os.getuid()}"):
        if d and os.path.exists(os.path.join(d, remote)):
            return os.path.join(d, remote)
    return None


def pipewire_running() -> bool:
    """Whether a PipeWire server's socket exists where a client of this process looks for it
    (:func:`pipewire_socket`). Does not connect."""
    return pipewire_socket() is not None


def pipewire_libjack() -> str | None:
    """The path of PipeWire's ``libjack.so.0`` (``$RTSE_PIPEWIRE_LIBJACK``, else the usual
    multiarch places), None where it is not installed."""
    env = os.environ.get("RTSE_PIPEWIRE_LIBJACK")
    if env:
        return env if os.path.exists(env) else None
    for pattern in _LIBJACK_GLOBS:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def _quantum_env(rate: int = 48000) -> str:
    """``PIPEWIRE_LATENCY`` for :data:`JACK_QUANTUM_MS` at ``rate`` Hz, a power of two frames."""
    frames = 1 << max(4, round(math.log2(JACK_QUANTUM_MS * 1e-3 * rate)))
    return f"{frames}/{rate}"


def prepare() -> PathState:
    """Load PipeWire's libjack into this process where PipeWire runs, so that PortAudio's JACK host
    API reaches the PipeWire graph (module docstring), and ask for the graph quantum
    (``PIPEWIRE_LATENCY``, unless set). Idempotent; returns the :class:`PathState`. Never raises:
    what stands in the way is in ``why_not`` (``RTSE_AUDIO_PATH=alsa``, no PipeWire, no
    pipewire-jack, PortAudio already loaded without it, a library that fails to load)."""
    global _STATE
    if _STATE is not None:
        return _STATE
    st = PathState(pipewire=pipewire_running())
    if os.environ.get("RTSE_AUDIO_PATH", "").strip().lower() == "alsa":
        st.why_not = "RTSE_AUDIO_PATH=alsa"
    elif not st.pipewire:
        st.why_not = "no PipeWire server found"
    else:
        lib = pipewire_libjack()
        if lib is None:
            st.why_not = ("PipeWire's JACK library is not installed (apt-get install "
                          "pipewire-jack; Fedora: pipewire-jack-audio-connection-kit)")
        elif "sounddevice" in sys.modules:
            st.why_not = "PortAudio was loaded before PipeWire's libjack could be"
        else:
            try:
                ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
            except OSError as e:
                st.why_not = f"cannot load {lib}: {e}"
            else:
                st.libjack = lib
                st.why_not = ""
                os.environ.setdefault("PIPEWIRE_LATENCY", _quantum_env())
    st.quantum = os.environ.get("PIPEWIRE_LATENCY")
    _STATE = st
    return st


def state() -> PathState:
    """The :class:`PathState` (prepares on first use)."""
    return prepare()


def _pw_metadata_default(key: str, timeout_s: float) -> str | None:
    r = subprocess.run(["pw-metadata", "-n", "default", "0", key], capture_output=True, text=True,
                       timeout=timeout_s, env=os.environ.copy())
    for line in r.stdout.splitlines():
        if f"key:'{key}'" in line and "value:'" in line:
            value = line.split("value:'", 1)[1].rsplit("' type:", 1)[0]
            try:
                return json.loads(value).get("name")
            except (ValueError, AttributeError):
                return None
    return None


def pipewire_default_names(timeout_s: float = 3.0) -> dict[str, str]:
    """The JACK client names of PipeWire's default source and sink, ``{"input": name, "output":
    name}`` (the nodes' descriptions, which PipeWire's JACK interface shows as client names; a
    side without a default is left out). Uses ``pw-metadata`` and ``pw-dump`` (pipewire-bin);
    an empty dict where they are missing or do not answer in ``timeout_s``."""
    if shutil.which("pw-metadata") is None or shutil.which("pw-dump") is None:
        return {}
    try:
        names = {kind: _pw_metadata_default(key, timeout_s)
                 for kind, key in (("input", "default.audio.source"),
                                   ("output", "default.audio.sink"))}
        if not any(names.values()):
            return {}
        r = subprocess.run(["pw-dump"], capture_output=True, text=True, timeout=timeout_s,
                           env=os.environ.copy())
        objs = json.loads(r.stdout or "[]")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}
    out = {}
    for kind, node in names.items():
        for o in objs:
            props = ((o.get("info") or {}).get("props") or {}) if isinstance(o, dict) else {}
            if node and props.get("node.name") == node:
                out[kind] = str(props.get("node.description") or props.get("node.nick") or node)
                break
    return out


def _run(cmd: list[str], timeout_s: float) -> str:
    """A command's standard output ("" where it is missing, fails or does not answer)."""
    if shutil.which(cmd[0]) is None:
        return ""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                           env=os.environ.copy())
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout if r.returncode == 0 else ""


def pipewire_pulse_rate(timeout_s: float = 3.0) -> int | None:
    """The rate of the PipeWire graph (Hz) behind PortAudio's ALSA ``pulse`` device where the
    PulseAudio server that device talks to is PipeWire's (pipewire-pulse); None elsewhere: no
    PipeWire socket, or ``pactl info`` names another server (PulseAudio itself).

    The rate: ``clock.force-rate`` where set, else ``clock.rate``, of PipeWire's "settings"
    metadata (``pw-metadata``); else the default sample rate ``pactl info`` shows; else
    :data:`PIPEWIRE_DEFAULT_RATE`. Without ``pactl`` the PipeWire socket is taken to serve the
    pulse device too.

    Why the app wants it: pipewire-pulse resamples every stream that is not at the graph's rate,
    and the latency it reports for a record stream then grows as the stream's rate falls
    (PipeWire 0.3.65: 21.5 ms at 8 kHz, 5.5 ms at 16 kHz, 0 at 48 kHz, whatever the quantum,
    fragment size or source), about what its resampler's delay in samples of the graph's rate
    is when counted at the stream's rate. PortAudio's ALSA device passes it on as the age of the
    captured audio, 13 to 16 ms more than a loopback measures at 8 kHz
    (``benchmarks/results/audio_path_delay.json``, ``docs/latency.md``). A stream at the graph's
    rate is not resampled by the server, and the app's own resampler's delay is known."""
    if not pipewire_running():
        return None
    info = _run(["pactl", "info"], timeout_s)
    if shutil.which("pactl") is not None:
        names = [ln.split(":", 1)[1] for ln in info.splitlines() if ln.startswith("Server Name:")]
        if not names or "pipewire" not in names[0].lower():
            return None
    settings = {}
    for line in _run(["pw-metadata", "-n", "settings", "0"], timeout_s).splitlines():
        if "key:'" in line and "value:'" in line:
            key = line.split("key:'", 1)[1].split("'", 1)[0]
            settings[key] = line.split("value:'", 1)[1].split("'", 1)[0]
    for key in ("clock.force-rate", "clock.rate"):
        try:
            rate = int(settings.get(key, "0"))
        except ValueError:
            rate = 0
        if rate > 0:
            return rate
    for line in info.splitlines():
        if line.startswith("Default Sample Specification:"):
            word = line.rsplit(" ", 1)[-1]
            if word.endswith("Hz") and word[:-2].isdigit():
                return int(word[:-2])
    return PIPEWIRE_DEFAULT_RATE


def describe(hostapi: str | None) -> str:
    """The audio path of a device of PortAudio host API ``hostapi`` in words, for the status line
    and ``realtime-tse devices``: "PipeWire JACK (quantum 128/48000)", "ALSA", ..."""
    if hostapi == JACK_HOSTAPI:
        st = state()
        q = f", quantum {st.quantum}" if st.quantum else ""
        return f"PipeWire JACK{q}" if st.libjack else f"JACK{q}"
    return hostapi or "?"
