"""The PipeWire server stopping under a running JACK-path stream, in a process of its own (started
by tests/test_rt_audio_jack_guard.py; which libjack PortAudio uses is fixed when it is first
loaded, and the point is how this process ends).

    python tests/pipewire_vanish_child.py WORK_DIR [SIGNAL] [--stop-first] [--no-guard]

Starts a private PipeWire (pipewire, wireplumber and pipewire-pulse under ``dbus-run-session``,
its runtime folder in WORK_DIR), loads the loopback topology of ``realtime_tse.testing.loopback``
and runs the live engine (the shipped model, 16 ms blocks, no scan) on its JACK devices
``dut_mic`` -> ``meas_r``, recording its output to WORK_DIR/rec.wav. Once the stream has run 2 s
of audio (past its start-up second), the server's whole session gets SIGNAL (``KILL`` or
``TERM``; default ``KILL``); then the engine's error is awaited (20 s at most), ``stop()`` called
and the process left through its normal exit. ``--stop-first``: the engine is stopped before the
server gets the signal (nothing of PortAudio's JACK client is in use when the server goes, only
its exit-time teardown is left). Prints one line per step: ``RUNNING <audio path> <device s>``,
``ENDED <engine error or None>``, ``RECORDED <seconds in rec.wav>``, ``STOPPED``, ``EXITING``;
prints ``SKIP <why>`` and exits 0 where PipeWire cannot run here. ``--no-guard`` turns
``realtime_tse.audio.jack_guard`` off: what the process did without it (SIGABRT at exit from
PortAudio's JACK teardown with ``--stop-first``; a stream that never stops, and an exit that
waits for it forever, without).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


def start_pipewire(work: Path) -> subprocess.Popen:
    """A private PipeWire session with its runtime folder in ``work``
    (``realtime_tse.testing.pipewire``); sets XDG_RUNTIME_DIR, PIPEWIRE_RUNTIME_DIR and
    PULSE_SERVER here. Raises RuntimeError when it does not come up within 20 s."""
    from realtime_tse.testing.pipewire import start_pipewire as start_session

    proc, env = start_session(work, timeout=20)
    os.environ.update(env)
    return proc


def main() -> int:
    work = Path(sys.argv[1])
    sig = getattr(signal, "SIG" + (sys.argv[2] if len(sys.argv) > 2 and not
                                   sys.argv[2].startswith("--") else "KILL"))
    missing = [t for t in ("pipewire", "wireplumber", "pipewire-pulse", "dbus-run-session",
                           "pactl") if shutil.which(t) is None]
    if missing:
        print(f"SKIP not installed: {', '.join(missing)}", flush=True)
        return 0
    try:
        proc = start_pipewire(work)
    except RuntimeError as e:
        print(f"SKIP PipeWire does not start here: {e}", flush=True)
        return 0
    # imported once the server runs: PortAudio's JACK client connects at import
    from realtime_tse.audio import host_path, jack_guard
    from realtime_tse.audio.devices import list_devices
    from realtime_tse.testing.loopback import MeasureSinks
    if "--no-guard" in sys.argv:
        jack_guard.server_gone = lambda: False
        jack_guard.install = lambda sd, again=False: None
    if host_path.state().libjack is None:
        os.killpg(proc.pid, signal.SIGKILL)
        print(f"SKIP no JACK path: {host_path.state().why_not}", flush=True)
        return 0
    MeasureSinks(16000)
    deadline = time.monotonic() + 20
    while not {"dut_mic", "meas_r"} <= {d.name for d in list_devices(refresh=True) if d.jack}:
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            print("SKIP the topology's JACK devices did not appear", flush=True)
            return 0
        time.sleep(0.3)
    import soundfile as sf
    from realtime_tse.live.engine import LiveEngine
    from realtime_tse.model import load_model
    eng = LiveEngine(load_model(device="cpu"), block_ms=16, input_device="dut_mic",
                     output_device="meas_r", audio_path="jack", scan=False, torch_threads=1,
                     boost_priority=False)
    eng.start()
    rec = work / "rec.wav"
    eng.start_recording(rec)
    deadline = time.monotonic() + 20
    while eng.stream.callback_time_s < 2.0 and not eng.error and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"RUNNING {eng.stream.audio_path} {eng.stream.callback_time_s:.2f} s", flush=True)
    if "--stop-first" in sys.argv:
        eng.stop()
        print("STOPPED", flush=True)
    os.killpg(proc.pid, sig)  # the whole session: pipewire, wireplumber, pipewire-pulse
    proc.wait(10)
    deadline = time.monotonic() + 20
    while "--stop-first" not in sys.argv and eng.error is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the stream stalls, fails and tells the engine
    print(f"ENDED {eng.error}", flush=True)
    if "--stop-first" not in sys.argv:
        eng.stop()
        print("STOPPED", flush=True)
    info = sf.info(str(rec))
    print(f"RECORDED {info.frames / info.samplerate:.2f} s", flush=True)
    print("EXITING", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
