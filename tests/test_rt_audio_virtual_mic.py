"""realtime_tse.audio.virtual_mic on a private PulseAudio server: a recorder client hears what is written,
a pair left by a killed run is reused (never duplicated), close removes it, and no server is a
clear error."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from realtime_tse.audio.virtual_mic import VirtualMic, VirtualMicError, find_virtual_mics, server_name


def _record(name: str, seconds_after_start: float, write):
    """parec on the virtual microphone while ``write()`` runs; returns float32 samples at 8 kHz."""
    rec = subprocess.Popen(["parec", f"--device={name}", "--rate=8000", "--channels=1",
                            "--format=float32le", "--latency-msec=20"], stdout=subprocess.PIPE)
    time.sleep(0.5)
    write()
    time.sleep(seconds_after_start)
    rec.send_signal(signal.SIGINT)
    data = rec.communicate(timeout=10)[0]
    return np.frombuffer(data, dtype="<f4")


def test_a_recorder_client_hears_the_virtual_microphone(pulse_null_sink):
    vm = VirtualMic(8000, name="rtse_test_mic").open()
    try:
        assert "rtse_test_mic" in find_virtual_mics()
        sources = pulse_null_sink.pactl("list", "sources")
        assert "realtime-tse (extracted voice)" in sources      # the name apps show
        t = np.arange(8000 * 3) / 8000
        x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        x[100] = np.nan                                          # the output rule holds here too

        def write():
            for k in range(0, len(x), 256):
                vm.write(x[k:k + 256])
                time.sleep(256 / 8000)
        y = _record("rtse_test_mic", 0.5, write)
        on = np.flatnonzero(np.abs(y) > 0.05)
        assert len(on), "nothing arrived"
        loud = y[on[0]:on[-1]]
        assert len(loud) > 0.5 * 8000, len(loud)                # at least 0.5 s of the tone arrived
        assert np.isfinite(y).all()
        spec = np.abs(np.fft.rfft(loud[:4000] * np.hanning(len(loud[:4000]))))
        assert abs(np.argmax(spec) * 8000 / len(loud[:4000]) - 440) < 10
        rms = float(np.sqrt(np.mean(loud ** 2)))
        assert abs(20 * np.log10(rms / (0.3 / np.sqrt(2)))) < 1.0, rms
    finally:
        vm.close()
    assert "rtse_test_mic" not in find_virtual_mics()
    assert "rtse_test_mic" not in pulse_null_sink.pactl("list", "short", "sources")


def test_a_pair_left_by_a_killed_run_is_reused_not_duplicated(pulse_null_sink):
    code = ("import time; from realtime_tse.audio.virtual_mic import VirtualMic; "
            "VirtualMic(8000, name='rtse_stale').open(); print('up', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert p.stdout.readline().strip() == "up"
    finally:
        p.kill()
        p.wait(timeout=10)
    assert find_virtual_mics().count("rtse_stale") == 1          # left behind by the killed run
    vm = VirtualMic(8000, name="rtse_stale").open()
    try:
        assert vm.reused
        assert find_virtual_mics().count("rtse_stale") == 1
        mods = pulse_null_sink.pactl("list", "short", "modules")
        assert mods.count("sink_name=rtse_stale_sink") == 1
    finally:
        vm.close()
    assert "rtse_stale" not in find_virtual_mics()


def test_half_a_pair_is_replaced(pulse_null_sink):
    idx = pulse_null_sink.pactl("load-module", "module-null-sink", "sink_name=rtse_half_sink",
                                "sink_properties=realtime_tse.mark=1", "channels=1")
    vm = VirtualMic(8000, name="rtse_half").open()
    try:
        assert not vm.reused
        mods = pulse_null_sink.pactl("list", "short", "modules")
        assert mods.count("sink_name=rtse_half_sink") == 1
        assert not any(line.startswith(f"{idx}\t") for line in mods.splitlines())   # the old half is gone
        assert "rtse_half" in find_virtual_mics()
    finally:
        vm.close()
    assert "rtse_half_sink" not in pulse_null_sink.pactl("list", "short", "sinks")


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
