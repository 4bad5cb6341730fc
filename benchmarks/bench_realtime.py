"""Live engine figures: streaming RTF per block size and thread count, a long run through a
PulseAudio loopback (xruns, measured input-to-output delay, algorithmic latency), and the rate of
the distance scan while streaming.

    .venv/bin/python benchmarks/bench_realtime.py [--model CKPT] [--servers pulseaudio,pipewire]
                                                  [--e2e-seconds 12] [--long-seconds 120]
                                                  [--out benchmarks/results/realtime.json]

Model: the shipped checkpoint when present (or --model), else a randomly initialised lite-causal
net (speed does not depend on the weights); the JSON says which. Sections:

1. ``streaming``: ``Streamer.process`` (the engine's real block path: numpy in, model step,
   numpy out) on 8 s of the demo, blocks of 16/32/64/128 ms, 1 and 2 torch threads: RTF = compute
   time / audio time, and per-block mean / 95th percentile / max in ms.
2. ``end_to_end``: ``LiveEngine`` (shipped model, distance scan on) between the measuring sinks of
   ``realtime_tse/testing/loopback.py`` on a private PulseAudio and on PipeWire-Pulse (under
   ``dbus-run-session``), demo speech played in: the microphone-to-speaker delay per 1 s window by
   cross-correlation of two channels recorded in one stream (no harness delay to subtract), its
   drift, xruns after the first 2 s, drops and stall restarts, and the delay the engine itself
   reports (``total_latency_ms``). The stream options (duplex vs separate streams, PortAudio
   latency, device period, jitter buffer, device rate) are compared at 64 and 32 ms blocks; the
   default settings then run ``--long-seconds`` as they are and with one more core kept busy.
3. ``scan_file``: the same engine fed from the demo file (no devices) for 20 s with 2 torch
   threads (and 1, ``scan_file_1_thread``), for the scan rate without PulseAudio: updates per
   second of wall time, the scan's compute per audio second (``scan_rtf``), skip-aheads, and the
   audio worker's RTF while scanning. Causal models use the incremental streaming scan
   (``realtime_tse.scan.live_scan.StreamingScanWorker``), bidirectional ones the window scan.
   ``--only scan`` runs this section alone and updates it in an existing JSON.
4. ``end_to_end_scan_modes`` (``--only scan-modes``, PulseAudio): the default settings for
   ``--long-seconds`` at 64 and 32 ms blocks with the distance scan off, in its own process (the
   default, ``realtime_tse.scan.process``) and in a thread of the audio process
   (``RTSE_SCAN_PROCESS=0``, the fallback when no child process can start), interleaved per block size;
   ``--busy-core`` adds the same with one more core kept busy. Merged into an existing JSON.
5. ``gil_probe`` (``--only gil``): what the scan costs the audio process itself, without sound
   server noise: a file-fed engine (no devices) per scan mode, and beside it a probe thread that
   wakes every 8 ms like a PortAudio callback (nice -10 where allowed, as the stream's threads) and
   records how late it runs (scheduling + waiting for the GIL), with the audio worker's time per
   block. The scan child is ready before measuring (its start-up is not in it); rounds interleave
   the modes. Merged into an existing JSON.
6. ``end_to_end_sched`` (``--only sched [--servers pulseaudio|pipewire] [--seconds 30]
   [--rounds 1] [--busy busy|idle|both]``): the default stream per block size (64, 32 ms) x scan
   off / on (child process) x audio-thread scheduling (``SCHED_FIFO`` vs nice -10, through
   ``RTSE_RT_SCHED``, ``realtime_tse/threads.py``), by default with one more core kept busy;
   rows per server (``server`` field), merged into an existing JSON. ``--variants`` compares
   stream settings (``STREAM_VARIANTS``: device periods in ms for output and input, jitter
   buffer, PortAudio latency, device rate, ``PULSE_LATENCY_MSEC``), ``--sink-rate 48000`` runs
   the measuring null sink at a typical sound server's rate, ``--key`` names the JSON key by what
   it compares (e.g. ``end_to_end_periods_jitter_rate``: device periods, jitter buffer and device
   rate; ``end_to_end_jitter_shrink``: the jitter buffer that steps back; ``end_to_end_long_busy_core``:
   10-minute runs with one more core busy) and ``--name`` the entry under it. Variants with ``pw_settings`` set PipeWire graph settings
   (``pw-metadata -n settings``, e.g. a forced quantum) for their row only.
7. ``end_to_end_long`` (``--only long --minutes 10``): one long run (64 ms blocks, scan on,
   SCHED_FIFO by default; ``--long-block-ms``, ``--long-busy``, ``--long-variant`` (a label of
   ``STREAM_VARIANTS``)): delay at start and at end
   (median of the first / last minute), their difference (drift), range and xruns after 2 s;
   per server (or ``--name``), merged into ``--key`` (default ``end_to_end_long``) of an
   existing JSON.

Every end-to-end row keeps a ``trace`` of what the stream reported while it ran (every second,
every 5 s in runs over a minute): the reported total delay, the jitter buffer, the output queued
at the last write, the device's output delay, the captured audio's age and the xruns so far.

The machine is recorded with its load average: on a shared CPU every figure is noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from realtime_tse.audio.pulse_env import restore_env, save_env  # noqa: E402
from realtime_tse.threads import AUDIO_RT_PRIORITY, RT_ENV, audio_policy  # noqa: E402
from realtime_tse.live.engine import LiveEngine  # noqa: E402
from realtime_tse.model import TSEModel, default_model_path, load_model, resample  # noqa: E402

DEMO = REPO / "assets" / "demo" / "demo_mix.wav"


def get_model(path: str | None) -> tuple[TSEModel, str]:
    p = Path(path) if path else default_model_path()
    if p.is_file():
        return load_model(p, device="cpu"), f"checkpoint {p.relative_to(REPO) if p.is_relative_to(REPO) else p}"
    from models import ModelConfig, build_model
    from models.checkpoint import save_checkpoint
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp()) / "random-lite-causal.safetensors"
    save_checkpoint(tmp, build_model(ModelConfig.preset("lite-causal")).eval(), {"note": "random"})
    return load_model(tmp, device="cpu"), "random lite-causal (shipped checkpoint absent)"


def demo(rate: int, seconds: float) -> np.ndarray:
    x, sr = sf.read(DEMO, dtype="float32")
    x = resample(x, sr, rate)
    reps = int(np.ceil(seconds * rate / len(x)))
    return np.tile(x, reps)[: int(seconds * rate)]


# ------------------------------------------------------------------------------------ 1. RTF
def bench_streaming(model: TSEModel, seconds: float = 8.0) -> list[dict]:
    x = demo(model.sample_rate, seconds)
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for block_ms in (16, 32, 64, 128):
            s = model.stream(block_ms=block_ms, aligned=True)
            B = s.block_samples
            for i in range(0, 4 * B, B):  # warm-up
                s.process(x[i:i + B], 1.0)
            s.reset()
            times = []
            for i in range(0, len(x) - len(x) % B, B):
                t = time.perf_counter()
                s.process(x[i:i + B], 1.0)
                times.append(time.perf_counter() - t)
            t_ms = 1e3 * np.asarray(times)
            blk_ms = 1e3 * B / model.sample_rate
            rows.append({"threads": threads, "block_ms": blk_ms, "block_samples": B,
                         "rtf": float(t_ms.sum() / (len(times) * blk_ms)),
                         "mean_ms": float(t_ms.mean()), "p95_ms": float(np.percentile(t_ms, 95)),
                         "max_ms": float(t_ms.max()),
                         "algorithmic_latency_ms": 1e3 * s.latency_s})
            r = rows[-1]
            print(f"  threads {threads}  block {blk_ms:5.0f} ms  RTF {r['rtf']:.3f}  "
                  f"mean {r['mean_ms']:6.2f} ms  p95 {r['p95_ms']:6.2f} ms  max {r['max_ms']:6.2f} ms"
                  f"  latency {r['algorithmic_latency_ms']:.0f} ms", flush=True)
    torch.set_num_threads(1)
    return rows


# ------------------------------------------------------------------------------------ 2. end-to-end
class SoundServer:
    """A private sound server for the loopback: ``"pulseaudio"`` (scripts/pulse.sh) or
    ``"pipewire"`` (pipewire + wireplumber + pipewire-pulse under ``dbus-run-session``, in its own
    XDG_RUNTIME_DIR). Sets PULSE_SERVER & co. in os.environ; ``stop()`` ends it by its pid /
    process group. Raises RuntimeError (with the reason) when it cannot run here."""

    def __init__(self, kind: str):
        self.kind = kind
        self.dir = Path(tempfile.mkdtemp(prefix=f"rtse-bench-{kind}-"))
        self.saved = save_env(("PULSE_SERVER", "PULSE_RUNTIME_PATH", "PULSE_STATE_PATH",
                               "XDG_RUNTIME_DIR"))
        self.proc = None
        if kind == "pulseaudio":
            self._start_pulseaudio()
        elif kind == "pipewire":
            self._start_pipewire()
        else:
            raise ValueError(kind)
        from realtime_tse.audio.streams import list_devices
        deadline = time.monotonic() + 20
        while "pulse" not in [d.name for d in list_devices(refresh=True)]:
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{kind}: PortAudio lists no 'pulse' device")
            time.sleep(0.3)
        info = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=10)
        self.version = next((ln.split(":", 1)[1].strip() for ln in info.stdout.splitlines()
                             if ln.startswith("Server Name")), "?")

    def _start_pulseaudio(self):
        env = {**os.environ, "RTSE_PULSE_DIR": str(self.dir)}
        r = subprocess.run(["bash", str(REPO / "scripts" / "pulse.sh"), "start"], env=env,
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"pulse.sh start failed: {r.stderr.strip()}")
        for line in r.stdout.splitlines():
            if line.startswith("export "):
                k, v = line[len("export "):].split("=", 1)
                os.environ[k] = v

    def _start_pipewire(self):
        missing = [b for b in ("pipewire", "pipewire-pulse", "wireplumber", "dbus-run-session")
                   if shutil.which(b) is None]
        if missing:
            raise RuntimeError(f"not installed: {', '.join(missing)} (apt-get install pipewire "
                               "pipewire-pulse wireplumber dbus)")
        rt = self.dir / "xdg"
        rt.mkdir(mode=0o700)
        env = {**os.environ, "XDG_RUNTIME_DIR": str(rt), "PIPEWIRE_RUNTIME_DIR": str(rt)}
        for k in ("PULSE_SERVER", "PULSE_RUNTIME_PATH", "PULSE_STATE_PATH"):
            env.pop(k, None)
        log = open(self.dir / "pipewire.log", "w")
        self.proc = subprocess.Popen(
            ["dbus-run-session", "--", "bash", "-c",
             "pipewire & sleep 0.5; wireplumber & pipewire-pulse & wait"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        sock = rt / "pulse" / "native"
        deadline = time.monotonic() + 20
        while not sock.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.dir / "pipewire.log").read_text()[-1500:]
                self.stop()
                raise RuntimeError(f"pipewire-pulse did not come up: {tail}")
            time.sleep(0.2)
        os.environ["XDG_RUNTIME_DIR"] = str(rt)
        os.environ["PULSE_SERVER"] = f"unix:{sock}"

    def stop(self):
        if self.kind == "pulseaudio":
            subprocess.run(["bash", str(REPO / "scripts" / "pulse.sh"), "stop"],
                           env={**os.environ, "RTSE_PULSE_DIR": str(self.dir)},
                           capture_output=True, timeout=30)
        elif self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)  # the session we started (its own process group)
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, 9)
        restore_env(self.saved)
        shutil.rmtree(self.dir, ignore_errors=True)


def _busy_core():
    """One process spinning on a core (the 'another core is busy' condition); stop by its pid."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def bench_e2e(model: TSEModel, seconds: float, block_ms: float = 64, busy: bool = False,
              bypass: bool = True, scan: bool = True, label: str = "", sink_rate: int = 16000,
              **stream_kwargs) -> dict:
    """The engine (shipped model, distance scan on as in the app) between ``dut_mic`` and
    ``meas_r`` of ``realtime_tse.testing.loopback``'s topology, demo speech played in for ``seconds``.
    Delay per 1 s window by cross-correlation of the recorded left (engine input) and right
    (engine output) channels. ``bypass``: the engine plays its dry input delayed exactly like the
    extraction (the model still runs), so the correlation is exact; the wet path has the same
    delay by construction (``Streamer.delay_samples``). Xruns counted after the first 2 s."""
    from realtime_tse.testing.loopback import DUT_ENV, MeasureSinks, PacatLoopbackRecorder, window_delays
    fs = 16000
    x = demo(fs, seconds)
    sinks = MeasureSinks(fs)
    extra_env = dict(stream_kwargs.pop("env", {}))
    period_ms = stream_kwargs.pop("period_ms", None)
    if period_ms is not None:  # the device period in ms at the rate the devices will run
        rate = stream_kwargs.get("device_rate") or model.sample_rate
        stream_kwargs["device_blocksize"] = int(round(period_ms * 1e-3 * rate))
    in_period_ms = stream_kwargs.pop("input_period_ms", None)
    if in_period_ms is not None:  # the capture's own period (separate streams)
        rate = stream_kwargs.get("device_rate") or model.sample_rate
        stream_kwargs["input_blocksize"] = int(round(in_period_ms * 1e-3 * rate))
    # PipeWire only: graph settings for this row (pw-metadata -n settings 0 KEY VALUE), put back
    # to 0 (= not forced) afterwards; e.g. {"clock.force-quantum": 128}
    pw_settings = dict(stream_kwargs.pop("pw_settings", {}))
    for k, v in pw_settings.items():
        subprocess.run(["pw-metadata", "-n", "settings", "0", k, str(v)], capture_output=True,
                       timeout=10, check=True)
    saved = save_env((*DUT_ENV, *extra_env))
    trace: list = []
    trace_s = 5.0 if seconds > 60 else 1.0
    spin = _busy_core() if busy else None
    eng = None
    load_start = os.getloadavg()[0]
    granted_policy, boosted = None, []
    demoted0, demoted = audio_policy()["demoted"], 0
    try:
        os.environ.update(DUT_ENV)
        os.environ.update(extra_env)
        eng = LiveEngine(model, block_ms=block_ms, input_device="pulse", output_device="pulse",
                         distance_m=1.0, scan=scan, torch_threads=1, **stream_kwargs)
        eng.bypass = bypass
        t_open = time.monotonic()
        eng.start()
        while eng.stream.callback_time_s < 1.0 and time.monotonic() - t_open < 20 \
                and not eng.error:
            time.sleep(0.05)
        if eng.error:
            return {"label": label, "error": eng.error}
        t_first = time.monotonic() - t_open - eng.stream.callback_time_s
        # the harness in child processes: no thread of it takes this process's GIL
        h = PacatLoopbackRecorder(fs, max_s=seconds + 15).start()
        t_play = eng.stream.callback_time_s
        h.play(x)
        t_trace = time.monotonic()
        while not h.done_playing and not eng.error:
            time.sleep(0.1)
            if time.monotonic() - t_trace >= trace_s:  # what the stream holds, over time
                t_trace = time.monotonic()
                s_ = eng.stats()
                trace.append([round(eng.stream.callback_time_s, 1),
                              round(s_["total_latency_ms"], 1), round(s_["jitter_ms"], 1),
                              round(1e3 * s_["output_queue_s"], 1),
                              round(1e3 * s_["output_latency_s"], 1),
                              round(1e3 * s_["input_latency_s"], 1), s_["xruns"]])
        time.sleep(1.0)
        left, right = h.stop()
        st = eng.stats()
        events = eng.xrun_events()
        granted_policy = audio_policy()["policy"]  # the latest request: this stream's threads
        demoted = audio_policy()["demoted"] - demoted0  # taken off FIFO by the guard
        boosted = list(getattr(eng.stream, "priority_boosted", []))
    finally:
        if eng is not None:
            eng.stop()
        if spin is not None:
            spin.kill()
            spin.wait()
        restore_env(saved)
        sinks.unload()
        for k in pw_settings:
            subprocess.run(["pw-metadata", "-n", "settings", "0", k, "0"], capture_output=True,
                           timeout=10)
    d = window_delays(left, right, fs)
    good = d["corr"] > (0.9 if bypass else 0.3)
    lags = 1e3 * d["lag_s"][good]
    late = [e for e in events if e[0] > 2.0]
    early = sum(1 for e in events if e[0] <= 2.0)
    edge = max(3, min(60, len(lags) // 10))  # windows averaged for the delay at start / at end
    res = {
        "label": label, "block_ms": eng.streamer.block_ms, "seconds": seconds, "busy_core": busy,
        "sink_rate": int(sink_rate), "device_blocksize": st["device_blocksize"],
        "bypass": bypass, "scan": scan, "streams": st["streams"],
        "portaudio_latency": st["latency_request"], "device_rate": st["device_rate"],
        "device_block_ms": 1e3 * st["device_blocksize"] / st["device_rate"],
        "input_block_ms": 1e3 * st.get("input_blocksize", st["device_blocksize"])
        / st["device_rate"],
        "jitter_ms": st["jitter_ms"],
        "delay_ms": float(np.median(lags)) if len(lags) else None,
        "delay_min_ms": float(lags.min()) if len(lags) else None,
        "delay_max_ms": float(lags.max()) if len(lags) else None,
        "drift_ms": float(lags.max() - lags.min()) if len(lags) else None,
        "windows": int(len(d["lag_s"])), "windows_matched": int(good.sum()),
        "delay_first_window_ms": float(1e3 * d["lag_s"][0]) if len(d["lag_s"]) else None,
        "reported_total_ms": st["total_latency_ms"],
        "algorithmic_ms": st["algorithmic_latency_ms"],
        "delay_start_ms": float(np.median(lags[:edge])) if len(lags) else None,
        "delay_end_ms": float(np.median(lags[-edge:])) if len(lags) else None,
        "drift_end_minus_start_ms": (float(np.median(lags[-edge:]) - np.median(lags[:edge]))
                                     if len(lags) else None),
        "delay_p1_p99_ms": ([float(np.percentile(lags, 1)), float(np.percentile(lags, 99))]
                            if len(lags) else None),
        "edge_windows": int(min(edge, len(lags))),
        # the event log keeps the first 4096 xruns: count the late ones from the total
        "xruns_total": st["xruns"], "xruns_after_2s": max(len(late), st["xruns"] - early),
        "xruns_after_10s": sum(1 for e in events if e[0] > 10.0),
        "xrun_seconds_after_2s": len({int(e[0]) for e in late}),  # bursts: seconds with any
        "xrun_kinds_after_2s": {k: sum(1 for e in late if e[1] == k) for k in
                                sorted({e[1] for e in late})},
        "first_xruns": [(round(t, 3), k) for t, k in events[:8]],
        "output_drops": st["output_drops"], "output_rebuffers": st["output_rebuffers"],
        "jitter_shrinks": st.get("jitter_shrinks"), "output_trims": st.get("output_trims"),
        "output_samples_trimmed": st.get("output_samples_trimmed"),
        "input_backlog_drops": st["input_backlog_drops"],
        "input_startup_drops": st["input_startup_drops"],
        "input_samples_dropped": st["input_samples_dropped"],
        "max_input_age_ms": 1e3 * st["max_input_latency_s"],
        "stall_restarts": st["stall_restarts"], "restarts": st["restarts"],
        "first_callback_s": t_first, "harness": "parec/pacat (child processes)",
        "harness_glitches": h.glitches,
        "rtf": st["rtf"], "max_block_ms": 1e3 * st["max_process_s"],
        "scan_updates": eng.scan_count,
        "scan_mode": getattr(eng._scanner, "mode", "thread") if eng._scanner is not None else None,
        "scan_process_restarts": getattr(eng._scanner, "process_restarts", None),
        "error": st["error"], "load_average": os.getloadavg()[0],
        "load_average_start": load_start,
        "played_from_device_s": t_play, "env": extra_env, "pw_settings": pw_settings,
        "scheduling": granted_policy, "priority_boosted": boosted, "rt_demoted": demoted,
        # every trace_s of device time: [device s, reported total ms, jitter buffer ms, output
        # queued at the last write ms, device output delay ms, captured audio's age ms, xruns]
        "trace_fields": ["device_s", "reported_total_ms", "jitter_ms", "output_queue_ms",
                         "output_latency_ms", "input_age_ms", "xruns"],
        "trace": trace,
    }
    return res


def _print_e2e(r: dict) -> None:
    if "delay_ms" not in r:
        print(f"  {r.get('label')}: {r}", flush=True)
        return
    f = lambda v: "  n/a" if v is None else f"{v:5.1f}"  # noqa: E731
    print(f"  {r['label']:<28} block {r['block_ms']:3.0f} ms  delay {f(r['delay_ms'])} ms "
          f"(drift {f(r['drift_ms'])}, reported {r['reported_total_ms']:5.1f})  xruns>2s "
          f"{r['xruns_after_2s']:4d} {r['xrun_kinds_after_2s']}  drops out/in "
          f"{r['output_drops']}/{r['input_backlog_drops']}  rebuf {r['output_rebuffers']}  "
          f"shrink/trim {r.get('jitter_shrinks')}/{r.get('output_trims')}  "
          f"stalls {r['stall_restarts']}  windows {r['windows_matched']}/{r['windows']}  "
          f"load {r['load_average']:.1f}", flush=True)


OPTIONS = {  # label -> make_stream settings compared by the e2e section
    "duplex high (old default)": dict(streams="duplex", latency="high", prefill_blocks=2),
    "duplex low, 8 ms periods": dict(streams="duplex", latency="low", device_blocksize=128,
                                     jitter_ms=16),
    "separate low, 8 ms, jitter 16": dict(streams="separate", latency="low"),
    "separate low, 4 ms, jitter 12": dict(streams="separate", latency="low",
                                          device_blocksize=64, jitter_ms=12),
    "separate 30 ms, 8 ms, jitter 16": dict(streams="separate", latency=0.03),
    "separate low, 16 ms, jitter 24": dict(streams="separate", latency="low",
                                           device_blocksize=256, jitter_ms=24),
    "separate low, 8 ms, jitter 32": dict(streams="separate", latency="low", jitter_ms=32),
    "separate low, 8 kHz devices": dict(streams="separate", latency="low", device_rate=8000),
    "default, PULSE_LATENCY_MSEC=30": dict(env={"PULSE_LATENCY_MSEC": "30"}),
    "duplex high, PULSE_LATENCY_MSEC=30": dict(streams="duplex", latency="high",
                                               prefill_blocks=2,
                                               env={"PULSE_LATENCY_MSEC": "30"}),
}


def bench_servers(model, servers, seconds, long_seconds, options, busy_long=True) -> dict:
    out = {}
    for kind in servers:
        print(f"2. end-to-end through {kind}", flush=True)
        try:
            srv = SoundServer(kind)
        except Exception as e:  # noqa: BLE001
            print(f"  {kind} cannot run here: {e}", flush=True)
            out[kind] = {"skipped": str(e)}
            continue
        rows = []
        try:
            print(f"  server: {srv.version}", flush=True)
            for label in options:
                for block in (64, 32):
                    r = bench_e2e(model, seconds, block_ms=block, label=label, **OPTIONS[label])
                    _print_e2e(r)
                    rows.append(r)
            best = [r for r in rows if r.get("streams") == "separate"
                    and r.get("label") == "separate low, 8 ms, jitter 16"]
            long = []
            if long_seconds > 0:
                for block in (64, 32):
                    for busy in ((False, True) if busy_long else (False,)):
                        r = bench_e2e(model, long_seconds, block_ms=block, busy=busy,
                                      label=f"default, {'busy core' if busy else 'as is'}, long")
                        _print_e2e(r)
                        long.append(r)
            wet = bench_e2e(model, min(seconds, 10.0), block_ms=64, bypass=False,
                            label="default, wet output")
            _print_e2e(wet)
            out[kind] = {"server": srv.version, "options": rows, "long": long, "wet": wet,
                         "default": best}
        finally:
            srv.stop()
    return out


SCAN_MODES = {  # label -> bench_e2e arguments of section 4
    "scan off": dict(scan=False),
    "scan in a process": dict(scan=True, env={"RTSE_SCAN_PROCESS": "1"}),
    "scan in a thread": dict(scan=True, env={"RTSE_SCAN_PROCESS": "0"}),
}


def bench_scan_modes(model, seconds: float, busy_core: bool = False) -> dict:
    """Section 4: end-to-end delay, drift and xruns per scan mode (``SCAN_MODES``) at 64 and
    32 ms blocks through a private PulseAudio, the modes interleaved within each block size (and
    again with one more core busy when ``busy_core``). Raises RuntimeError when PulseAudio cannot
    run here."""
    srv = SoundServer("pulseaudio")
    rows = []
    load0 = os.getloadavg()
    try:
        print(f"4. scan modes through {srv.version}, {seconds:g} s each", flush=True)
        for busy in ((False, True) if busy_core else (False,)):
            for block in (64, 32):
                for label, kw in SCAN_MODES.items():
                    r = bench_e2e(model, seconds, block_ms=block, busy=busy,
                                  label=label + (", busy core" if busy else ""),
                                  scan=kw["scan"], env=dict(kw.get("env", {})))
                    _print_e2e(r)
                    rows.append(r)
    finally:
        srv.stop()
    return {"server": srv.version, "seconds": seconds, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_average_start": load0, "load_average_end": os.getloadavg(), "rows": rows}


SCHED_MODES = {  # label -> environment of section 6 (realtime_tse/threads.py reads RTSE_RT_SCHED)
    "fifo": {RT_ENV: str(AUDIO_RT_PRIORITY)},
    "nice": {RT_ENV: "0"},
}
STREAM_VARIANTS = {  # label -> LiveConfig stream settings of section 6 (--variants)
    "default": {},
    "jitter 16": dict(jitter_ms=16),
    # device_blocksize is in device samples: 64 = 4 ms at 16 kHz, but 8 ms at the shipped
    # model's 8 kHz (these two labels were measured so, at 8 kHz, in end_to_end_sched_variants)
    "4 ms periods, jitter 12": dict(device_blocksize=64, jitter_ms=12),
    "4 ms periods, jitter 16": dict(device_blocksize=64, jitter_ms=16),
    # period_ms: the device period in ms at whatever rate the devices run (bench_e2e converts)
    "8 ms periods": dict(period_ms=8, input_period_ms=8),
    "8 ms periods, jitter 16": dict(period_ms=8, input_period_ms=8, jitter_ms=16),
    "8 ms periods, jitter 12 ms": dict(period_ms=8, input_period_ms=8, jitter_ms=12),
    "8 ms out, 4 ms in, jitter 16 ms": dict(period_ms=8, input_period_ms=4, jitter_ms=16),
    "8 ms out, 2 ms in, jitter 16 ms": dict(period_ms=8, input_period_ms=2, jitter_ms=16),
    "8 ms out, 4 ms in, jitter 12 ms": dict(period_ms=8, input_period_ms=4, jitter_ms=12),
    "4 ms periods": dict(period_ms=4, input_period_ms=4),
    "4 ms periods, jitter 16 ms": dict(period_ms=4, input_period_ms=4, jitter_ms=16),
    "4 ms periods, jitter 12 ms": dict(period_ms=4, input_period_ms=4, jitter_ms=12),
    "4 ms periods, latency 16 ms, jitter 12 ms": dict(period_ms=4, input_period_ms=4,
                                                      latency=0.016, jitter_ms=12),
    "2 ms periods, jitter 12 ms": dict(period_ms=2, input_period_ms=2, jitter_ms=12),
    # small output periods in a deeper device buffer (PortAudio latency), duplex
    "4 ms periods, latency 24 ms, jitter 12 ms": dict(period_ms=4, input_period_ms=4,
                                                      latency=0.024, jitter_ms=12),
    "4 ms periods, latency 24 ms, jitter 8 ms": dict(period_ms=4, input_period_ms=4,
                                                     latency=0.024, jitter_ms=8),
    "4 ms periods, latency 32 ms, jitter 8 ms": dict(period_ms=4, input_period_ms=4,
                                                     latency=0.032, jitter_ms=8),
    "8 ms out, 4 ms in, latency 32 ms, jitter 8 ms": dict(period_ms=8, input_period_ms=4,
                                                          latency=0.032, jitter_ms=8),
    "6 ms out, 4 ms in, jitter 12 ms": dict(period_ms=6, input_period_ms=4, jitter_ms=12),
    "6 ms out, 3 ms in, jitter 12 ms": dict(period_ms=6, input_period_ms=3, jitter_ms=12),
    "6 ms out, 3 ms in, jitter 9 ms": dict(period_ms=6, input_period_ms=3, jitter_ms=9),
    # 6 ms output periods (an 18 ms device buffer) with the 16 ms jitter buffer
    "6 ms out, 4 ms in, jitter 16 ms": dict(period_ms=6, input_period_ms=4, jitter_ms=16),
    # PipeWire: the graph's quantum forced small (5.3 ms at 48 kHz is what our streams get)
    "PipeWire quantum 128": dict(pw_settings={"clock.force-quantum": 128}),
    "PipeWire quantum 64": dict(pw_settings={"clock.force-quantum": 64}),
    "duplex, 8 ms periods, jitter 16 ms": dict(streams="duplex", latency="low", period_ms=8,
                                               jitter_ms=16),
    "duplex, 4 ms periods, jitter 16 ms": dict(streams="duplex", latency="low", period_ms=4,
                                               jitter_ms=16),
    "PULSE_LATENCY_MSEC=10": dict(env={"PULSE_LATENCY_MSEC": "10"}),
    "devices at 16 kHz": dict(device_rate=16000),
    "devices at 48 kHz": dict(device_rate=48000),
    "devices at 48 kHz, 8 ms periods, jitter 16": dict(device_rate=48000, period_ms=8,
                                                        input_period_ms=8, jitter_ms=16),
    "devices at 48 kHz, 8 ms out, 4 ms in, jitter 16 ms": dict(device_rate=48000, period_ms=8,
                                                                input_period_ms=4, jitter_ms=16),
}
SCAN_ONOFF = {"scan off": dict(scan=False, env={}),
              "scan on (process)": dict(scan=True, env={"RTSE_SCAN_PROCESS": "1"})}


def bench_sched(model, kind: str, seconds: float, rounds: int = 1, blocks=(64, 32),
                busy_modes=(True,), sched_modes=tuple(SCHED_MODES), variants=("default",),
                scans=tuple(SCAN_ONOFF), sink_rate: int = 16000) -> dict:
    """Section 6 (``--only sched``): the default stream through one sound server (``kind``) per
    block size x scan off / on (child process) x audio-thread scheduling (``SCHED_FIFO`` vs nice
    -10, ``SCHED_MODES``), FIFO and nice back to back so that both see the same machine;
    ``busy_modes``: with (True) and/or without (False) one more process spinning on a core.
    ``variants``: stream settings of ``STREAM_VARIANTS`` (device period, jitter buffer), each
    row labelled with its variant. ``sink_rate``: Hz of the measuring null sink. Rounds repeat
    every row; within a round the variants of one block size run back to back. Raises
    RuntimeError when the server cannot run here."""
    srv = SoundServer(kind)
    rows = []
    load0 = os.getloadavg()
    try:
        print(f"6. scheduling through {srv.version}, {seconds:g} s each, {rounds} round(s)",
              flush=True)
        for rnd in range(rounds):
            for busy in busy_modes:
                for block in blocks:
                    for scan_label in scans:
                        skw = SCAN_ONOFF[scan_label]
                        for variant in variants:
                            for sched in sched_modes:
                                label = (f"{scan_label}, {sched}"
                                         + ("" if variant == "default" else f", {variant}")
                                         + (", busy core" if busy else ""))
                                var = dict(STREAM_VARIANTS[variant])
                                r = bench_e2e(model, seconds, block_ms=block, busy=busy,
                                              label=label, scan=skw["scan"],
                                              env={**skw["env"], **SCHED_MODES[sched],
                                                   **var.pop("env", {})},
                                              sink_rate=sink_rate, **var)
                                r.update(server=kind, server_version=srv.version, round=rnd,
                                         date=time.strftime("%Y-%m-%d %H:%M:%S"),
                                         scan_label=scan_label, scheduling_asked=sched,
                                         variant=variant)
                                _print_e2e(r)
                                rows.append(r)
    finally:
        srv.stop()
    return {"server": srv.version, "seconds": seconds, "rounds": rounds,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average_start": load0,
            "load_average_end": os.getloadavg(), "rows": rows}


def bench_long(model, kind: str, minutes: float, block_ms: float = 64, scan: bool = True,
               sched: str = "fifo", busy: bool = False, variant: str = "default") -> dict:
    """Section 7 (``--only long --minutes M``): one run of the default settings (or
    ``variant``, a label of ``STREAM_VARIANTS``) for ``minutes`` (scan on in its child process
    by default): delay at start and at end (median of the first / last minute's windows), their
    difference (drift) and the range, xruns after 2 s."""
    srv = SoundServer(kind)
    try:
        print(f"7. {minutes:g}-minute run through {srv.version}, {block_ms:g} ms blocks, scan "
              f"{'on' if scan else 'off'}, {sched}", flush=True)
        var = dict(STREAM_VARIANTS[variant])
        env = {**(SCAN_ONOFF["scan on (process)"]["env"] if scan else {}), **SCHED_MODES[sched],
               **var.pop("env", {})}
        r = bench_e2e(model, 60.0 * minutes, block_ms=block_ms, busy=busy, scan=scan, env=env,
                      label=f"{minutes:g} min, scan {'on' if scan else 'off'}, {sched}"
                            + ("" if variant == "default" else f", {variant}")
                            + (", busy core" if busy else ""), **var)
        r.update(server=kind, server_version=srv.version, scheduling_asked=sched,
                 minutes=minutes, variant=variant, date=time.strftime("%Y-%m-%d %H:%M:%S"))
        _print_e2e(r)
        if r.get("delay_ms") is not None:
            print(f"  delay at start {r['delay_start_ms']:.1f} ms, at end {r['delay_end_ms']:.1f}"
                  f" ms (drift {r['drift_end_minus_start_ms']:+.1f} ms; p1..p99 "
                  f"{r['delay_p1_p99_ms'][0]:.1f}..{r['delay_p1_p99_ms'][1]:.1f}, min..max "
                  f"{r['delay_min_ms']:.1f}..{r['delay_max_ms']:.1f})", flush=True)
    finally:
        srv.stop()
    return r


def _late_probe(stop: threading.Event, period_s: float, out: list) -> None:
    """Wake every ``period_s`` like an audio callback; append how late each wake-up was (s)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
    except OSError:
        pass
    nxt = time.perf_counter()
    while not stop.is_set():
        nxt += period_s
        d = nxt - time.perf_counter()
        if d > 0:
            time.sleep(d)
        late = time.perf_counter() - nxt
        out.append(late)
        if late > period_s:
            nxt = time.perf_counter()  # a long stall: do not count every missed period


def bench_gil(model, seconds: float, rounds: int = 2, block_ms: float = 64) -> dict:
    """Section 5 (module docstring): per round and scan mode of ``SCAN_MODES``, the probe's
    lateness (p50 / p99 / max ms, share over 2 ms) and the worker's time per block (p50 / p95 /
    max ms) over ``seconds`` of a file-fed engine at ``block_ms``."""
    rows = []
    load0 = os.getloadavg()
    for rnd in range(rounds):
        for label, kw in SCAN_MODES.items():
            saved = save_env(kw.get("env", {}))
            os.environ.update(kw.get("env", {}))
            try:
                eng = LiveEngine(model, block_ms=block_ms, input_file=DEMO, output_device="null",
                                 loop=True, distance_m=1.0, scan=kw["scan"], torch_threads=1)
                times = []
                inner = eng.stream.process_block

                def timed(blk, _f=inner, _t=times):
                    t = time.perf_counter()
                    y = _f(blk)
                    _t.append(time.perf_counter() - t)
                    return y
                eng.stream.process_block = timed
                eng.start()
                sc = eng._scanner
                t0 = time.monotonic()
                while sc is not None and getattr(sc, "mode", None) == "process" and \
                        not sc.ready and time.monotonic() - t0 < 90:
                    time.sleep(0.1)
                time.sleep(1.0)
                n0, times[:] = eng.scan_count, []
                late, stop = [], threading.Event()
                th = threading.Thread(target=_late_probe, args=(stop, 0.008, late), daemon=True)
                th.start()
                time.sleep(seconds)
                stop.set()
                th.join(2)
                n1 = eng.scan_count
                mode = getattr(sc, "mode", "thread") if sc is not None else None
                eng.stop()
            finally:
                restore_env(saved)
            lt, bt = 1e3 * np.asarray(late), 1e3 * np.asarray(times)
            r = {"round": rnd, "label": label, "scan_mode": mode, "seconds": seconds,
                 "block_ms": block_ms, "probe_wakeups": int(len(lt)),
                 "late_p50_ms": float(np.median(lt)), "late_p99_ms": float(np.percentile(lt, 99)),
                 "late_max_ms": float(lt.max()), "late_over_2ms": float(np.mean(lt > 2.0)),
                 "block_p50_ms": float(np.median(bt)), "block_p95_ms": float(np.percentile(bt, 95)),
                 "block_max_ms": float(bt.max()), "blocks": int(len(bt)),
                 "scan_updates_per_s": (n1 - n0) / seconds, "load_average": os.getloadavg()[0]}
            print(f"  {label:<18} probe late p50 {r['late_p50_ms']:5.2f} p99 {r['late_p99_ms']:6.2f} "
                  f"max {r['late_max_ms']:6.1f} ms, >2 ms {100 * r['late_over_2ms']:4.1f} %;  block "
                  f"p50 {r['block_p50_ms']:5.1f} p95 {r['block_p95_ms']:5.1f} max {r['block_max_ms']:5.1f} ms;"
                  f"  scan {r['scan_updates_per_s']:.1f}/s  load {r['load_average']:.1f}", flush=True)
            rows.append(r)
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average_start": load0,
            "load_average_end": os.getloadavg(), "rows": rows}


# ------------------------------------------------------------------------------------ 3. scan, file
def bench_scan_file(model: TSEModel, seconds: float = 20.0, threads: int = 2) -> dict:
    eng = LiveEngine(model, block_ms=64, input_file=DEMO, output_device="null", loop=True,
                     distance_m=1.0, scan_seconds=3.0, torch_threads=threads)
    eng.start()
    time.sleep(seconds)
    sc = eng._scanner
    st = eng.stats()
    res = {"seconds": seconds, "torch_threads": threads, "scan_kind": type(sc).__name__,
           "scans": eng.scan_count, "updates_per_s": eng.scan_count / seconds,
           "seconds_per_scan": (sc.busy_s / sc.count) if sc.count else None,
           "core_share": sc.duty_measured, "queries": len(eng.scan_distances_m),
           "audio_s": eng.scan_seconds, "rtf": eng.rtf, "xruns": eng.xruns,
           "max_block_ms": 1e3 * st.get("max_process_s", float("nan")),
           "last_peaks_m": eng.latest_scan.peaks_m if eng.latest_scan else None}
    if hasattr(sc, "skips"):  # streaming scan
        res.update(update_s=eng.scan_update_s, skips=sc.skips, scan_audio_s=sc.audio_s,
                   scan_rtf=sc.busy_s / sc.audio_s if sc.audio_s else None)
    eng.stop()
    torch.set_num_threads(1)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--servers", default="pulseaudio,pipewire",
                    help="sound servers for the end-to-end section, comma-separated")
    ap.add_argument("--e2e-seconds", type=float, default=12.0,
                    help="seconds of speech per option in the end-to-end comparison")
    ap.add_argument("--long-seconds", type=float, default=120.0,
                    help="the long run of the default settings (drift), 0 = none")
    ap.add_argument("--options", default=";".join(OPTIONS),
                    help="labels of OPTIONS to compare, separated by ';'")
    ap.add_argument("--stream-seconds", type=float, default=8.0)
    ap.add_argument("--scan-seconds", type=float, default=20.0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "realtime.json"))
    ap.add_argument("--busy-core", action="store_true",
                    help="scan-modes: also run every mode with one more core kept busy")
    ap.add_argument("--gil-seconds", type=float, default=15.0,
                    help="gil: seconds measured per scan mode and round")
    ap.add_argument("--only", choices=["scan", "e2e", "scan-modes", "gil", "sched", "long"],
                    default=None, help="run only one section; update it in an existing --out")
    ap.add_argument("--seconds", type=float, default=30.0,
                    help="sched: seconds of speech per row")
    ap.add_argument("--rounds", type=int, default=1, help="sched: rounds of all rows")
    ap.add_argument("--blocks", default="64,32", help="sched: block sizes (ms), comma-separated")
    ap.add_argument("--busy", default="busy",
                    help="sched: 'busy' (one more core spinning), 'idle' or 'both'")
    ap.add_argument("--sched", default="fifo,nice",
                    help="sched: audio-thread scheduling modes compared (fifo, nice)")
    ap.add_argument("--variants", default="default",
                    help="sched: stream settings compared, labels of STREAM_VARIANTS separated "
                         "by ';'")
    ap.add_argument("--scans", default=";".join(SCAN_ONOFF),
                    help="sched: scan modes, labels of SCAN_ONOFF separated by ';'")
    ap.add_argument("--sink-rate", type=int, default=16000,
                    help="sched: Hz of the measuring null sink (48000: a typical sound server)")
    ap.add_argument("--key", default=None,
                    help="sched / long: JSON key of the rows (default end_to_end_sched / "
                         "end_to_end_long)")
    ap.add_argument("--name", default=None,
                    help="sched / long: name of the entry under --key (default: the server)")
    ap.add_argument("--long-busy", action="store_true",
                    help="long: one more process spinning on a core throughout")
    ap.add_argument("--long-variant", default="default",
                    help="long: stream settings, a label of STREAM_VARIANTS")
    ap.add_argument("--minutes", type=float, default=10.0, help="long: minutes of the run")
    ap.add_argument("--long-block-ms", type=float, default=64.0, help="long: block (ms)")
    ap.add_argument("--long-scan", choices=["on", "off"], default="on", help="long: the scan")
    ap.add_argument("--long-sched", choices=list(SCHED_MODES), default="fifo",
                    help="long: audio-thread scheduling")
    a = ap.parse_args(argv)
    # `kill PID` (SIGTERM) unwinds like Ctrl-C: the private sound server and the busy-core
    # process are stopped by their finally blocks instead of being left running
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    model, which = get_model(a.model)
    if a.only == "scan":
        return _main_scan_only(model, which, a)
    if a.only in ("sched", "long"):
        return _main_sched(model, which, a)
    if a.only in ("scan-modes", "gil"):
        if a.only == "gil":
            print(f"5. the scan's cost to the audio process, {a.gil_seconds:g} s per mode",
                  flush=True)
            key, res = "gil_probe", {"model": which, **bench_gil(model, a.gil_seconds)}
        else:
            key, res = "end_to_end_scan_modes", {
                "model": which, **bench_scan_modes(model, a.long_seconds, busy_core=a.busy_core)}
        out = Path(a.out)
        doc = json.loads(out.read_text()) if out.is_file() else {}  # merge: read at the end
        doc[key] = res
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {out}")
        return 0
    out = Path(a.out)
    doc = json.loads(out.read_text()) if out.is_file() else {}
    load0 = os.getloadavg()
    print(f"model: {which} ({model.config.preset}, {model.sample_rate} Hz); load average "
          f"{load0[0]:.1f} on {os.cpu_count()} cores", flush=True)
    if a.only is None:
        print("1. streaming RTF (Streamer.process, aligned blocks)")
        doc["streaming"] = bench_streaming(model, a.stream_seconds)
    options = [o for o in a.options.split(";") if o]
    e2e = bench_servers(model, [s for s in a.servers.split(",") if s], a.e2e_seconds,
                        a.long_seconds, options)
    doc["end_to_end"] = {
        "method": "one stereo null sink 'meas': its left channel is the engine's microphone "
                  "(remap source dut_mic), the engine plays into its right channel (remap sink "
                  "meas_r); both recorded in one stream from meas.monitor; delay = lag of right "
                  "behind left per 1 s window (realtime_tse/testing/loopback.py). Engine in bypass "
                  "(model running, dry path delayed like the extraction) except the 'wet' row.",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average_start": load0,
        "load_average_end": os.getloadavg(), **e2e}
    doc.pop("loopback", None)  # the old piecewise measurement (superseded)
    if a.only is None:
        print(f"3. distance scan beside a file-fed engine, {a.scan_seconds:g} s")
        doc["scan_file"] = bench_scan_file(model, a.scan_seconds)
        for k, v in doc["scan_file"].items():
            print(f"  {k}: {v}")
    doc.update({
        "model": which, "preset": model.config.preset, "sample_rate": model.sample_rate,
        "machine": {"processor": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(),
                    "note": "2 shared cores; training runs and other jobs used the CPU at the "
                            "same time (load averages recorded per row), so figures are noisy"},
        "torch": torch.__version__})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def _main_sched(model, which, a) -> int:
    """``--only sched`` / ``--only long``: rows per server into ``end_to_end_sched[server]`` /
    ``end_to_end_long[server]`` of an existing ``--out`` (read and merged at the end)."""
    servers = [s for s in a.servers.split(",") if s]
    results = {}
    for kind in servers:
        try:
            if a.only == "sched":
                busy = {"busy": (True,), "idle": (False,), "both": (False, True)}[a.busy]
                res = bench_sched(model, kind, a.seconds, rounds=a.rounds,
                                  blocks=tuple(float(b) for b in a.blocks.split(",")),
                                  busy_modes=busy,
                                  sched_modes=tuple(m for m in a.sched.split(",") if m),
                                  variants=tuple(v for v in a.variants.split(";") if v),
                                  scans=tuple(v for v in a.scans.split(";") if v),
                                  sink_rate=a.sink_rate)
            else:
                res = bench_long(model, kind, a.minutes, block_ms=a.long_block_ms,
                                 scan=a.long_scan == "on", sched=a.long_sched,
                                 busy=a.long_busy, variant=a.long_variant)
        except RuntimeError as e:
            print(f"  {kind} cannot run here: {e}", flush=True)
            res = {"skipped": str(e)}
        name = kind if a.only != "sched" or a.sink_rate == 16000 else f"{kind}_sink{a.sink_rate}"
        name = a.name or name
        results[name] = {"model": which, "command": " ".join(sys.argv[1:]), **res}
    key = a.key or ("end_to_end_sched" if a.only == "sched" else "end_to_end_long")
    out = Path(a.out)
    doc = json.loads(out.read_text()) if out.is_file() else {}
    doc.setdefault(key, {}).update(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def _main_scan_only(model, which, a) -> int:
    load0 = os.getloadavg()
    print(f"model: {which} ({model.config.preset}); load average {load0[0]:.1f} on "
          f"{os.cpu_count()} cores", flush=True)
    out = Path(a.out)
    doc = json.loads(out.read_text()) if out.is_file() else {}
    for threads, key in ((2, "scan_file"), (1, "scan_file_1_thread")):
        print(f"3. distance scan beside a file-fed engine, {a.scan_seconds:g} s, "
              f"{threads} torch threads")
        r = bench_scan_file(model, a.scan_seconds, threads=threads)
        r.update(date=time.strftime("%Y-%m-%d %H:%M:%S"), model=which,
                 load_average_start=load0, load_average_end=os.getloadavg())
        for k, v in r.items():
            print(f"  {k}: {v}")
        doc[key] = r
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
