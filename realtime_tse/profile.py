"""Distance scan ("radar"): the output level of the model over a grid of query distances.

For each query distance ``d`` on a grid the model extracts from the same stretch of audio ``y``;
the level of the output relative to the input,
``10 log10(|x_hat_d|^2 / |y|^2 + tau)`` with ``tau = 1e-2`` (the normalised iSDR of SPEC.md, "Live
distance profile"; it floors at -20 dB and does not depend on the input level), is high where a
talker is and low elsewhere. The paper's distance estimator (Sec. III-C-3) sums these levels within
1 m around each query and takes the peaks: :func:`models.metrics.distance_profile`.

Choices written down here:

* Default grid: ``d_min .. d_max`` of the model in 0.25 m steps (the paper scans 0 to 5 m in 0.5 m
  steps for Table III; a finer grid costs twice as much and draws a smoother radar). The live engine
  uses 0.5 m by default to update twice as often on a CPU.
* Silence: when the audio is quieter than ``SILENCE_DBFS`` (RMS) the levels are meaningless, so
  ``peaks_m`` is empty (nothing detected) while ``isdr_db`` is still returned.
* Batching: queries run in batches of ``batch_size`` copies of the audio (CPU default 1: on a 2-core
  CPU one batch of 11 was slower than 11 single calls, PLATFORM.md; on CUDA the whole grid at once).

:class:`ScanWorker` runs scans beside the audio path in its own low-priority thread; see its
docstring for how it keeps out of the audio worker's way.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from models.metrics import distance_profile, relative_level

TAU = 1e-2              # floor of the normalised iSDR (-20 dB), the tau_inactive of eq. 9
GRID_STEP_M = 0.25      # default grid step of TSEModel.scan
WINDOW_M = 1.0          # indicator window of the paper (sum of levels within 1 m)
SILENCE_DBFS = -60.0    # below this input RMS nothing is detected
MIN_SCAN_S = 0.25       # shortest audio a scan accepts

__all__ = ["ScanResult", "ScanCancelled", "default_grid", "scan_levels", "make_result", "ScanWorker",
           "TAU", "GRID_STEP_M", "SILENCE_DBFS"]


@dataclass
class ScanResult:
    """One distance scan.

    Attributes:
        distances_m: [Q] query distances in metres, ascending.
        isdr_db: [Q] normalised iSDR per query, ``10 log10(|x_hat|^2/|y|^2 + tau)`` in dB.
        peaks_m: detected talker distances (indicator peaks), strongest first; empty on silence.
        indicator: [Q] the paper's indicator (levels summed within 1 m, shifted to be >= 0).
        input_dbfs: RMS level of the scanned audio in dBFS.
        duration_s: length of the scanned audio in seconds.
        elapsed_s: compute time of the scan in seconds.
        timestamp: ``time.time()`` when the scan finished.
    """

    distances_m: np.ndarray
    isdr_db: np.ndarray
    peaks_m: list
    indicator: np.ndarray
    input_dbfs: float = float("nan")
    duration_s: float = 0.0
    elapsed_s: float = 0.0
    timestamp: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        """JSON-able dict (lists of floats)."""
        return {
            "distances_m": [round(float(v), 4) for v in self.distances_m],
            "isdr_db": [round(float(v), 3) for v in self.isdr_db],
            "indicator": [round(float(v), 3) for v in self.indicator],
            "peaks_m": [float(v) for v in self.peaks_m],
            "input_dbfs": round(float(self.input_dbfs), 2),
            "duration_s": round(float(self.duration_s), 3),
            "elapsed_s": round(float(self.elapsed_s), 3),
        }


def default_grid(d_min: float, d_max: float, step: float = GRID_STEP_M) -> np.ndarray:
    """Query distances ``d_min, d_min + step, ..., d_max`` (d_max included when on the grid)."""
    if step <= 0:
        raise ValueError(f"grid step must be positive, got {step}")
    n = int(np.floor((d_max - d_min) / step + 1e-9)) + 1
    return np.round(d_min + step * np.arange(n), 6)


def dbfs(x: np.ndarray) -> float:
    """RMS level in dBFS (-inf guarded to -200)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return -200.0
    return float(10 * np.log10(np.mean(x * x) + 1e-20))


class ScanCancelled(Exception):
    """A scan was abandoned because its ``cancel`` event was set."""


