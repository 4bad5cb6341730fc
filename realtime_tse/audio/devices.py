"""Audio devices (PortAudio through sounddevice, imported lazily): the typed device record
:class:`DeviceInfo`, listing (also from a fresh PortAudio in a child process), lookup by index or
name, and the one error type of the audio path, :class:`AudioDeviceError`."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import host_path, jack_guard

__all__ = ["AudioDeviceError", "DeviceInfo", "list_devices", "find_device", "format_devices",
           "devices_listed", "list_devices_fresh", "NULL_DEVICE", "pick_path"]

NULL_DEVICE = "null"  # output_device="null": no output device, output goes to taps only

log = logging.getLogger(__name__)


class AudioDeviceError(RuntimeError):
    """No PortAudio, unknown device, unsupported settings, or a device that failed while running."""


def _sd():
    """Import sounddevice, turning a missing PortAudio into an AudioDeviceError. The first call
    loads PipeWire's libjack before PortAudio where PipeWire runs
    (:func:`realtime_tse.audio.host_path.prepare`: the JACK path) and guards PortAudio's JACK
    teardown (:mod:`realtime_tse.audio.jack_guard`)."""
    host_path.prepare()
    try:
        import sounddevice as sd  # noqa: PLC0415 (lazy on purpose)
    except OSError as e:  # "PortAudio library not found"
        raise AudioDeviceError(
            f"PortAudio is not available ({e}); install it with `apt-get install libportaudio2` "
            "(Debian/Ubuntu), `brew install portaudio` (macOS); file input with "
            "output_device='null' works without it") from e
    jack_guard.install(sd)  # a PipeWire server that stops must not abort the process
    return sd


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device, as listed: ``index`` (PortAudio's, may change when devices come and
    go), ``name`` (stable; the window keeps devices by name), channel counts, default rate (Hz) and
    host API name (e.g. "ALSA")."""

    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    hostapi: str

    def supports(self, kind: str) -> bool:
        return (self.max_input_channels if kind == "input" else self.max_output_channels) > 0

    @property
    def jack(self) -> bool:
        """A device of PortAudio's JACK host API (on PipeWire: the low-latency path)."""
        return self.hostapi == host_path.JACK_HOSTAPI

    def __str__(self) -> str:
        return (f"[{self.index}] {self.name} ({self.hostapi}, {self.max_input_channels} in, "
                f"{self.max_output_channels} out, {self.default_samplerate:g} Hz)")


def list_devices(refresh: bool = False) -> list[DeviceInfo]:
    """All PortAudio devices. ``refresh=True`` re-initialises PortAudio so that devices that appeared
    since import (e.g. a PulseAudio server started later) are listed; only do that while no stream
    is open. Raises AudioDeviceError instead where the PipeWire server PortAudio's JACK client
    talked to has gone (re-initialising PortAudio would abort the process there)."""
    sd = _sd()
    if refresh:
        if jack_guard.server_gone():
            raise AudioDeviceError(f"cannot list the audio devices again: "
                                   f"{jack_guard.GONE_MESSAGE} (restart the app)")
        sd._terminate()
        sd._initialize()
        jack_guard.install(sd, again=True)  # a new JACK client, maybe on another server
    apis = [a["name"] for a in sd.query_hostapis()]
    out = []
    for i, d in enumerate(sd.query_devices()):
        out.append(DeviceInfo(index=i, name=d["name"],
                              max_input_channels=int(d["max_input_channels"]),
                              max_output_channels=int(d["max_output_channels"]),
                              default_samplerate=float(d["default_samplerate"]),
                              hostapi=apis[d["hostapi"]] if d["hostapi"] < len(apis) else "?"))
    return out


def format_devices(devices: Sequence[DeviceInfo] | None = None, kind: str | None = None) -> str:
    devices = list_devices() if devices is None else devices
    if kind:
        devices = [d for d in devices if d.supports(kind)]
    return "\n".join(f"  {d}" for d in devices) if devices else "  (none)"


def _on_path(d: DeviceInfo, path: str | None) -> bool:
    return path is None or (d.jack if path == "jack" else not d.jack)


