"""A private PipeWire for tests and benchmarks: pipewire, WirePlumber and pipewire-pulse under
``dbus-run-session`` in a runtime folder and process group of their own, so it never meets the
desktop's sound server and ends as a whole."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

__all__ = ["CLIENT_VARS", "start_pipewire", "stop_pipewire"]

# what points a client at another sound server: left out of the private one's environment
CLIENT_VARS = ("PULSE_SERVER", "PULSE_RUNTIME_PATH", "PULSE_STATE_PATH", "PIPEWIRE_REMOTE")


def start_pipewire(work: Path, timeout: float = 30.0) -> tuple[subprocess.Popen, dict[str, str]]:
    """Start the private PipeWire in ``work`` (an existing folder; the runtime folder is
    ``work``/xdg, the log ``work``/pipewire.log).

    Returns:
        The session's process (the leader of its process group) and the variables that point
        clients at it (``XDG_RUNTIME_DIR``, ``PIPEWIRE_RUNTIME_DIR``, ``PULSE_SERVER``);
        ``os.environ`` is left alone.

    Raises:
        RuntimeError: with the log's tail, when PipeWire's and pipewire-pulse's sockets are not
            both there within ``timeout`` seconds (the session is stopped then).
        FileNotFoundError: ``dbus-run-session`` is not installed.
    """
    work = Path(work)
    rt = work / "xdg"
    rt.mkdir(mode=0o700)
    sock = rt / "pulse" / "native"
    pw_env = {"XDG_RUNTIME_DIR": str(rt), "PIPEWIRE_RUNTIME_DIR": str(rt),
              "PULSE_SERVER": f"unix:{sock}"}
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_VARS}
    env.update(XDG_RUNTIME_DIR=str(rt), PIPEWIRE_RUNTIME_DIR=str(rt))
    with open(work / "pipewire.log", "w") as log:
        proc = subprocess.Popen(["dbus-run-session", "--", "bash", "-c",
                                 "pipewire & sleep 0.5; wireplumber & pipewire-pulse & wait"],
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while not (sock.exists() and (rt / "pipewire-0").exists()):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_pipewire(proc)
            raise RuntimeError((work / "pipewire.log").read_text()[-800:])
        time.sleep(0.2)
    return proc, pw_env


def stop_pipewire(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to the whole session :func:`start_pipewire` made (its process group) and
    wait for it; SIGKILL when it has not ended within 10 s. A session already gone is fine."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(10)
    except ProcessLookupError:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
