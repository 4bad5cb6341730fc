"""Measure a live stream's end-to-end delay through a sound server, without a sound card.

The topology (loaded into a running PulseAudio or PipeWire-Pulse server with ``pactl``)::

    harness --> meas_l (remap sink) --> meas [left]  --> meas.monitor [left]  --> dut_mic (remap
                                                                                  source) --> DUT
    DUT ------> meas_r (remap sink) --> meas [right] --> meas.monitor [right]

``meas`` is one stereo null sink. What enters the device under test's microphone (``dut_mic``) is
the left channel of ``meas``; what its speaker plays lands in the right channel; the harness records
both channels of ``meas.monitor`` in one stream, so the two channels share one timeline and the lag
of right behind left is the DUT's microphone-to-speaker delay, with nothing of the harness's own
buffering in it (a harness underflow shows up in both channels alike). Point the DUT at the
topology with ``PULSE_SOURCE=dut_mic`` and ``PULSE_SINK=meas_r`` (read by libpulse when PortAudio
opens the stream) and use PortAudio's ``pulse`` device. On PipeWire the nodes carry their names as
descriptions, which PipeWire's JACK interface shows as client names: a DUT on the JACK path opens
the JACK devices ``dut_mic`` and ``meas_r`` (list PortAudio's devices again after loading).

``window_delays`` cross-correlates the two channels window by window: the delay, its drift over a
long run, and the correlation per window (a window where the DUT dropped or repeated audio shows a
different lag or a low correlation).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..audio.pulse_env import restore_env, save_env

__all__ = ["MeasureSinks", "LoopbackRecorder", "PacatLoopbackRecorder", "window_delays", "DUT_ENV"]

DUT_ENV = {"PULSE_SOURCE": "dut_mic", "PULSE_SINK": "meas_r"}


def _pactl(*args: str, timeout: float = 10.0) -> str:
    r = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=timeout,
                       env=os.environ.copy())
    if r.returncode != 0:
        raise RuntimeError(f"pactl {' '.join(args)} failed: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout.strip()


@dataclass
class MeasureSinks:
    """Loads the measuring topology (module docstring) into the server that ``PULSE_SERVER``
    names; ``unload()`` removes it. ``rate``: Hz of the null sink. Raises ``RuntimeError`` when
    pactl fails (no server, module missing)."""

    rate: int = 16000

    def __post_init__(self):
        self.modules: list[int] = []
        try:
            self._load("module-null-sink", "sink_name=meas", f"rate={self.rate}", "channels=2",
                       "channel_map=front-left,front-right", "sink_properties=device.description=meas")
            for side, ch in (("l", "front-left"), ("r", "front-right")):
                self._load("module-remap-sink", f"sink_name=meas_{side}", "master=meas",
                           "channels=1", f"master_channel_map={ch}", "channel_map=mono",
                           "remix=no", f"sink_properties=device.description=meas_{side}")
            self._load("module-remap-source", "source_name=dut_mic", "master=meas.monitor",
                       "channels=1", "master_channel_map=front-left", "channel_map=mono",
                       "remix=no", "source_properties=device.description=dut_mic")
        except BaseException:
            self.unload()
            raise

    def _load(self, *args: str) -> None:
        self.modules.append(int(_pactl("load-module", *args).split()[-1]))

    def unload(self) -> None:
        for m in reversed(self.modules):
            try:
                _pactl("unload-module", str(m))
            except Exception:  # noqa: BLE001  (server gone: nothing to unload)
                pass
        self.modules = []


class LoopbackRecorder:
    """Plays a signal into ``meas_l`` and records ``meas.monitor`` (both channels) through
    PortAudio's ``pulse`` device: ``start()``, ``play(x)``, ``stop()`` -> (left, right) float32 at
    ``rate`` Hz. Large buffers: the harness's own glitches must be rare on a busy machine (and
    they cannot bias the measurement, see the module docstring). ``max_s``: the longest recording
    (seconds). Raises ``RuntimeError`` when the recording does not start within 10 s."""

    def __init__(self, rate: int = 16000, max_s: float = 60.0, blocksize: int = 1024):
        import sounddevice as sd  # noqa: PLC0415
        self._sd = sd
        self.rate = int(rate)
        self.blocksize = int(blocksize)
        self.rec = np.zeros((int(max_s * rate), 2), np.float32)
        self.n = 0
        self._x: np.ndarray | None = None
        self._p = 0
        self.glitches = 0
        self._si = self._so = None

    def _env(self, source: str, sink: str):
        saved = save_env(("PULSE_SOURCE", "PULSE_SINK"))
        os.environ["PULSE_SOURCE"], os.environ["PULSE_SINK"] = source, sink
        return saved


    def _icb(self, indata, frames, _t, status):
        if status:
            self.glitches += 1
        n = min(frames, len(self.rec) - self.n)
        self.rec[self.n:self.n + n] = indata[:n, :2]
        self.n += n

    def _ocb(self, outdata, frames, _t, status):
        if status:
            self.glitches += 1
        x = self._x
        outdata[:] = 0
        if x is not None:
            m = min(frames, len(x) - self._p)
            if m > 0:
                outdata[:m, 0] = x[self._p:self._p + m]
                self._p += m

    @property
    def done_playing(self) -> bool:
        return self._x is not None and self._p >= len(self._x)

    def start(self) -> "LoopbackRecorder":
        sd = self._sd
        saved = self._env("meas.monitor", "meas_l")
        try:
            for _ in range(3):  # PortAudio's ALSA/pulse capture sometimes fails its first poll
                self.n = 0
                self._si = sd.InputStream(device="pulse", channels=2, samplerate=self.rate,
                                          blocksize=self.blocksize, latency="high",
                                          dtype="float32", callback=self._icb)
                self._si.start()
                t = time.monotonic()
                while self.n == 0 and time.monotonic() - t < 3.0:
                    time.sleep(0.01)
                if self.n:
                    break
                self._si.close()
            else:
                raise RuntimeError("the loopback recording does not start")
            self._so = sd.OutputStream(device="pulse", channels=1, samplerate=self.rate,
                                       blocksize=self.blocksize, latency="high", dtype="float32",
                                       callback=self._ocb)
            self._so.start()
        finally:
            restore_env(saved)
        return self

    def play(self, x: np.ndarray) -> None:
        """Start playing ``x`` (float32 mono at ``rate``) now (returns at once)."""
        self._p = 0
        self._x = np.asarray(x, np.float32)

    def stop(self) -> tuple[np.ndarray, np.ndarray]:
        """Close both streams; returns (left = DUT input, right = DUT output)."""
        for s in (self._so, self._si):
            if s is not None:
                t = threading.Thread(target=lambda s=s: s.close(ignore_errors=True), daemon=True)
                t.start()
                t.join(3.0)
        r = self.rec[:self.n]
        return r[:, 0].copy(), r[:, 1].copy()


class PacatLoopbackRecorder:
    """:class:`LoopbackRecorder`'s job done by two child processes, ``parec`` (records both
    channels of ``meas.monitor`` into a file) and ``pacat`` (plays the signal into ``meas_l``),
    so that the harness runs no thread in the measured process: an in-process harness's
    callbacks take Python's GIL, and one preempted while holding it stalls the stream under test
    (``benchmarks/bench_realtime.py`` measures with this one). Same interface: ``start()``,
    ``play(x)``, ``done_playing``, ``stop()`` -> (left, right) float32 at ``rate`` Hz; ``max_s``
    caps the recording (seconds). ``glitches`` is None: parec does not report overruns (a gap
    would hit both channels alike and cannot bias the delay). Raises ``RuntimeError`` when
    parec / pacat are missing (Debian: pulseaudio-utils) or the recording does not start within
    10 s."""

    def __init__(self, rate: int = 16000, max_s: float = 60.0, latency_ms: int = 100):
        missing = [b for b in ("parec", "pacat") if shutil.which(b) is None]
        if missing:
            raise RuntimeError(f"not installed: {', '.join(missing)} (apt-get install "
                               "pulseaudio-utils)")
        self.rate = int(rate)
        self.max_s = float(max_s)
        self.latency_ms = int(latency_ms)
        self.glitches = None
        self._dir = tempfile.mkdtemp(prefix="rtse-loopback-")
        self._rec_path = os.path.join(self._dir, "rec.f32")
        self._rec = self._play = None

    def _cmd(self, tool: str, device: str, channels: int) -> list[str]:
        return [tool, "-d", device, "--raw", "--format=float32le", f"--rate={self.rate}",
                f"--channels={channels}", f"--latency-msec={self.latency_ms}"]

    def start(self) -> "PacatLoopbackRecorder":
        with open(self._rec_path, "wb") as f:
            self._rec = subprocess.Popen(self._cmd("parec", "meas.monitor", 2), stdout=f,
                                         stderr=subprocess.DEVNULL, env=os.environ.copy())
        t = time.monotonic()
        while os.path.getsize(self._rec_path) == 0:
            if self._rec.poll() is not None or time.monotonic() - t > 10.0:
                self.stop()
                raise RuntimeError("the loopback recording (parec) does not start")
            time.sleep(0.01)
        return self

    def play(self, x: np.ndarray) -> None:
        """Start playing ``x`` (float32 mono at ``rate``) now (returns at once)."""
        path = os.path.join(self._dir, "play.f32")
        np.asarray(x, "<f4").tofile(path)
        with open(path, "rb") as f:
            self._play = subprocess.Popen(self._cmd("pacat", "meas_l", 1), stdin=f,
                                          stderr=subprocess.DEVNULL, env=os.environ.copy())

    @property
    def done_playing(self) -> bool:
        return self._play is not None and self._play.poll() is not None

    def stop(self) -> tuple[np.ndarray, np.ndarray]:
        """End both processes; returns (left = DUT input, right = DUT output)."""
        for p in (self._play, self._rec):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(3.0)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        try:
            r = np.fromfile(self._rec_path, "<f4")
        except OSError:
            r = np.zeros(0, np.float32)
        shutil.rmtree(self._dir, ignore_errors=True)
        r = r[:len(r) // 2 * 2].reshape(-1, 2)[:int(self.max_s * self.rate)]
        return r[:, 0].copy(), r[:, 1].copy()


def window_delays(left: np.ndarray, right: np.ndarray, rate: int, window_s: float = 1.0,
                  hop_s: float = 1.0, max_lag_s: float = 1.0, min_rms: float = 1e-3) -> dict:
    """The lag of ``right`` behind ``left`` (seconds), window by window.

    Each window of ``left`` with RMS above ``min_rms`` (quieter ones are skipped) is
    cross-correlated with ``right`` over lags 0..``max_lag_s``; returns ``t_s`` (window start, s),
    ``lag_s`` and ``corr`` (normalised correlation at that lag), numpy arrays of equal length.
    Raises ``ValueError`` when the signals are shorter than one window + ``max_lag_s``."""
    w, h, m = int(window_s * rate), int(hop_s * rate), int(max_lag_s * rate)
    if len(left) < w + m or len(right) < w + m:
        raise ValueError(f"need at least {window_s + max_lag_s:g} s of both channels")
    ts, lags, corrs = [], [], []
    nfft = 1 << int(np.ceil(np.log2(w + m + w)))
    for k in range(0, min(len(left), len(right)) - w - m + 1, h):
        a = left[k:k + w].astype(np.float64)
        if np.sqrt(np.mean(a * a)) < min_rms:
            continue
        b = right[k:k + w + m].astype(np.float64)
        c = np.fft.irfft(np.fft.rfft(b, nfft) * np.conj(np.fft.rfft(a, nfft)), nfft)[:m + 1]
        lag = int(np.argmax(c))
        seg = b[lag:lag + w]
        den = np.sqrt(np.dot(a, a) * np.dot(seg, seg))
        ts.append(k / rate)
        lags.append(lag / rate)
        corrs.append(float(np.dot(a, seg) / den) if den > 0 else 0.0)
    return {"t_s": np.asarray(ts), "lag_s": np.asarray(lags), "corr": np.asarray(corrs)}
