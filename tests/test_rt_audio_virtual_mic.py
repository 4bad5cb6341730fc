"""realtime_tse.audio.virtual_mic on a private PulseAudio server and on a private PipeWire (with
pipewire-pulse): a recorder client (parec, or pw-record on PipeWire) hears what is written, a pair
left by a killed run is reused (never duplicated), half a pair is replaced, close removes it, and
no server is a clear error."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from realtime_tse.audio.pulse_env import restore_env, save_env
from realtime_tse.audio.virtual_mic import VirtualMic, VirtualMicError, find_virtual_mics, server_name

RATE = 8000


_SERVER_ENV = ("PULSE_SERVER", "PULSE_RUNTIME_PATH", "PULSE_STATE_PATH", "XDG_RUNTIME_DIR",
               "PIPEWIRE_RUNTIME_DIR", "PIPEWIRE_REMOTE")


@pytest.fixture(scope="module", params=["pulseaudio", "pipewire"])
def sound_server(request):
    """The private server a test runs on (``pulse_null_sink`` or ``pipewire_server``), the one
    this process and its children talk to while it is in use: both fixtures outlive a switch
    between them, so the variables that name a server are set from the one in use here."""
    saved = save_env(_SERVER_ENV)
    name = "pulse_null_sink" if request.param == "pulseaudio" else "pipewire_server"
    server = request.getfixturevalue(name)
    for k in _SERVER_ENV:
        os.environ.pop(k, None)
    os.environ.update(server.env)
    try:
        yield server
    finally:
        restore_env(saved)


def _source_outputs(server) -> int:
    return len(server.pactl("list", "short", "source-outputs").splitlines())


def _wait_for(what: str, ok, timeout: float = 20.0) -> None:
    """Poll ``ok()`` until it is true; fails the test with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)


def _recorder_cmd(recorder: str, name: str, path) -> list[str]:
    if recorder == "parec":
        return ["parec", f"--device={name}", f"--rate={RATE}", "--channels=1",
                "--format=float32le", "--latency-msec=20", "--file-format=wav", str(path)]
    return ["pw-record", "--target", name, "--rate", str(RATE), "--channels", "1",
            "--format", "f32", str(path)]