def find_device(spec: int | str | DeviceInfo | None, kind: str = "input",
                path: str | None = None) -> DeviceInfo:
    """Find an ``"input"`` or ``"output"`` device by index, exact name or name substring
    (case-insensitive); ``None`` means the default device. ``path``: ``"jack"`` searches the JACK
    host API's devices only (the default: PipeWire's default source / sink, else PortAudio's JACK
    default), ``"alsa"`` all others, None all (an index is taken as it is). Raises
    ``AudioDeviceError`` listing the available devices when there is no (unique) match."""
    if kind not in ("input", "output"):
        raise ValueError(f"kind must be 'input' or 'output', got {kind!r}")
    if isinstance(spec, DeviceInfo):
        return spec
    devices = list_devices()
    if spec is None and path == "jack":
        jack = [d for d in devices if d.jack and d.supports(kind)]
        want = host_path.pipewire_default_names().get(kind)
        named = [d for d in jack if d.name == want]
        if named or jack:
            return (named or jack)[0]
        raise AudioDeviceError(f"no JACK {kind} device. Available {kind} devices:\n"
                               f"{format_devices(devices, kind)}")

    def fail(why: str):
        raise AudioDeviceError(f"{why}. Available {kind} devices:\n{format_devices(devices, kind)}")

    if spec is None:
        sd = _sd()
        idx = sd.default.device[0 if kind == "input" else 1]
        if idx is None or int(idx) < 0:
            try:
                idx = sd.query_devices(kind=kind)["index"]
            except Exception:  # noqa: BLE001  (PortAudioError: no default device)
                fail(f"no default {kind} device")
        spec = int(idx)
    if isinstance(spec, (int, np.integer)) or (isinstance(spec, str) and spec.strip().isdigit()):
        i = int(spec)
        if not 0 <= i < len(devices):
            fail(f"no audio device with index {i}")
        if not devices[i].supports(kind):
            fail(f"device {devices[i]} has no {kind} channels")
        return devices[i]
    if not isinstance(spec, str):
        raise TypeError(f"device spec must be an index or a name, got {type(spec).__name__}")
    s = spec.strip().lower()
    cands = [d for d in devices if d.supports(kind) and _on_path(d, path)]
    exact = [d for d in cands if d.name.lower() == s]
    if exact:
        return exact[0]
    subs = [d for d in cands if s in d.name.lower()]
    if len(subs) == 1:
        return subs[0]
    if len(subs) > 1:
        fail(f"audio {kind} device name {spec!r} is ambiguous: matches "
             + ", ".join(f"[{d.index}] {d.name}" for d in subs))
    fail(f"unknown audio {kind} device {spec!r}" + (f" on the {path} path" if path else ""))
    raise AssertionError  # unreachable


def pick_path(audio_path: str, specs: Sequence[int | str | None]) -> str:
    """The path the devices ``specs`` (names, indices, None = default) are opened on, for the
    setting ``audio_path`` (:mod:`realtime_tse.audio.host_path`): ``"jack"`` where asked, or for
    ``"auto"`` where PortAudio lists JACK devices and every named device is one of them (a name
    that only matches a device of another host API, e.g. ``pulse``, keeps ``"alsa"``); else
    ``"alsa"``.

    Raises:
        AudioDeviceError: ``"jack"`` asked for where PortAudio has no JACK devices (the message
            says why: no PipeWire, no pipewire-jack, ...).
        ValueError: an unknown ``audio_path``.
    """
    want = host_path.check_audio_path(audio_path)
    if want == "alsa":
        return "alsa"
    devices = list_devices()
    if not any(d.jack for d in devices):
        if want == "jack":
            why = host_path.state().why_not or "PortAudio lists no JACK devices"
            raise AudioDeviceError(f"the JACK path is not available: {why}")
        return "alsa"
    if want == "jack":
        return "jack"
    for spec in specs:
        if spec is None:
            continue
        if isinstance(spec, (int, np.integer)) or str(spec).strip().isdigit():
            i = int(spec)
            if 0 <= i < len(devices) and not devices[i].jack:
                return "alsa"
            continue
        s = str(spec).strip().lower()
        if not any(d.jack and s in d.name.lower() for d in devices):
            return "alsa"
    return "jack"


def list_devices_fresh(timeout_s: float = 5.0) -> list[DeviceInfo] | None:
    """The devices PortAudio lists when initialised afresh, in a child process: devices that
    appeared (or vanished) since this process initialised PortAudio are seen, and it is safe while
    a stream is open here. Indices are the child's (may differ from this process's): keep devices
    by name. ``None`` when the child gives no answer within ``timeout_s``."""
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    code = ("import json; from realtime_tse.audio.devices import _sd; sd = _sd(); "
            "apis=[a['name'] for a in sd.query_hostapis()]; "
            "print(json.dumps([[d['name'], d['max_input_channels'], d['max_output_channels'], "
            "d['default_samplerate'], apis[d['hostapi']]] for d in sd.query_devices()]))")
    try:
        # the package importable in the child as here (a checkout that is not installed)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return None
    try:
        rows = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return []  # PortAudio missing or failed to initialise: no devices
    return [DeviceInfo(i, str(n), int(a), int(b), float(sr), str(h))
            for i, (n, a, b, sr, h) in enumerate(rows)]


def devices_listed(names: Sequence[str], timeout_s: float = 4.0) -> bool | None:
    """Whether PortAudio, initialised afresh in a child process, lists every device in ``names``
    (exact names). ``None`` when the child gives no answer within ``timeout_s`` (a sound server
    that hangs makes device probing hang). Safe while this process has a stream open (PortAudio
    cannot be re-initialised in-process then). Takes about 0.2 s on an idle machine."""
    try:
        devs = list_devices_fresh(timeout_s)
    except OSError as e:
        log.warning("cannot list devices in a child process: %s", e)
        return True  # cannot tell: treat as listed (the caller retries a bounded number of times)
    if devs is None:
        return None
    listed = {d.name for d in devs}
    return all(n in listed for n in names)
