"""The end-to-end sections of bench_realtime.py (2 and 4): ``LiveEngine`` between the measuring
sinks of realtime_tse/testing/loopback.py on a private PulseAudio or PipeWire-Pulse
(:class:`SoundServer`), the stream options compared (``OPTIONS``) and the scan modes
(``SCAN_MODES``). See bench_realtime.py's docstring for what each row holds."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


from realtime_common import REPO, demo  # noqa: E402 (puts the repository on the path)
from realtime_tse.audio.pulse_env import restore_env, save_env  # noqa: E402
from realtime_tse.live.engine import LiveEngine  # noqa: E402
from realtime_tse.model import TSEModel  # noqa: E402
from realtime_tse.testing.pipewire import start_pipewire, stop_pipewire  # noqa: E402
from realtime_tse.threads import audio_policy  # noqa: E402


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
                               "PIPEWIRE_RUNTIME_DIR", "XDG_RUNTIME_DIR"))
        self.proc = None
        if kind == "pulseaudio":
            self._start_pulseaudio()
        elif kind == "pipewire":
            self._start_pipewire()
        else:
            raise ValueError(kind)
        from realtime_tse.audio.devices import list_devices
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
        try:
            self.proc, pw_env = start_pipewire(self.dir, timeout=20)
        except RuntimeError as e:
            raise RuntimeError(f"pipewire-pulse did not come up: {e}") from None
        os.environ.update(pw_env)

    def stop(self):
        if self.kind == "pulseaudio":
            subprocess.run(["bash", str(REPO / "scripts" / "pulse.sh"), "stop"],
                           env={**os.environ, "RTSE_PULSE_DIR": str(self.dir)},
                           capture_output=True, timeout=30)
        elif self.proc is not None and self.proc.poll() is None:
            stop_pipewire(self.proc)  # the session we started (its own process group)
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
    devices = tuple(stream_kwargs.pop("devices", ("pulse", "pulse")))  # (input, output) names
    sinks = MeasureSinks(fs)
    if devices != ("pulse", "pulse"):
        # JACK devices are the graph's nodes as PortAudio saw them when it was initialised:
        # list them again now that the topology is loaded (no stream is open here)
        from realtime_tse.audio.devices import list_devices
        list_devices(refresh=True)
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
        in_dev, out_dev = devices
        eng = LiveEngine(model, block_ms=block_ms, input_device=in_dev, output_device=out_dev,
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
                              round(1e3 * s_["input_latency_s"], 1), s_["xruns"],
                              s_.get("delay_parts_ms")])
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
        "jitter_ms": st["jitter_ms"], "audio_path": st.get("audio_path"),
        "device_latency_ms": 1e3 * st["device_latency_s"],
        "delay_parts_ms": st.get("delay_parts_ms"),
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
        # queued at the last write ms, device output delay ms, captured audio's age ms, xruns,
        # the parts of the reported delay at the last block write (ms)]
        "trace_fields": ["device_s", "reported_total_ms", "jitter_ms", "output_queue_ms",
                         "output_latency_ms", "input_age_ms", "xruns", "delay_parts_ms"],
        "trace": trace,
    }
    return res


def print_e2e(r: dict) -> None:
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
                    print_e2e(r)
                    rows.append(r)
            best = [r for r in rows if r.get("streams") == "separate"
                    and r.get("label") == "separate low, 8 ms, jitter 16"]
            long = []
            if long_seconds > 0:
                for block in (64, 32):
                    for busy in ((False, True) if busy_long else (False,)):
                        r = bench_e2e(model, long_seconds, block_ms=block, busy=busy,
                                      label=f"default, {'busy core' if busy else 'as is'}, long")
                        print_e2e(r)
                        long.append(r)
            wet = bench_e2e(model, min(seconds, 10.0), block_ms=64, bypass=False,
                            label="default, wet output")
            print_e2e(wet)
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
                    print_e2e(r)
                    rows.append(r)
    finally:
        srv.stop()
    return {"server": srv.version, "seconds": seconds, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_average_start": load0, "load_average_end": os.getloadavg(), "rows": rows}
