"""The audio path (realtime_tse.audio.host_path, devices.pick_path, JackDuplex): the setting's check,
the quantum, which path named devices take, and, where PipeWire with its JACK library is installed,
a real run of the JACK path on a private PipeWire (skipped cleanly elsewhere)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from realtime_tse.audio import devices as audio_devices, host_path
from realtime_tse.audio.devices import AudioDeviceError, DeviceInfo
from realtime_tse.audio.jack_duplex import quantum_frames

REPO = Path(__file__).resolve().parents[1]
JACK = host_path.JACK_HOSTAPI


def test_check_audio_path():
    assert host_path.check_audio_path("JACK") == "jack"
    assert host_path.check_audio_path(None) == "auto"
    with pytest.raises(ValueError, match="audio_path must be one of"):
        host_path.check_audio_path("pulse")


def test_quantum_frames():
    assert quantum_frames(48000, "128/48000") == 128
    assert quantum_frames(44100, "128/48000") == 118
    assert quantum_frames(48000, "nonsense") is None
    assert host_path._quantum_env(48000) == "128/48000"


def test_pick_path_and_find_device_keep_to_one_host_api(monkeypatch):
    devs = [DeviceInfo(0, "pulse", 32, 32, 44100.0, "ALSA"),
            DeviceInfo(1, "Built-in Audio", 2, 2, 48000.0, JACK),
            DeviceInfo(2, "USB mic", 1, 0, 48000.0, JACK)]
    monkeypatch.setattr(audio_devices, "list_devices", lambda refresh=False: list(devs))
    monkeypatch.setattr(host_path, "pipewire_default_names",
                        lambda timeout_s=3.0: {"input": "USB mic", "output": "Built-in Audio"})
    assert audio_devices.pick_path("auto", [None, None]) == "jack"
    assert audio_devices.pick_path("auto", ["pulse", None]) == "alsa"  # an ALSA name keeps ALSA
    assert audio_devices.pick_path("auto", ["usb", "built"]) == "jack"
    assert audio_devices.pick_path("auto", [0]) == "alsa"
    assert audio_devices.pick_path("alsa", [None]) == "alsa"
    # the JACK defaults are PipeWire's default source and sink
    assert audio_devices.find_device(None, "input", path="jack").name == "USB mic"
    assert audio_devices.find_device(None, "output", path="jack").name == "Built-in Audio"
    with pytest.raises(AudioDeviceError, match="unknown audio input device 'pulse' on the jack"):
        audio_devices.find_device("pulse", "input", path="jack")
    # no JACK devices: auto is ALSA, jack is an error that says why
    monkeypatch.setattr(audio_devices, "list_devices", lambda refresh=False: devs[:1])
    assert audio_devices.pick_path("auto", [None]) == "alsa"
    with pytest.raises(AudioDeviceError, match="the JACK path is not available"):
        audio_devices.pick_path("jack", [None])


def _pipewire_missing() -> str | None:
    tools = [t for t in ("pipewire", "wireplumber", "pipewire-pulse", "dbus-run-session", "pactl",
                         "parec", "pacat") if shutil.which(t) is None]
    if tools:
        return f"not installed: {', '.join(tools)}"
    if host_path.pipewire_libjack() is None:
        return "PipeWire's libjack (pipewire-jack) is not installed"
    return None


@pytest.mark.skipif(_pipewire_missing() is not None, reason=str(_pipewire_missing()))
def test_jack_path_on_a_private_pipewire(tmp_path):
    """The engine on the JACK path (auto-picked for the topology's JACK devices) through a
    private PipeWire, measured from outside by the loopback harness, 16 ms blocks, 10 s: it
    runs at the graph's rate with the quantum asked for, the delay is far below the ALSA path's
    (generous bound: 110 ms, measured 55 to 62 ms on a loaded 2-core machine) and the delay it
    shows is within 25 ms of the measured one. Runs in a child process: which libjack PortAudio
    uses is fixed when it is first loaded."""
    out = tmp_path / "jack.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_audio_paths.py"),
                        "--one", "pipewire-jack", "--blocks", "16", "--seconds", "10",
                        "--out", str(out)], capture_output=True, text=True, timeout=240)
    assert out.exists(), r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    if "skipped" in res:
        pytest.skip(f"PipeWire does not run here: {res['skipped'][:300]}")
    row = res["rows"][0]
    assert row.get("error") is None, row
    assert res["jack"]["libjack"], res["jack"]
    assert row["audio_path"] == "jack" and row["device_rate"] in (44100, 48000), row
    assert row["delay_ms"] is not None and row["delay_ms"] < 110, row
    assert abs(row["reported_total_ms"] - row["delay_ms"]) < 25, row
