"""The live distance scan ("radar"): the output level of the model over a grid of query distances,
kept up to date beside the audio path.

For each query distance ``d`` on a grid the model extracts from the same stretch of audio ``y``;
the level of the output relative to the input, the normalised iSDR
``10 log10(|x_hat_d|^2 / |y|^2 + tau)`` (:mod:`realtime_tse.models.detection`; it floors at -20 dB and does not
depend on the input level), is high where a talker is and low elsewhere. The profile becomes a
:class:`realtime_tse.scan.result.ScanResult` through the one detector
(:func:`realtime_tse.scan.result.make_result`: the paper's indicator peaks and the talkers shown,
none on silence). The query grids are in :mod:`realtime_tse.scan.result`, the offline file scan in
:mod:`realtime_tse.scan.file_scan`.

Two live scanners:

* :class:`StreamingScan` / :class:`StreamingScanWorker` (causal checkpoints, what the live engine
  uses): ONE batched streaming state for the Q query distances, fed only with the audio that arrived
  since the last update. Every update runs ``net.step`` once on the new whole hops (replicated over
  the Q rows) and keeps per-hop output and input energies in a ring covering the last ``window_s``
  seconds; the profile is ``10 log10(E_out / E_in + tau)`` over that ring. Cost per audio second is
  one batched streaming pass of Q rows, independent of the window length (lite-causal, 11 queries,
  one thread of this 2-core CPU: about 0.7 s per audio second, against 6.6 to 11 s per update for
  re-running the offline model on a 3 s window). When the scan falls behind by more than
  ``max_lag_s`` it skips to the newest audio and starts a fresh state (counted in ``skips``).
* :class:`ScanWorker` (bidirectional checkpoints): re-runs the offline model on the last
  ``seconds`` of input every cycle.

Both run beside the audio path in their own low-priority thread, holding no lock while they compute;
see their docstrings for how they keep out of the audio worker's way.
"""
from __future__ import annotations

import math
import threading
import time

import numpy as np
import torch

# the level, the detector and the file scan are defined elsewhere (re-exported for existing callers)
from realtime_tse.models.detection import SILENCE_DBFS, TAU, ScanCancelled, scan_levels  # noqa: F401

from .file_scan import SCAN_MAX_S, file_scan_levels, plan_excerpts  # noqa: F401
from ..safety import sanitize
from ..threads import set_thread_nice as _lower_priority  # the one thread-priority rule
from .result import (GRID_STEP_M, LIVE_GRID_STEP_M, MIN_SCAN_S, ScanResult,  # noqa: F401
                          default_grid, make_result)

__all__ = ["ScanResult", "ScanCancelled", "default_grid", "scan_levels", "make_result", "ScanWorker",
           "StreamingScan", "StreamingScanWorker", "plan_excerpts", "file_scan_levels", "TAU",
           "GRID_STEP_M", "LIVE_GRID_STEP_M", "SILENCE_DBFS", "SCAN_MAX_S", "MIN_SCAN_S"]