@torch.inference_mode()
def scan_levels(net: torch.nn.Module, mix: torch.Tensor, distances_m: np.ndarray,
                batch_size: int = 1, cancel: threading.Event | None = None) -> np.ndarray:
    """Normalised iSDR per query distance.

    Args:
        net: the model (offline ``forward(mix [B, N], d_q [B])``).
        mix: [N] float32 tensor on the model's device.
        distances_m: [Q] metres.
        batch_size: queries per forward call.
        cancel: checked between batches; when set, :class:`ScanCancelled` is raised.
    Returns:
        [Q] float64 numpy, dB.
    """
    d = torch.as_tensor(np.asarray(distances_m, dtype=np.float32), device=mix.device)
    out = []
    bs = max(1, int(batch_size))
    for i in range(0, len(d), bs):
        if cancel is not None and cancel.is_set():
            raise ScanCancelled()
        dq = d[i:i + bs]
        y = mix[None, :].expand(len(dq), -1)
        x_hat = net(y, dq)
        out.append(relative_level(x_hat.double(), y.double(), tau=TAU).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def make_result(distances_m, levels_db, input_dbfs: float, duration_s: float,
                elapsed_s: float) -> ScanResult:
    """Indicator and peaks of a level profile (paper Sec. III-C-3) wrapped in a :class:`ScanResult`."""
    d = np.asarray(distances_m, dtype=np.float64)
    lv = np.asarray(levels_db, dtype=np.float64)
    if len(d) >= 1:
        ind, peaks = distance_profile(lv, d, window_m=WINDOW_M, n_peaks=2)
    else:
        ind, peaks = np.zeros(0), []
    if input_dbfs < SILENCE_DBFS or not np.all(np.isfinite(lv)) or np.ptp(lv) < 1e-6:
        peaks = []  # silence, or a flat profile: nothing to detect
    return ScanResult(distances_m=d, isdr_db=lv, peaks_m=list(peaks), indicator=np.asarray(ind),
                      input_dbfs=float(input_dbfs), duration_s=float(duration_s),
                      elapsed_s=float(elapsed_s))


class ScanWorker:
    """Runs ``model.scan`` on the last ``seconds`` of input, beside the audio path.

    Every cycle the thread copies the newest ``seconds`` of input from ``get_audio()`` (a callable
    that returns a fresh numpy copy, e.g. a tap's ``latest(n)``; it must not block the audio
    path), scans it and publishes the result through ``on_result`` (and :attr:`latest`). Holding
    no lock while it computes, it can never block the audio worker. It keeps to a duty cycle: after a
    scan that took ``t`` seconds it sleeps at least ``t * (1 - duty) / duty`` (``duty = 0.5``: sleep
    as long as the scan took, so it uses at most about half a core) and at least ``min_interval_s``.
    When compute is short the scans take longer and the update rate drops; the audio does not
    break. ``torch_threads`` is the intra-op thread count it asks for (1 on a CPU); ``nice`` the
    thread's nice value (default +5: below normal programs, so it yields to the audio worker and to
    the desktop; with +10 not one scan finished in 10 s of streaming beside a training run on
    2 shared cores).

    Args:
        model: a :class:`realtime_tse.engine.TSEModel`.
        get_audio: ``get_audio(n_samples) -> np.ndarray`` (may return fewer samples or None).
        seconds: audio per scan.
        distances_m: query grid (None: the model's default grid).
        on_result: callback(ScanResult), called from the scan thread.
    """

    def __init__(self, model, get_audio, seconds: float = 3.0, distances_m=None, on_result=None,
                 duty: float = 0.5, min_interval_s: float = 0.5, torch_threads: int | None = 1,
                 min_seconds: float = 1.0, nice: int | None = 5):
        self.model = model
        self.get_audio = get_audio
        self.seconds = float(seconds)
        self.min_seconds = min(float(min_seconds), self.seconds)
        self.distances_m = distances_m
        self.on_result = on_result
        self.duty = min(max(float(duty), 0.05), 1.0)
        self.min_interval_s = float(min_interval_s)
        self.torch_threads = torch_threads
        self.nice = nice
        self.latest: ScanResult | None = None
        self.count = 0
        self.error: str | None = None
        self.busy_s = 0.0      # total compute time
        self._started = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def rate_hz(self) -> float:
        """Scans per second since start."""
        if not self._started or self.count == 0:
            return 0.0
        return self.count / max(time.monotonic() - self._started, 1e-9)

    @property
    def duty_measured(self) -> float:
        """Fraction of wall time spent scanning since start."""
        if not self._started:
            return 0.0
        return self.busy_s / max(time.monotonic() - self._started, 1e-9)

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="rtse-scan", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to end (a scan in progress stops after its current query batch) and
        wait for it, at most ``timeout`` s."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        if self.nice is not None:
            _lower_priority(self.nice)
        if self.torch_threads and self.model.device.type == "cpu":
            torch.set_num_threads(int(self.torch_threads))
        sr = self.model.sample_rate
        need = int(self.seconds * sr)
        wait = min(self.min_interval_s, 0.2)
        while not self._stop.wait(wait):
            x = self.get_audio(need)
            if x is None or len(x) < int(self.min_seconds * sr):
                wait = 0.2
                continue
            t0 = time.perf_counter()
            try:
                res = self.model.scan(np.asarray(x, dtype=np.float32), self.distances_m,
                                      cancel=self._stop)
            except ScanCancelled:
                return
            except Exception as e:  # noqa: BLE001 - report, never kill the app
                self.error = f"distance scan failed: {e}"
                wait = 2.0
                continue
            dt = time.perf_counter() - t0
            self.busy_s += dt
            self.latest = res
            self.count += 1
            if self.on_result is not None:
                try:
                    self.on_result(res)
                except Exception:  # noqa: BLE001
                    pass
            wait = max(self.min_interval_s, dt * (1.0 - self.duty) / self.duty)


def _lower_priority(nice: int) -> None:
    """Best effort: set this thread's nice value (Linux threads have their own)."""
    try:
        import os
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), int(nice))
    except (AttributeError, OSError, PermissionError):
        pass
