"""PortAudio's JACK client when the PipeWire server goes away while the app runs.

Where PipeWire's libjack is loaded (:mod:`realtime_tse.audio.host_path`), PortAudio's JACK host
API holds one JACK client on the PipeWire server for the life of the process. Once that server
has stopped (the user restarted it, the session ends, it crashed), PortAudio's JACK teardown
fails an assertion and aborts the process (SIGABRT): ``Pa_Terminate``, which sounddevice calls at
exit and when the device list is read again, asserts on ``jack_deactivate`` failing, and closing
a JACK stream asserts on ``jack_port_unregister``; stopping one waits for a process cycle that
never comes (an exit that hangs). So:

- once the server is gone (:func:`server_gone`), the device error says so
  (:meth:`realtime_tse.audio.device_stream.DeviceStream._device_failed`), the JACK streams are
  not stopped or closed (left to the process's end), and the device list is not read again in
  this process (:func:`realtime_tse.audio.devices.list_devices` raises
  :class:`realtime_tse.audio.devices.AudioDeviceError` instead);
- at exit PortAudio is not terminated at all while it holds a JACK client (:func:`install`): its
  teardown adds nothing the operating system does not do as the process ends, and the app cannot
  tell in time whether the server still takes it (a PipeWire server stopping on SIGTERM still
  answered on its socket, from the same process, when ``jack_deactivate`` already failed).

*Gone* means the process listening on the PipeWire socket is not the one that answered when
PortAudio connected (its pid from ``SO_PEERCRED``), or nothing answers there: a server started
again is a new server, which the old client cannot talk to either.
"""
from __future__ import annotations

import atexit
import logging
import socket
import struct

from . import host_path

__all__ = ["install", "server_gone", "GONE_MESSAGE", "STREAM_GONE_MESSAGE"]

log = logging.getLogger(__name__)

GONE_MESSAGE = "the PipeWire server PortAudio's JACK client was connected to has stopped"
# what a stream on it says when it fails (the device error)
STREAM_GONE_MESSAGE = (f"{GONE_MESSAGE}; the audio stopped with it (restart the app once "
                       "PipeWire runs again)")

_server_pid: int | None = None  # the PipeWire server PortAudio's JACK client connected to
_installed = False
_registered = False  # the exit handler is registered (once per process)


def _peer_pid(path: str, timeout_s: float = 1.0) -> int | None:
    """The pid of the process listening on the UNIX socket ``path`` (``SO_PEERCRED``; 0 where the
    operating system does not say), None where nothing answers."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        s.connect(path)
    except OSError:
        s.close()
        return None
    try:
        cred = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", cred)[0])
    except (OSError, AttributeError):  # no SO_PEERCRED (not Linux)
        return 0
    finally:
        s.close()


def _current_pid() -> int | None:
    path = host_path.pipewire_socket()
    return _peer_pid(path) if path else None


def install(sd, again: bool = False) -> None:
    """Note which PipeWire server PortAudio's JACK client (of the sounddevice module ``sd``)
    talks to, and register, once, an exit handler that runs before sounddevice's own and takes
    its place (:func:`_at_exit`: the last stream of sounddevice's own play/record functions is
    stopped while the server is there, PortAudio is not terminated). Call it once sounddevice is
    imported, and with ``again=True`` after PortAudio is initialised again (a new JACK client).
    Nothing is done where PipeWire's libjack is not loaded or PortAudio has no JACK host API."""
    global _installed, _registered, _server_pid
    if (_installed and not again) or not host_path.state().libjack:
        return
    _installed = True
    try:
        apis = [a["name"] for a in sd.query_hostapis()]
    except Exception:  # noqa: BLE001  (PortAudio not initialised: no JACK client)
        apis = []
    if host_path.JACK_HOSTAPI not in apis:
        _server_pid = None
        return
    _server_pid = _current_pid() or 0  # 0: nothing to compare with, only "no answer" tells
    if not _registered:
        _registered = True
        atexit.register(_at_exit, sd)  # atexit runs the latest registered first: before sd's


def server_gone() -> bool:
    """Whether the PipeWire server PortAudio's JACK client connected to has gone (module
    docstring); False where there is no such client (no PipeWire libjack, no JACK host API)."""
    if _server_pid is None:
        return False
    now = _current_pid()
    return now is None or bool(now and _server_pid and now != _server_pid)


def _at_exit(sd) -> None:
    """In place of sounddevice's exit handler while PortAudio holds a JACK client: stop and
    close the stream sounddevice's own play/record functions last started (the app's streams are
    its own to close) unless the server is gone, and leave PortAudio unterminated."""
    handler = getattr(sd, "_exit_handler", None)
    if handler is not None:
        atexit.unregister(handler)
    gone = server_gone()
    if gone:
        log.warning("%s; PortAudio is not terminated at exit (its JACK teardown would abort the "
                    "process)", GONE_MESSAGE)
    last = getattr(sd, "_last_callback", None)
    if last is not None and not gone:
        try:
            last.stream.stop()
            last.stream.close()
        except Exception:  # noqa: BLE001  (at exit: nothing to report to)
            pass
