"""PortAudio devices (realtime_tse.audio.devices, realtime_tse.audio.device_stream): open failures,
rates per direction, a missing PortAudio, unknown names, stalls told from removal."""

from __future__ import annotations

import math
import sys
import threading
import time

import numpy as np
import pytest

from realtime_tse.audio.devices import AudioDeviceError, list_devices
from realtime_tse.audio.streams import find_device, make_stream


# ----------------------------------------------------------------------------------- devices
def test_a_device_that_fails_to_open_is_reported_not_hidden(monkeypatch):
    """A microphone that cannot open: start() raises the device's own error and stop() after it
    is harmless (it used to raise "cannot join thread before it is started", which hid it)."""
    from realtime_tse.audio import streams as audio_io
    fake = audio_io.DeviceInfo(0, "fake mic", 1, 0, 16000.0, "fake")
    monkeypatch.setattr(audio_io, "find_device", lambda spec, kind="input", **_: fake)
    s = make_stream(lambda b: b, 16000, 160, output_device="null", device_rate=16000,
                    boost_priority=False)

    def fail():
        raise AudioDeviceError("cannot open audio stream: Invalid sample rate")

    monkeypatch.setattr(s, "_open_stream", fail)
    with pytest.raises(AudioDeviceError, match="Invalid sample rate"):
        s.start()
    s.stop()  # no RuntimeError
    assert s.ended and not s.running


class _RatesOnly:
    """A stand-in for sounddevice whose microphone opens at 16 kHz only and whose speaker at
    48 kHz only (the checks raise for any other rate, as PortAudio's "Invalid sample rate")."""

    class CallbackAbort(Exception):
        pass

    @staticmethod
    def check_input_settings(device=None, channels=None, samplerate=None, **kw):
        if samplerate != 16000:
            raise ValueError("Invalid sample rate")

    @staticmethod
    def check_output_settings(device=None, channels=None, samplerate=None, **kw):
        if samplerate != 48000:
            raise ValueError("Invalid sample rate")


def test_each_direction_opens_at_a_rate_its_device_supports(monkeypatch):
    """A 16 kHz-only microphone beside a 48 kHz-only speaker, an 8 kHz model: the input stream
    runs at 16 kHz and the output at 48 kHz, each resampled on its own; a 500 Hz tone fed at
    16 kHz comes out at 48 kHz as a 500 Hz tone of the same level."""
    from realtime_tse.audio import device_stream as audio_device, streams as audio_io
    mic = audio_io.DeviceInfo(0, "mic16", 1, 0, 16000.0, "fake")
    spk = audio_io.DeviceInfo(1, "spk48", 0, 2, 48000.0, "fake")
    monkeypatch.setattr(audio_io, "find_device",
                        lambda spec, kind="input", **_: mic if kind == "input" else spk)
    monkeypatch.setattr(audio_device, "_sd", lambda: _RatesOnly)
    s = make_stream(lambda b: b, 8000, 256, boost_priority=False)
    assert s.streams == "separate" and (s.input_rate, s.device_rate) == (16000, 48000)
    st = s.stats()
    assert st["input_rate"] == 16000 and st["device_rate"] == 48000 and st["resampling"]
    assert s.input_blocksize == 64 and s.device_blocksize == 288  # 4 ms in, 6 ms out
    f0, played, stop = 500.0, [], threading.Event()

    def mic_side():
        pos, t0 = 0, time.monotonic()
        while not stop.is_set():
            x = 0.3 * np.sin(2 * np.pi * f0 * np.arange(pos, pos + 64) / 16000)
            s._callback_input(x.astype(np.float32)[:, None], 64, None, None)
            pos += 64
            time.sleep(max(0.0, t0 + pos / 16000 - time.monotonic()))

    def speaker_side():
        out, pos, t0 = np.zeros((288, 1), np.float32), 0, time.monotonic()
        while not stop.is_set():
            s._callback_output(out, 288, None, None)
            played.append(out[:, 0].copy())
            pos += 288
            time.sleep(max(0.0, t0 + pos / 48000 - time.monotonic()))

    def fake_open():
        s._sdmod = _RatesOnly
        s.device_latency = (0.004, 0.006)
        for fn in (mic_side, speaker_side):
            threading.Thread(target=fn, daemon=True).start()

    monkeypatch.setattr(s, "_open_stream", fake_open)
    s.start()
    try:
        time.sleep(2.0)
    finally:
        stop.set()
        s.stop()
    assert s.error is None, s.stats()
    y = np.concatenate(played)[24000:]  # after the first 0.5 s
    assert len(y) > 24000
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    peak_hz = np.argmax(spec) * 48000 / len(y)
    assert abs(peak_hz - f0) < 5, peak_hz
    rms = float(np.sqrt(np.mean(y ** 2)))
    assert 0.3 / np.sqrt(2) * 0.8 < rms < 0.3 / np.sqrt(2) * 1.2, rms


