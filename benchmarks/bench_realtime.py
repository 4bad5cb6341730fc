"""Live engine figures: streaming RTF per block size and thread count, a long run through a
PulseAudio loopback (xruns, measured input-to-output delay, algorithmic latency), and the rate of
the distance scan while streaming.

    .venv/bin/python benchmarks/bench_realtime.py [--model CKPT] [--loop-seconds 60]
                                                  [--out benchmarks/results/realtime.json]

Model: the shipped checkpoint when present (or --model), else a randomly initialised lite-causal
net (speed does not depend on the weights); the JSON says which. Sections:

1. ``streaming``: ``Streamer.process`` (the engine's real block path: numpy in, model step,
   numpy out) on 8 s of the demo, blocks of 16/32/64/128 ms, 1 and 2 torch threads: RTF = compute
   time / audio time, and per-block mean / 95th percentile / max in ms.
2. ``loopback``: ``LiveEngine`` between two PulseAudio null sinks for ``--loop-seconds``: a harness
   stream plays the demo (looped) into the engine's microphone and records its speaker. Xruns
   counted from 2 s after the input starts; delays measured by cross-correlation on identical
   signals, piece by piece (harness -> engine input from the engine's own input recording; the
   model's look-ahead; engine output -> harness from its output recording), minus the harness's
   own loop measured alone first; the design estimate, the algorithmic latency, and the distance
   scan running beside it (updates per second, seconds per scan, share of a core). Skipped (and
   said so) without pulseaudio / PortAudio.
3. ``scan_file``: the same engine fed from the demo file (no devices) for 20 s with 2 torch
   threads (and 1, ``scan_file_1_thread``), for the scan rate without PulseAudio: updates per
   second of wall time, the scan's compute per audio second (``scan_rtf``), skip-aheads, and the
   audio worker's RTF while scanning. Causal models use the incremental streaming scan
   (``realtime_tse.profile.StreamingScanWorker``), bidirectional ones the window scan.
   ``--only scan`` runs this section alone and updates it in an existing JSON.

The machine is recorded with its load average: on a shared CPU every figure is noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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

from realtime_tse.engine import LiveEngine, TSEModel, default_model_path, load_model, resample  # noqa: E402

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


# ------------------------------------------------------------------------------------ 2. loopback
class Pulse:
    """A private PulseAudio daemon (scripts/pulse.sh) with a second null sink."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="rtse-bench-pulse-"))
        self.env = {**os.environ, "RTSE_PULSE_DIR": str(self.dir)}
        r = subprocess.run(["bash", str(REPO / "scripts" / "pulse.sh"), "start"], env=self.env,
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"pulse.sh start failed: {r.stderr.strip()}")
        for line in r.stdout.splitlines():
            if line.startswith("export "):
                k, v = line[len("export "):].split("=", 1)
                os.environ[k] = v
        subprocess.run(["pactl", "load-module", "module-null-sink", "sink_name=bench_src",
                        "rate=16000", "channels=1"], capture_output=True, timeout=10, check=True)
        from realtime_tse.audio_io import list_devices
        deadline = time.monotonic() + 15
        while "pulse" not in [d.name for d in list_devices(refresh=True)]:
            if time.monotonic() > deadline:
                raise RuntimeError("PortAudio lists no 'pulse' device")
            time.sleep(0.2)

    def stop(self):
        subprocess.run(["bash", str(REPO / "scripts" / "pulse.sh"), "stop"], env=self.env,
                       capture_output=True, timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def _align(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """Signed lag L with a[i + L] ~ b[i] (cross-correlation) and the correlation after aligning."""
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    c = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)
    k = int(np.argmax(c))
    lag = k if k < n // 2 else k - n
    a2, b2 = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
    m = min(len(a2), len(b2))
    return lag, float(np.corrcoef(a2[:m], b2[:m])[0, 1])


def _harness(sd, x: np.ndarray, fs: int, tail_s: float = 3.0):
    """Play ``x`` on PortAudio's "pulse" device and record it at the same time (one duplex stream,
    so play and record indices share a clock). Large buffers keep the harness free of xruns on a
    busy CPU. Returns (recording, xrun count, PortAudio's reported latency in s)."""
    play = np.concatenate([x, np.zeros(int(tail_s * fs), np.float32)])
    got = np.zeros_like(play)
    pos, hx = [0], [0]
    done = threading.Event()

    def cb(indata, outdata, frames, _t, status):
        if status:
            hx[0] += 1
        p = pos[0]
        n = min(frames, len(play) - p)
        outdata[:n, 0] = play[p:p + n]
        outdata[n:] = 0
        got[p:p + n] = indata[:n, 0]
        pos[0] = p + n
        if n < frames:
            raise sd.CallbackStop

    h = sd.Stream(device=("pulse", "pulse"), samplerate=fs, blocksize=1024, channels=1,
                  dtype="float32", latency="high", callback=cb, finished_callback=done.set)
    h.start()
    lat = float(sum(h.latency))
    done.wait(len(play) / fs + 30)
    h.close()
    return got, hx[0], lat


def bench_loopback(model: TSEModel, seconds: float, block_ms: float = 64,
                   latency: str = "high") -> dict:
    """Delays are measured piecewise on identical signals, so the model's output need not resemble
    its input: harness out -> engine input (the engine records its input), engine input -> engine
    output (the model's look-ahead, exact), engine output -> harness in (the engine records its
    output). Their sum is the whole loop; minus the harness's own PortAudio latency it is the
    engine's microphone-to-speaker delay."""
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        return {"skipped": "pulseaudio / pactl not installed"}
    try:
        import sounddevice as sd
    except OSError as e:
        return {"skipped": f"PortAudio missing: {e}"}
    pulse = Pulse()
    tmp = Path(tempfile.mkdtemp(prefix="rtse-bench-rec-"))
    try:
        fs = 16000
        x = demo(fs, seconds)
        # the harness's own loop (play into bench_src, record its monitor): subtracted below
        os.environ["PULSE_SOURCE"], os.environ["PULSE_SINK"] = "bench_src.monitor", "bench_src"
        xh = x[: 4 * fs]
        got_h, _, _ = _harness(sd, xh, fs, tail_s=2.0)
        harness_loop, harness_corr = _align(got_h, xh)
        os.environ["PULSE_SOURCE"], os.environ["PULSE_SINK"] = "bench_src.monitor", "vsink"
        eng = LiveEngine(model, block_ms=block_ms, input_device="pulse", output_device="pulse",
                         distance_m=1.0, device_rate=fs, prefill_blocks=2,
                         latency=latency,
                         stall_timeout_s=5.0, scan_seconds=3.0, torch_threads=1)
        rec = eng.start_recording(tmp / "out.wav", record_input=True)
        eng.start()
        deadline = time.monotonic() + 10
        while eng.stream.blocks_processed < 4 and time.monotonic() < deadline and not eng.error:
            time.sleep(0.05)
        if eng.error:
            eng.stop()
            return {"error": eng.error}
        os.environ["PULSE_SOURCE"], os.environ["PULSE_SINK"] = "vsink.monitor", "bench_src"
        t_h = eng.stream.callback_time_s
        scan0 = eng.scan_count
        t0 = time.monotonic()
        got, hx, h_lat = _harness(sd, x, fs)
        wall = time.monotonic() - t0
        st = eng.stats()
        events = eng.xrun_events()
        sc = eng._scanner
        scans = eng.scan_count - scan0
        scan_info = {"scans": scans, "updates_per_s": scans / wall,
                     "seconds_per_scan": (sc.busy_s / sc.count) if sc and sc.count else None,
                     "core_share": sc.duty_measured if sc else None,
                     "queries": len(eng.scan_distances_m), "audio_s": eng.scan_seconds,
                     "torch_threads": 1, "nice": sc.nice if sc else None,
                     "scan_kind": type(sc).__name__ if sc else None,
                     "skips": getattr(sc, "skips", None),
                     "last_peaks_m": eng.latest_scan.peaks_m if eng.latest_scan else None}
        eng.stop()
        sr = model.sample_rate
        xin, _ = sf.read(rec.input_path, dtype="float32")
        yout, _ = sf.read(rec.path, dtype="float32")
        D = eng.streamer.delay_samples
        # engine exactness: its output is the offline extraction of its input, delayed by D
        ref = np.concatenate([np.zeros(D, np.float32), model.extract(xin, 1.0)])[:len(xin)]
        corr_engine = float(np.corrcoef(yout, ref)[0, 1])
        # harness sample i -> engine input index i + lag_in -> engine output index
        # i + lag_in + D -> harness recording index i + lag_in + D + lag_out
        lag_in, corr_in = _align(xin, resample(x, fs, sr))
        lag_out, corr_out = _align(resample(got, fs, sr), yout)
        loop_ms = 1e3 * (lag_in + D + lag_out) / sr
        # split at the engine: its input index counts from its first callback (t = 0 of the
        # device clock); the harness started at device time t_h
        input_path_ms = 1e3 * (lag_in / sr - t_h)
        late = [e for e in events if e[0] > t_h + 2.0]
        return {
            "seconds": seconds, "block_ms": eng.streamer.block_ms, "device_rate": fs,
            "model_rate": sr, "prefill_blocks": 2, "portaudio_latency": latency,
            "xruns_total": st["xruns"], "xruns_after_2s": len(late),
            "xrun_events": [(round(t, 3), k) for t, k in events[:20]],
            "harness_xruns": hx,
            "loop_delay_ms": loop_ms, "harness_reported_latency_ms": 1e3 * h_lat,
            "harness_own_loop_ms": 1e3 * harness_loop / fs, "harness_own_loop_corr": harness_corr,
            "measured_input_to_output_ms": loop_ms - 1e3 * harness_loop / fs,
            "harness_to_engine_input_ms": input_path_ms,
            "engine_output_to_harness_ms": loop_ms - input_path_ms - 1e3 * D / sr,
            "estimated_latency_ms": st["estimated_latency_ms"],
            "algorithmic_latency_ms": eng.algorithmic_latency_ms,
            "device_latency_ms": 1e3 * st["device_latency_s"],
            "corr_engine_vs_offline": corr_engine, "corr_input_path": corr_in,
            "corr_output_path": corr_out,
            "rtf": st["rtf"], "mean_block_ms": 1e3 * st["mean_process_s"],
            "max_block_ms": 1e3 * st["max_process_s"], "scan": scan_info,
        }
    finally:
        for k in ("PULSE_SOURCE", "PULSE_SINK"):
            os.environ.pop(k, None)
        pulse.stop()
        shutil.rmtree(tmp, ignore_errors=True)


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
    ap.add_argument("--loop-seconds", type=float, default=60.0)
    ap.add_argument("--stream-seconds", type=float, default=8.0)
    ap.add_argument("--scan-seconds", type=float, default=20.0)
    ap.add_argument("--latency", default="high", help="PortAudio latency of the engine's stream")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "realtime.json"))
    ap.add_argument("--only", choices=["scan"], default=None,
                    help="run only the file-fed scan section; update it in an existing --out")
    a = ap.parse_args(argv)
    model, which = get_model(a.model)
    if a.only == "scan":
        return _main_scan_only(model, which, a)
    load0 = os.getloadavg()
    print(f"model: {which} ({model.config.preset}, {model.sample_rate} Hz); load average "
          f"{load0[0]:.1f} on {os.cpu_count()} cores", flush=True)
    print("1. streaming RTF (Streamer.process, aligned blocks)")
    streaming = bench_streaming(model, a.stream_seconds)
    print(f"2. PulseAudio loopback, {a.loop_seconds:g} s")
    loop = bench_loopback(model, a.loop_seconds, latency=a.latency)
    for k, v in loop.items():
        if k != "xrun_events":
            print(f"  {k}: {v}")
    print(f"3. distance scan beside a file-fed engine, {a.scan_seconds:g} s")
    scan = bench_scan_file(model, a.scan_seconds)
    for k, v in scan.items():
        print(f"  {k}: {v}")
    doc = {
        "model": which, "preset": model.config.preset, "sample_rate": model.sample_rate,
        "machine": {"processor": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "load_average_start": load0,
                    "load_average_end": os.getloadavg(),
                    "note": "2 shared cores; a training run and other jobs used the CPU at the same "
                            "time, so figures are noisy upper bounds"},
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "streaming": streaming, "loopback": loop, "scan_file": scan,
    }
    out = Path(a.out)
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
