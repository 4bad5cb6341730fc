"""PortAudio's JACK client when the PipeWire server goes away (realtime_tse.audio.jack_guard):
who answers on the socket, what "gone" means, the exit handler that takes sounddevice's place,
no in-process device refresh on a dead server, and, where PipeWire with its JACK library is
installed, the server killed under a running JACK-path engine that records: a clear error, the
recording kept, and the process ends with status 0 (it ended with SIGABRT from PortAudio's JACK
teardown, or hung at exit)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest

from realtime_tse.audio import devices as audio_devices, jack_guard
from realtime_tse.audio.devices import AudioDeviceError
from tests.audio_fixtures import pipewire_missing

REPO = Path(__file__).resolve().parents[1]


def test_peer_pid_names_who_listens(tmp_path):
    path = str(tmp_path / "sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    try:
        assert jack_guard._peer_pid(path) == os.getpid()
    finally:
        srv.close()
    assert jack_guard._peer_pid(path) is None  # the file is left, nobody answers
    assert jack_guard._peer_pid(str(tmp_path / "missing")) is None


@pytest.mark.parametrize("then, now, gone", [
    (None, None, False),      # no JACK client in this process: nothing to guard
    (4242, 4242, False),      # the same server answers
    (4242, None, True),       # nobody answers: stopped
    (4242, 5151, True),       # another process answers: started again, a new server
    (0, 5151, False),         # the first pid was unknown: only "no answer" tells
    (0, None, True),
])
def test_server_gone(monkeypatch, then, now, gone):
    monkeypatch.setattr(jack_guard, "_server_pid", then)
    monkeypatch.setattr(jack_guard, "_current_pid", lambda: now)
    assert jack_guard.server_gone() is gone


class _AtExit:
    def __init__(self):
        self.unregistered = []

    def unregister(self, fn):
        self.unregistered.append(fn)


@pytest.mark.parametrize("gone", [False, True])
def test_exit_handler_takes_sounddevices_place(monkeypatch, gone):
    """sounddevice's exit handler (Pa_Terminate: the JACK teardown that aborts) is always
    unregistered; the last stream of sounddevice's own play/record is closed only while the
    server is there."""
    calls = []
    stream = types.SimpleNamespace(stop=lambda: calls.append("stop"),
                                   close=lambda: calls.append("close"))
    sd = types.SimpleNamespace(_exit_handler=lambda: calls.append("terminate"),
                               _last_callback=types.SimpleNamespace(stream=stream))
    fake = _AtExit()
    monkeypatch.setattr(jack_guard, "atexit", fake)
    monkeypatch.setattr(jack_guard, "server_gone", lambda: gone)
    jack_guard._at_exit(sd)
    assert fake.unregistered == [sd._exit_handler]
    assert calls == ([] if gone else ["stop", "close"])


def test_no_device_refresh_on_a_gone_server(monkeypatch):
    calls = []
    sd = types.SimpleNamespace(_terminate=lambda: calls.append("terminate"),
                               _initialize=lambda: calls.append("initialize"))
    monkeypatch.setattr(audio_devices, "_sd", lambda: sd)
    monkeypatch.setattr(jack_guard, "server_gone", lambda: True)
    with pytest.raises(AudioDeviceError, match="PipeWire server .* has stopped"):
        audio_devices.list_devices(refresh=True)
    assert calls == []


def _pipewire_missing() -> str | None:
    return pipewire_missing()


@pytest.mark.skipif(_pipewire_missing() is not None, reason=str(_pipewire_missing()))
@pytest.mark.parametrize("sig, stop_first", [("KILL", False), ("TERM", True)])
def test_pipewire_stopping_under_the_jack_path_ends_the_process_cleanly(tmp_path, sig,
                                                                       stop_first):
    """tests/pipewire_vanish_child.py: a private PipeWire, the engine on its JACK devices
    recording, the server's session killed (SIGKILL) under the running stream, or stopped
    (SIGTERM) after the engine stopped. The child exits 0, not SIGABRT (-6) or a hang (the
    timeout); under the running stream the engine's error says the PipeWire server stopped,
    and the recording holds the audio from before (2 s of device audio ran, generous: 1.5 s)."""
    cmd = [sys.executable, str(REPO / "tests" / "pipewire_vanish_child.py"), str(tmp_path), sig]
    if stop_first:
        cmd.append("--stop-first")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the process did not end within 240 s: {e.stdout!r:.2000}")
    out = r.stdout
    if out.startswith("SKIP"):
        pytest.skip(out.strip()[:300])
    assert r.returncode == 0, (r.returncode, out[-2000:], r.stderr[-3000:])
    lines = {ln.split(" ", 1)[0]: ln for ln in out.splitlines() if ln}
    assert lines["RUNNING"].startswith("RUNNING jack "), out
    assert {"STOPPED", "EXITING"} <= set(lines), out
    if not stop_first:
        assert "PipeWire server PortAudio's JACK client was connected to has stopped" \
            in lines["ENDED"], out
    assert float(lines["RECORDED"].split()[1]) > 1.5, out
    assert "Assertion" not in r.stderr, r.stderr[-2000:]