def test_missing_portaudio_is_reported_with_the_fix(monkeypatch):
    import importlib.abc

    class NoPortAudio(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")
            return None

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoPortAudio(), *sys.meta_path])
    with pytest.raises(AudioDeviceError, match="apt-get install libportaudio2"):
        list_devices()


def test_unknown_device_name_lists_available_devices():
    pytest.importorskip("sounddevice", exc_type=OSError)
    with pytest.raises(AudioDeviceError) as e:
        find_device("no-such-device-xyz", "input")
    msg = str(e.value)
    assert "no-such-device-xyz" in msg and "Available input devices" in msg
    for d in list_devices():
        if d.supports("input"):
            assert d.name in msg
    with pytest.raises(AudioDeviceError, match="index 9999"):
        find_device(9999, "output")


@pytest.mark.audio
def test_pulse_devices_are_found(pulse_null_sink):
    names = [d.name for d in list_devices()]
    assert "pulse" in names
    d = find_device("PULSE", "output")  # case-insensitive
    assert d.name == "pulse" and d.max_output_channels > 0
    assert find_device(d.index, "input").name == "pulse"
    with pytest.raises(AudioDeviceError, match=r"\[\d+\] pulse"):
        find_device("bogus", "output")
    with pytest.raises(ValueError, match="needs input_file"):
        make_stream(lambda b: b, 16000, 256, input_device="null", output_device="null")


def _fake_capture(monkeypatch, listed, **kw):
    """A capture stream on a fake microphone whose first 'stream' stops calling back after
    0.4 s (a stall); reopened streams deliver normally. ``listed``: what the device probe says."""
    from realtime_tse.audio import device_stream as audio_device, streams as audio_io
    fake_dev = audio_io.DeviceInfo(0, "fake mic", 1, 0, 16000.0, "fake")
    monkeypatch.setattr(audio_io, "find_device", lambda spec, kind="input", **_: fake_dev)
    probes = []
    monkeypatch.setattr(audio_device, "devices_listed",
                        lambda names, timeout_s=4.0: probes.append(list(names)) or listed)
    fs, B = 16000, 160
    s = make_stream(lambda b: b, fs, B, output_device="null", device_rate=fs, startup_s=0.1,
                    stall_timeout_s=0.5, boost_priority=False, **kw)
    opens = []

    def fake_open():
        opens.append(time.monotonic())
        s.device_latency = (0.01, 0.0)
        s._stale_limit = math.inf
        limit = 0.4 if len(opens) == 1 else 1e9
        gen = len(opens)

        def source():
            pos, t0 = 0, time.monotonic()
            while not s._stop_evt.is_set() and pos < limit * fs and len(opens) == gen:
                s._callback_duplex(np.zeros((B, 1), np.float32), None, B, None, None)
                pos += B
                d = t0 + pos / fs - time.monotonic()
                if d > 0:
                    time.sleep(d)
        threading.Thread(target=source, daemon=True).start()

    monkeypatch.setattr(s, "_open_stream", fake_open)
    return s, probes, opens


@pytest.mark.parametrize("listed,expect", [(True, None), (False, "no longer listed"),
                                           (None, "does not answer")])
def test_stall_is_told_from_removal(monkeypatch, listed, expect):
    """Callbacks stop for longer than the stall timeout: a device still listed is a stall (the
    stream is reopened, counted, and runs on); one no longer listed is a removal; a probe that
    hangs means the sound server hangs. Each says so."""
    s, probes, opens = _fake_capture(monkeypatch, listed)
    s.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not s.ended and (len(opens) < 2 or s.blocks_processed < 5):
            time.sleep(0.02)
        blocks_at = s.blocks_processed
        time.sleep(0.3)
        st = s.stats()
    finally:
        s.stop()
    assert probes == [["fake mic"]], probes  # asked once, about this device
    if expect is None:
        assert st["error"] is None and st["stall_restarts"] == 1 and len(opens) == 2, st
        assert st["restarts"] == 0  # not a start-up failure
        assert s.blocks_processed > blocks_at  # audio flows again after the restart
    else:
        assert st["stall_restarts"] == 0 and len(opens) == 1, st
        assert expect in s.error and "stopped delivering audio" in s.error, s.error


def test_repeated_stalls_give_up_with_a_message(monkeypatch):
    """Stall restarts are bounded (max_stall_restarts within 60 s)."""
    s, probes, opens = _fake_capture(monkeypatch, True, max_stall_restarts=0)
    s.start()
    try:
        assert s.wait(10), s.stats()
    finally:
        s.stop()
    assert s.stall_restarts == 0 and "still listed but stalled" in s.error, s.error
