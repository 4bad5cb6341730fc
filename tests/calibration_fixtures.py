"""Test doubles of the room calibration: a play-record callable that plays through a simulated room.

``FakeRoom(rirs, latency_samples, noise)`` is a play-record callable (realtime_tse.calibration.playrec): each
call convolves the signal with the next RIR of ``rirs`` (the last one repeats), delays it by the
loop latency and adds white noise, on the same clock as the signal. ``fail_at`` makes the call with
that index raise ``AudioDeviceError`` (a device that vanishes mid-sweep); ``jump_at`` inserts
``jump`` samples of silence at that sample of the recording (a sound server that inserted audio).

``room_rirs(setup, distances, rt60, fs)`` simulates the RIRs (pyroomacoustics, as the calibration's
reference) shifted so that each direct path arrives exactly ``distance / c`` after the emission,
scaled to a 0.1 peak; ``identity(fs)`` is the loudspeaker touching the microphone.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from realtime_tse.audio.devices import AudioDeviceError
from realtime_tse.models.acoustics import SPEED_OF_SOUND, direct_path_index

FS = 16000


class FakeRoom:
    def __init__(self, rirs, latency_samples: int = 1120, noise: float = 3e-4, gain: float = 1.0,
                 fail_at: int | None = None, jump_at: int | None = None, jump: int = 0, seed: int = 0):
        self.rirs = [np.asarray(h, np.float64) for h in rirs]
        self.latency, self.noise, self.gain = int(latency_samples), float(noise), float(gain)
        self.fail_at, self.jump_at, self.jump = fail_at, jump_at, int(jump)
        self.rng = np.random.default_rng(seed)
        self.calls = 0

    def __call__(self, x, rate):
        k = self.calls
        self.calls += 1
        if self.fail_at is not None and k >= self.fail_at:
            raise AudioDeviceError("the audio device stopped mid-sweep (no audio for 2.0 s, "
                                   "1.3 s of 5.0 s played): was it unplugged?")
        h = self.rirs[min(k, len(self.rirs) - 1)]
        y = fftconvolve(np.asarray(x, np.float64), h)[:len(x)] * self.gain
        y = np.concatenate([np.zeros(self.latency), y])[:len(x)]
        if self.jump_at is not None:
            y = np.concatenate([y[:self.jump_at], np.zeros(self.jump), y[self.jump_at:]])[:len(x)]
        y = y + self.noise * self.rng.standard_normal(len(x))
        return y.astype(np.float32)


def simulate(size, mic, src, rt60, fs=FS, seed=0):
    """A pyroomacoustics RIR (float64), direct path moved to exactly |src - mic| / c, peak 0.1."""
    import pyroomacoustics as pra
    e_abs, max_order = pra.inverse_sabine(rt60, list(size))
    pra.random.seed(seed)
    room = pra.ShoeBox(list(size), fs=fs, materials=pra.Material(e_abs), max_order=max_order)
    room.add_source(list(src))
    room.add_microphone(list(mic))
    room.compute_rir()
    h = np.asarray(room.rir[0][0], np.float64)
    d = float(np.linalg.norm(np.subtract(src, mic)))
    cut = int(round(direct_path_index(h) - d / SPEED_OF_SOUND * fs))
    h = h[cut:]
    return 0.1 * h / np.max(np.abs(h))


def room_rirs(setup, distances, rt60, fs=FS):
    from realtime_tse.calibration.plot import talker_position
    out = []
    for k, d in enumerate(distances):
        src = talker_position(setup.size_m, setup.mic_m, d)
        out.append(simulate(setup.size_m, setup.mic_m, src, rt60, fs, seed=k))
    return out


def identity(fs=FS, peak=0.1):
    h = np.zeros(int(0.01 * fs))
    h[0] = peak
    return h