def _record(server, recorder: str, name: str, write, tmp_path) -> np.ndarray:
    """``recorder`` (parec or pw-record) on the capture device ``name`` while ``write()`` runs,
    from once its stream is connected to 0.5 s after; float32 samples at 8 kHz."""
    path = tmp_path / f"{recorder}.wav"
    before = _source_outputs(server)
    rec = subprocess.Popen(_recorder_cmd(recorder, name, path), stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(f"{recorder}'s stream on {server.kind}", lambda: _source_outputs(server) > before
                  or rec.poll() is not None)
        assert rec.poll() is None, rec.stderr.read()
        time.sleep(0.3)
        write()
        time.sleep(0.5)
    finally:
        rec.send_signal(signal.SIGINT)
        err = rec.communicate(timeout=20)[1]
    y, sr = sf.read(str(path), dtype="float32")
    assert sr == RATE, (sr, err)
    return y.reshape(-1)


def _sources(server) -> list[str]:
    return [ln.split("\t")[1] for ln in server.pactl("list", "short", "sources").splitlines()]


def _gone(server, name: str) -> None:
    """The virtual microphone ``name`` is no module, source or sink of ``server`` any more."""
    assert name not in find_virtual_mics()
    assert f"sink_name={name}_sink" not in server.pactl("list", "short", "modules")
    _wait_for(f"{name} leaves {server.kind}'s sources", lambda: name not in _sources(server))
    sinks = [ln.split("\t")[1] for ln in server.pactl("list", "short", "sinks").splitlines()]
    assert f"{name}_sink" not in sinks


@pytest.mark.parametrize("sound_server, recorder", [("pulseaudio", "parec"), ("pipewire", "parec"),
                                                    ("pipewire", "pw-record")],
                         indirect=["sound_server"])
def test_a_recorder_client_hears_the_virtual_microphone(sound_server, recorder, tmp_path):
    vm = VirtualMic(RATE, name="rtse_test_mic").open()
    try:
        assert "rtse_test_mic" in find_virtual_mics()
        assert _sources(sound_server).count("rtse_test_mic") == 1
        sources = sound_server.pactl("list", "sources")
        assert "realtime-tse (extracted voice)" in sources      # the name apps show
        t = np.arange(RATE * 3) / RATE
        x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        x[100] = np.nan                                          # the output rule holds here too

        def write():
            for k in range(0, len(x), 256):
                vm.write(x[k:k + 256])
                time.sleep(256 / RATE)
        y = _record(sound_server, recorder, "rtse_test_mic", write, tmp_path)
        on = np.flatnonzero(np.abs(y) > 0.05)
        assert len(on), f"nothing arrived ({len(y)} samples recorded)"
        loud = y[on[0]:on[-1]]
        assert len(loud) > 0.5 * RATE, len(loud)                # at least 0.5 s of the tone arrived
        assert np.isfinite(y).all()
        spec = np.abs(np.fft.rfft(loud[:4000] * np.hanning(len(loud[:4000]))))
        assert abs(np.argmax(spec) * RATE / len(loud[:4000]) - 440) < 10
        rms = float(np.sqrt(np.mean(loud ** 2)))
        assert abs(20 * np.log10(rms / (0.3 / np.sqrt(2)))) < 1.0, rms
    finally:
        vm.close()
    _gone(sound_server, "rtse_test_mic")


def test_a_pair_left_by_a_killed_run_is_reused_not_duplicated(sound_server):
    code = ("import time; from realtime_tse.audio.virtual_mic import VirtualMic; "
            "VirtualMic(8000, name='rtse_stale').open(); print('up', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert p.stdout.readline().strip() == "up"
    finally:
        p.kill()
        p.wait(timeout=10)
    assert find_virtual_mics().count("rtse_stale") == 1          # left behind by the killed run
    assert _sources(sound_server).count("rtse_stale") == 1
    vm = VirtualMic(8000, name="rtse_stale").open()
    try:
        assert vm.reused
        assert find_virtual_mics().count("rtse_stale") == 1
        mods = sound_server.pactl("list", "short", "modules")
        assert mods.count("sink_name=rtse_stale_sink") == 1
        assert mods.count("source_name=rtse_stale ") == 1
        assert _sources(sound_server).count("rtse_stale") == 1
    finally:
        vm.close()
    _gone(sound_server, "rtse_stale")


def test_half_a_pair_is_replaced(sound_server):
    idx = sound_server.pactl("load-module", "module-null-sink", "sink_name=rtse_half_sink",
                             "sink_properties=realtime_tse.mark=1", "channels=1")
    vm = VirtualMic(8000, name="rtse_half").open()
    try:
        assert not vm.reused
        mods = sound_server.pactl("list", "short", "modules")
        half = [ln for ln in mods.splitlines() if "sink_name=rtse_half_sink" in ln]
        assert len(half) == 1, half
        assert "device.description=" in half[0], half           # the new sink, not the old half
        assert not any(ln.startswith(f"{idx}\t") and "device.description=" not in ln
                       for ln in mods.splitlines())             # (PipeWire reuses module numbers)
        assert "rtse_half" in find_virtual_mics()
        assert _sources(sound_server).count("rtse_half") == 1
    finally:
        vm.close()
    _gone(sound_server, "rtse_half")


def test_close_leaves_a_module_that_took_its_number(sound_server):
    """The pair is unloaded from outside while the run goes on and another module is loaded
    (on PipeWire it gets the sink's freed number): close leaves that module alone."""
    vm = VirtualMic(8000, name="rtse_taken").open()
    try:
        for idx in (vm._modules["source"], vm._modules["sink"]):
            sound_server.pactl("unload-module", str(idx))
        other = sound_server.pactl("load-module", "module-null-sink", "sink_name=rtse_other_sink",
                                   "channels=1")
        if sound_server.kind == "pipewire":
            assert int(other) in (vm._modules["source"], vm._modules["sink"]), other
    finally:
        vm.close()
    try:
        mods = sound_server.pactl("list", "short", "modules")
        assert any(ln.startswith(f"{other}\t") and "sink_name=rtse_other_sink" in ln
                   for ln in mods.splitlines()), mods
        assert "rtse_taken" not in find_virtual_mics()
    finally:
        sound_server.pactl("unload-module", other, check=False)


def test_no_sound_server_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/nothing-here")
    with pytest.raises(VirtualMicError, match="no sound server is running"):
        server_name()
    with pytest.raises(VirtualMicError, match="install"):
        VirtualMic(8000).open()
    assert find_virtual_mics() == []


def test_bad_names_and_rates_are_refused():
    with pytest.raises(ValueError, match="name"):
        VirtualMic(8000, name="has space")
    with pytest.raises(ValueError, match="sample_rate"):
        VirtualMic(0)