class _ScanThread:
    """Thread plumbing shared by the scan workers: start/stop of one daemon thread running
    ``self._run`` and the rates derived from ``count`` and ``busy_s`` since start. Subclasses set
    ``count``, ``busy_s``, ``_started``, ``_stop`` (threading.Event) and ``_thread`` in __init__."""

    @property
    def rate_hz(self) -> float:
        """Updates (scans) per second since start."""
        if not self._started or self.count == 0:
            return 0.0
        return self.count / max(time.monotonic() - self._started, 1e-9)

    @property
    def duty_measured(self) -> float:
        """Fraction of wall time spent computing since start."""
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

    def request_stop(self) -> None:
        """Ask the thread to end after the query batch or step in progress, without waiting
        (safe from any thread, e.g. an audio callback); :meth:`stop` waits for it."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to end (after the query batch or step in progress) and wait for it, at
        most ``timeout`` s."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None


class ScanWorker(_ScanThread):
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
        model: a :class:`realtime_tse.model.TSEModel`.
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


class StreamingScan:
    """Incremental distance profile for causal models: one batched streaming state for Q queries.

    :meth:`feed` takes NEW input audio only (any length at the model rate). Whole hops are
    processed at once by one ``net.step`` on a ``[Q, k*hop]`` batch (the audio replicated over the
    query rows; at most ``max_step_s`` per call to bound memory); the remainder (less than a hop)
    waits for the next call. The step's output lags its input by ``net.stream_delay`` samples, so
    the input is passed through a delay line of that length before its energy is taken: per hop,
    the output energy of each query and the energy of the input it was computed from land in the
    same slot of a ring of the last ``window_s`` seconds (``window_hops`` hops). The profile is
    ``10 log10(sum E_out / sum E_in + tau)`` per query over the ring (:meth:`levels`), the same
    normalised iSDR as :func:`scan_levels`; :meth:`result` adds indicator and peaks
    (:func:`make_result`: none on silence or a flat profile).

    Because the ring holds per-hop energies, the profile does not depend on how the audio was cut
    into pieces (up to float rounding of the network).

    Args:
        net: a causal net with ``cfg.hop``, ``stream_delay``, ``init_state(d_q [Q])`` and
            ``step(block [Q, k*hop], d_q [Q], state) -> (out, state)`` (:class:`realtime_tse.models.net.DQTSNet`).
        sample_rate: rate of the audio fed.
        distances_m: [Q] query grid in metres (sorted here).
        window_s: seconds of audio the profile covers.
        device: torch device of the net (None: that of its first parameter, else CPU).
        max_step_s: longest audio per ``net.step`` call.
        min_s: :meth:`result` returns None until this much audio is in the window.
    Attributes:
        hops_fed: hops processed since the last :meth:`restart`.
        restarts: times the state was re-initialised after the first.
    """

    def __init__(self, net, sample_rate: int, distances_m, window_s: float = 3.0, device=None,
                 max_step_s: float = 1.0, min_s: float = 0.25):
        self.net = net
        self.sample_rate = int(sample_rate)
        self.hop = int(net.cfg.hop)
        self.delay = int(net.stream_delay)
        self.distances_m = np.sort(np.asarray(distances_m, dtype=np.float64).reshape(-1))
        if self.distances_m.size == 0:
            raise ValueError("StreamingScan needs at least one query distance")
        if device is None:
            try:
                device = next(net.parameters()).device
            except (AttributeError, StopIteration):
                device = "cpu"
        self.device = torch.device(device)
        self.window_s = float(window_s)
        self.window_hops = max(1, int(round(self.window_s * self.sample_rate / self.hop)))
        self.max_step = max(1, int(max_step_s * self.sample_rate) // self.hop) * self.hop
        self.min_hops = max(1, min(self.window_hops,
                                   int(math.ceil(min_s * self.sample_rate / self.hop))))
        self._dq = torch.tensor(self.distances_m, dtype=torch.float32, device=self.device)
        q = len(self.distances_m)
        self._e_out = np.zeros((q, self.window_hops), np.float64)
        self._e_in = np.zeros(self.window_hops, np.float64)
        self._filled = 0       # valid slots of the ring
        self._head = 0         # next slot to write
        self.restarts = -1
        self.restart()

    @property
    def n_queries(self) -> int:
        return len(self.distances_m)

    @property
    def window_filled_s(self) -> float:
        """Seconds of audio the ring holds now (up to ``window_s``)."""
        return self._filled * self.hop / self.sample_rate

    def restart(self) -> None:
        """Fresh streaming state (the ring of energies is kept: the profile covers the audio before
        and after the restart until the old hops leave the window)."""
        with torch.inference_mode():
            self._state = self.net.init_state(self._dq)
        self._rem = np.zeros(0, np.float32)            # input samples short of a hop
        self._dline = np.zeros(self.delay, np.float32)  # input delayed like the output
        self.hops_fed = 0
        self.restarts += 1

    def clear(self) -> None:
        """Fresh state and an empty window."""
        self._filled = 0
        self._head = 0
        self._e_out[:] = 0
        self._e_in[:] = 0
        self.restart()
        self.restarts = 0

    def feed(self, x) -> int:
        """Process the new samples ``x`` ([n] float at ``sample_rate``; NaN/Inf are taken as 0);
        returns the hops processed."""
        x, _ = sanitize(np.asarray(x, dtype=np.float32).reshape(-1))
        buf = np.concatenate([self._rem, x]) if len(self._rem) else x
        usable = len(buf) - len(buf) % self.hop
        self._rem = buf[usable:].copy()
        for i in range(0, usable, self.max_step):
            self._step(buf[i:min(usable, i + self.max_step)])
        return usable // self.hop

    @torch.inference_mode()
    def _step(self, seg: np.ndarray) -> None:
        n = len(seg)
        k = n // self.hop
        q = self.n_queries
        xt = torch.from_numpy(np.ascontiguousarray(seg)).to(self.device)
        out, self._state = self.net.step(xt[None].expand(q, n), self._dq, self._state)
        e_out = out.reshape(q, k, self.hop).double().pow(2).sum(-1).cpu().numpy()  # [Q, k]
        if self.delay:
            din = np.concatenate([self._dline, seg])
            self._dline = din[-self.delay:].copy()
            din = din[:n]
        else:
            din = seg
        d64 = din.astype(np.float64).reshape(k, self.hop)
        e_in = (d64 * d64).sum(-1)  # [k]
        self.hops_fed += k
        w = self.window_hops
        if k >= w:
            e_out, e_in, k = e_out[:, -w:], e_in[-w:], w
        idx = (self._head + np.arange(k)) % w
        self._e_out[:, idx] = e_out
        self._e_in[idx] = e_in
        self._head = (self._head + k) % w
        self._filled = min(w, self._filled + k)

    def levels(self) -> np.ndarray:
        """[Q] normalised iSDR over the window, dB (``-20 dB`` floor; NaN-free)."""
        e_in = float(self._e_in.sum())
        e_out = self._e_out.sum(1)
        return 10 * np.log10(e_out / (e_in + 1e-12) + TAU + 1e-12)

    def input_dbfs(self) -> float:
        """RMS level of the (delayed) input in the window, dBFS."""
        n = self._filled * self.hop
        if n == 0:
            return -200.0
        return float(10 * np.log10(self._e_in.sum() / n + 1e-20))

    def result(self, elapsed_s: float = 0.0) -> ScanResult | None:
        """The profile as a :class:`ScanResult` (None until ``min_s`` of audio is in the window)."""
        if self._filled < self.min_hops:
            return None
        return make_result(self.distances_m, self.levels(), self.input_dbfs(),
                           self.window_filled_s, elapsed_s)


class StreamingScanWorker(_ScanThread):
    """Runs a :class:`StreamingScan` beside the audio path, in its own low-priority thread.

    ``source`` is the audio the worker reads, without ever blocking the audio path: an object with
    ``total`` (samples written so far) and ``read(pos, n) -> (x, start)`` (up to ``n`` samples from
    absolute position ``pos``; ``start > pos`` when the oldest of them were overwritten), e.g. the
    live engine's input history. Every cycle the worker waits until ``update_s`` of new audio has
    arrived, feeds all of it (one batched ``net.step``), and publishes the profile of the last
    ``window_s`` seconds through ``on_result`` and :attr:`latest`.

    Falling behind: when more than ``max_lag_s`` of audio is waiting (compute short, e.g. beside a
    training run), it skips to the newest ``update_s`` of audio and re-initialises the streaming
    state (``skips`` counts these); the ring of energies is kept, so the profile keeps updating from
    older and newer audio. One update takes at most the audio that ``max_update_s`` (0.5 s) of
    compute covers at the measured cost per audio second (at least ``update_s``; the rest follows
    in the next update), so updates keep coming at about 2 per second or more even when the scan
    cannot keep up with real time (beside a training run: about 1.4 to 2.2 s of compute per audio
    second measured here). The audio worker never waits for the scan. ``nice`` (+5) and ``torch_threads`` (1 on a CPU)
    as for :class:`ScanWorker`.

    Update interval: 0.25 s by default. Measured on this 2-core CPU (lite-causal, 11 queries, one
    torch thread), a step over 0.25 s of audio took 0.17 s and over 0.5 s 0.38 s: the cost per audio
    second does not fall with longer steps, so the shorter interval gives 4 updates/s at the same
    load.

    Attributes mirror :class:`ScanWorker`: ``latest``, ``count``, ``error``, ``busy_s``,
    ``rate_hz``, ``duty_measured``; plus ``skips`` and ``audio_s`` (audio fed, seconds).
    """

    def __init__(self, model, source, window_s: float = 3.0, distances_m=None, on_result=None,
                 update_s: float = 0.25, max_lag_s: float = 1.0, torch_threads: int | None = 1,
                 nice: int | None = 5, poll_s: float = 0.02, max_update_s: float = 0.5,
                 net=None, sample_rate=None):
        self.model = model
        self.net = net if net is not None else model.net
        self.sample_rate = int(sample_rate if sample_rate is not None else model.sample_rate)
        if distances_m is None:
            distances_m = default_grid(*model.distance_range, LIVE_GRID_STEP_M)
        self.scan = StreamingScan(self.net, self.sample_rate, distances_m, window_s=window_s,
                                  device=getattr(model, "device", None),
                                  max_step_s=max(1.0, max_lag_s) + update_s)
        self.source = source
        self.on_result = on_result
        hop = self.scan.hop
        self.update_samples = max(1, int(round(update_s * self.sample_rate / hop))) * hop
        self.max_lag = max(int(max_lag_s * self.sample_rate), self.update_samples)
        self.torch_threads = torch_threads
        self.nice = nice
        self.poll_s = float(poll_s)
        self.latest: ScanResult | None = None
        self.count = 0
        self.skips = 0
        self.error: str | None = None
        self.busy_s = 0.0
        self.audio_s = 0.0
        self.max_update_s = float(max_update_s)
        self._rtf = None       # smoothed compute time per audio second
        self._pos = None
        self._started = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def distances_m(self) -> np.ndarray:
        return self.scan.distances_m

    def stats(self) -> dict:
        return {"updates": self.count, "rate_hz": self.rate_hz, "skips": self.skips,
                "busy_s": self.busy_s, "audio_s": self.audio_s,
                "core_share": self.duty_measured,
                "rtf": self.busy_s / self.audio_s if self.audio_s else None,
                "queries": self.scan.n_queries, "window_s": self.scan.window_s}

    def _run(self) -> None:
        if self.nice is not None:
            _lower_priority(self.nice)
        if self.torch_threads and self.scan.device.type == "cpu":
            torch.set_num_threads(int(self.torch_threads))
        while not self._stop.is_set():
            try:
                done = self.update()
            except Exception as e:  # noqa: BLE001 - report, never kill the app
                self.error = f"distance scan failed: {e}"
                self._pos = None
                self._stop.wait(2.0)
                continue
            if not done:
                self._stop.wait(self.poll_s)

    def update(self) -> bool:
        """One cycle (also callable directly, without the thread): read the audio that arrived,
        feed it, publish. Returns False when less than ``update_s`` was waiting (nothing done)."""
        total = int(self.source.total)
        if self._pos is None or total < self._pos:  # first call, or the source was restarted
            self._pos = total
            self.scan.clear()
        pending = total - self._pos
        if pending < self.update_samples:
            return False
        if pending > self.max_lag:
            self._skip(total)
            pending = total - self._pos
        # at most what fits the compute budget of one update (oldest first: the state stays
        # continuous; the rest waits for the next update, which follows at once)
        n = min(pending, self._budget_samples())
        x, start = self.source.read(self._pos, n)
        if start != self._pos:  # the oldest samples were overwritten meanwhile: a gap
            self.scan.restart()
            self.skips += 1
        x = np.asarray(x, dtype=np.float32)
        if len(x) == 0:
            return False
        t0 = time.perf_counter()
        self.scan.feed(x)
        self._pos = start + len(x)
        res = self.scan.result()
        dt = time.perf_counter() - t0
        self.busy_s += dt
        self.audio_s += len(x) / self.sample_rate
        r = dt * self.sample_rate / max(len(x), 1)
        self._rtf = r if self._rtf is None else 0.7 * self._rtf + 0.3 * r
        if res is not None:
            res.elapsed_s = dt
            self.latest = res
            self.count += 1
            if self.on_result is not None:
                try:
                    self.on_result(res)
                except Exception:  # noqa: BLE001
                    pass
        return True

    def _budget_samples(self) -> int:
        """Audio one update may take: ``max_update_s`` of compute at the measured cost per audio
        second (whole hops, at least ``update_s``)."""
        if not self._rtf:
            return self.max_lag
        hop = self.scan.hop
        n = int(self.max_update_s / self._rtf * self.sample_rate) // hop * hop
        return int(min(self.max_lag, max(self.update_samples, n)))

    def _skip(self, total: int) -> None:
        self._pos = total - self.update_samples
        self.scan.restart()
        self.skips += 1
