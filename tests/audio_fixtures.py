"""Fixtures for tests that need real audio without a sound card (a PulseAudio null sink, a
private PipeWire).

Import from ``tests/conftest.py``::

    from tests.audio_fixtures import pipewire_server, pulse_null_sink  # noqa: F401

``pulse_null_sink`` (session scope) starts a private PulseAudio daemon with ``scripts/pulse.sh``
in its own temporary runtime directory (so it never clashes with another daemon on the machine),
points this process at it (``PULSE_SERVER``, ``PULSE_RUNTIME_PATH`` in ``os.environ``, read by
libpulse whenever PortAudio opens the ALSA "pulse" device), waits until PortAudio lists a ``pulse``
device, yields a ``PulseSink`` and stops the daemon by its pid at the end of the session.
Skips with the reason when pulseaudio or PortAudio is not installed.

``pipewire_server`` (module scope) starts a private PipeWire, WirePlumber and pipewire-pulse under
``dbus-run-session`` in their own runtime folder (``realtime_tse.testing.pipewire``), points this
process at it (``XDG_RUNTIME_DIR``, ``PIPEWIRE_RUNTIME_DIR``, ``PULSE_SERVER``) while the module's
tests run, yields a ``PipeWireServer`` and stops the session's process group at the end. It leaves PortAudio
alone. Skips with :func:`pipewire_missing`'s reason when a tool is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from realtime_tse.audio.pulse_env import restore_env, save_env
from realtime_tse.testing.pipewire import CLIENT_VARS, start_pipewire, stop_pipewire

REPO = Path(__file__).resolve().parents[1]
PULSE_SH = REPO / "scripts" / "pulse.sh"


@dataclass
class PulseSink:
    pid: int
    dir: Path
    env: dict[str, str]  # PULSE_SERVER, PULSE_RUNTIME_PATH, PULSE_STATE_PATH
    sink: str = "vsink"
    monitor: str = "vsink.monitor"
    rate: int = 16000
    device: str = "pulse"  # the PortAudio device name
    extra_modules: list[int] = field(default_factory=list)

    kind: str = "pulseaudio"

    def pactl(self, *args: str, check: bool = True) -> str:
        return _pactl(self.env, args, check)

    def add_null_sink(self, name: str, rate: int = 16000) -> str:
        """Load one more null sink (unloaded when the session ends); returns its name."""
        idx = self.pactl("load-module", "module-null-sink", f"sink_name={name}", f"rate={rate}",
                         "channels=1")
        self.extra_modules.append(int(idx))
        return name


def _pactl(env: dict[str, str], args, check: bool) -> str:
    """``pactl ARGS`` against the server that ``env`` names; its output (RuntimeError on failure
    when ``check``)."""
    r = subprocess.run(["pactl", *args], env={**os.environ, **env}, capture_output=True,
                       text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"pactl {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout.strip()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


_OWNER_PID = "RTSE_TEST_PULSE_PID"  # set while a daemon started by this fixture runs
_OWNER_DIR = "RTSE_TEST_PULSE_DIR"


@pytest.fixture(scope="session")
def pulse_null_sink():
    # Re-entrant: if this module is imported under two names (tests.audio_fixtures from conftest
    # and audio_fixtures from a test module), the second fixture reuses the first daemon.
    pid_s, dir_s = os.environ.get(_OWNER_PID), os.environ.get(_OWNER_DIR)
    if pid_s and dir_s and _pid_alive(int(pid_s)):
        env = {k: os.environ[k] for k in ("PULSE_SERVER", "PULSE_RUNTIME_PATH", "PULSE_STATE_PATH")
               if k in os.environ}
        sink = PulseSink(pid=int(pid_s), dir=Path(dir_s), env=env)
        try:
            yield sink
        finally:
            for idx in sink.extra_modules:
                sink.pactl("unload-module", str(idx), check=False)
        return
    if shutil.which("pulseaudio") is None:
        pytest.skip("pulseaudio is not installed (apt-get install -y --no-install-recommends "
                    "pulseaudio pulseaudio-utils libasound2-plugins libportaudio2)")
    if shutil.which("pactl") is None:
        pytest.skip("pactl is not installed (apt-get install pulseaudio-utils)")
    try:
        import sounddevice  # noqa: F401
    except OSError as e:
        pytest.skip(f"PortAudio is not installed ({e}): apt-get install libportaudio2")
    from realtime_tse.audio.devices import list_devices

    d = Path(tempfile.mkdtemp(prefix="rtse-pulse-"))
    env = {**os.environ, "RTSE_PULSE_DIR": str(d)}
    r = subprocess.run(["bash", str(PULSE_SH), "start"], env=env, capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        shutil.rmtree(d, ignore_errors=True)
        pytest.fail(f"scripts/pulse.sh start failed (rc {r.returncode}):\n{r.stderr}")
    pulse_env = {}
    for line in r.stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            k, v = line[len("export "):].split("=", 1)
            pulse_env[k] = v
    pid = int((d / "runtime" / "pid").read_text().strip())
    saved = save_env((*pulse_env, _OWNER_PID, _OWNER_DIR))
    os.environ.update(pulse_env)
    os.environ[_OWNER_PID] = str(pid)
    os.environ[_OWNER_DIR] = str(d)
    sink = PulseSink(pid=pid, dir=d, env=pulse_env)
    try:
        deadline = time.monotonic() + 15
        while True:
            names = [dev.name for dev in list_devices(refresh=True)]
            if "pulse" in names:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"PortAudio does not list a 'pulse' device (devices: {names}); is "
                            "libasound2-plugins installed?")
            time.sleep(0.2)
        yield sink
    finally:
        for idx in sink.extra_modules:
            sink.pactl("unload-module", str(idx), check=False)
        subprocess.run(["bash", str(PULSE_SH), "stop"], env=env, capture_output=True, timeout=30)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        restore_env(saved)
        try:
            list_devices(refresh=True)  # forget the pulse devices
        except Exception:  # noqa: BLE001
            pass
        shutil.rmtree(d, ignore_errors=True)


def pipewire_missing(*extra_tools: str, jack: bool = True) -> str | None:
    """Why a private PipeWire (with its JACK interface when ``jack``) cannot run here (a skip
    reason), or None: PipeWire, WirePlumber, pipewire-pulse, dbus-run-session, pactl and
    ``extra_tools`` on PATH, and PipeWire's libjack (pipewire-jack) installed when ``jack``."""
    from realtime_tse.audio import host_path  # noqa: PLC0415

    tools = [t for t in ("pipewire", "wireplumber", "pipewire-pulse", "dbus-run-session", "pactl",
                         *extra_tools) if shutil.which(t) is None]
    if tools:
        return f"not installed: {', '.join(tools)}"
    if jack and host_path.pipewire_libjack() is None:
        return "PipeWire's libjack (pipewire-jack) is not installed"
    return None


@dataclass
class PipeWireServer:
    proc: subprocess.Popen
    dir: Path
    env: dict[str, str]  # XDG_RUNTIME_DIR, PIPEWIRE_RUNTIME_DIR, PULSE_SERVER
    kind: str = "pipewire"

    def pactl(self, *args: str, check: bool = True) -> str:
        return _pactl(self.env, args, check)


@pytest.fixture(scope="module")
def pipewire_server(tmp_path_factory):
    why = pipewire_missing(jack=False)
    if why:
        pytest.skip(f"no private PipeWire: {why} (apt-get install -y --no-install-recommends "
                    "pipewire wireplumber pipewire-pulse pipewire-bin dbus pulseaudio-utils)")
    d = tmp_path_factory.mktemp("rtse-pipewire")
    try:
        proc, pw_env = start_pipewire(d)
    except RuntimeError as e:
        pytest.fail(f"a private PipeWire did not come up: {e}")
    saved = save_env((*pw_env, *CLIENT_VARS))
    for k in CLIENT_VARS:
        os.environ.pop(k, None)
    os.environ.update(pw_env)
    try:
        yield PipeWireServer(proc=proc, dir=d, env=pw_env)
    finally:
        restore_env(saved)
        stop_pipewire(proc)
