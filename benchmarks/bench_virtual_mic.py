"""What the virtual microphone adds: the delay from ``VirtualMic.write`` to a recording client.

    .venv/bin/python benchmarks/bench_virtual_mic.py [--seconds 20] [--block-ms 32]
        [--latency-ms 20] [--out benchmarks/results/virtual_mic_delay.json]

A private PulseAudio daemon (``scripts/pulse.sh``) holds the virtual microphone
(``realtime_tse.audio.virtual_mic``). This process writes blocks of a click train (one click every
0.5 s) at the model rate (8 kHz), paced in real time like the engine; a ``parec`` child records
the virtual microphone and a reader thread stamps each chunk as it arrives. The delay of a click is
the arrival time of the chunk that holds it minus the time it was written: what a recording app
sees, including its own buffer (``parec --latency-msec=10``) and the sound server's, on one clock,
with no assumption about when the recording started. Prints the median and spread of the click
delays, the drift (last clicks minus first) and the dropped blocks, and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from realtime_tse.file_write import write_json_atomic  # noqa: E402


def start_pulse(d: Path) -> dict:
    env = {**os.environ, "RTSE_PULSE_DIR": str(d)}
    r = subprocess.run(["bash", str(REPO / "scripts" / "pulse.sh"), "start"], env=env,
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise SystemExit(f"scripts/pulse.sh start failed: {r.stderr.strip()}")
    out = {}
    for line in r.stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            k, v = line[len("export "):].split("=", 1)
            out[k] = v
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--block-ms", type=float, default=32.0)
    ap.add_argument("--latency-ms", type=float, default=20.0, help="the pacat buffer asked for")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "virtual_mic_delay.json"))
    a = ap.parse_args(argv)
    sr, period = 8000, 0.5
    with tempfile.TemporaryDirectory(prefix="rtse-vmic-") as td:
        env = start_pulse(Path(td))
        os.environ.update(env)
        from realtime_tse.audio.virtual_mic import VirtualMic
        try:
            vm = VirtualMic(sr, name="rtse_bench_mic", latency_ms=a.latency_ms).open()
            rec = subprocess.Popen(["parec", f"--device={os.environ.get('BENCH_SOURCE', 'rtse_bench_mic')}", f"--rate={sr}", "--channels=1",
                                   "--format=float32le", "--latency-msec=10"], stdout=subprocess.PIPE)
            chunks, stamps = [], []

            def reader():
                while True:
                    b = rec.stdout.read1(4096)
                    if not b:
                        return
                    chunks.append(b)
                    stamps.append((time.monotonic(), sum(len(c) for c in chunks) // 4))
            import threading
            th = threading.Thread(target=reader, daemon=True)
            th.start()
            time.sleep(1.0)
            n = int(a.seconds * sr)
            x = np.zeros(n, np.float32)
            clicks = np.arange(int(0.25 * sr), n - sr // 4, int(period * sr))
            x[clicks] = 0.8
            blk = int(a.block_ms * 1e-3 * sr)
            t_w0 = time.monotonic()
            for k in range(0, n, blk):
                target = t_w0 + k / sr
                time.sleep(max(0.0, target - time.monotonic()))
                vm.write(x[k:k + blk])
            time.sleep(1.0)
            rec.send_signal(signal.SIGINT)
            rec.wait(timeout=10)
            th.join(timeout=5)
            y = np.frombuffer(b"".join(chunks)[: 4 * (sum(len(c) for c in chunks) // 4)], dtype="<f4")
            dropped, trimmed = vm.dropped_blocks, vm.trimmed_blocks
            vm.close()
        finally:
            subprocess.run(["bash", str(REPO / "scripts" / "pulse.sh"), "stop"],
                           env={**os.environ, "RTSE_PULSE_DIR": td}, capture_output=True, timeout=30)
    peaks = np.flatnonzero(np.abs(y) > 0.3)
    found = []
    for p in peaks:  # the first sample over the threshold of each click
        if not found or p - found[-1] > sr // 10:
            found.append(int(p))
    if len(found) < 3:
        raise SystemExit(f"only {len(found)} clicks arrived: the path does not carry audio")
    counts = np.array([c for _, c in stamps])
    arrivals = np.array([t for t, _ in stamps])
    t_clicks = t_w0 + clicks / sr
    delays = []
    for f in found:   # the chunk holding sample f arrived at arrivals[i]; the click written last before it
        i = int(np.searchsorted(counts, f + 1))
        if i < len(arrivals):
            k = int(np.searchsorted(t_clicks, arrivals[i])) - 1
            if k >= 0:
                delays.append(arrivals[i] - t_clicks[k])
    d = 1e3 * np.array(delays)
    t_end = time.monotonic()
    res = {
        "what": "delay from VirtualMic.write to a parec client of the virtual microphone",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()},
        "server": "PulseAudio (private daemon, scripts/pulse.sh)",
        "seconds": a.seconds, "block_ms": a.block_ms, "pacat_latency_ms": a.latency_ms,
        "clicks_sent": int(len(clicks)), "clicks_found": len(found), "dropped_blocks": int(dropped),
        "trimmed_blocks": int(trimmed),
        "delay_ms_median": round(float(np.median(d)), 1),
        "delay_ms_p1_p99": [round(float(np.percentile(d, 1)), 1), round(float(np.percentile(d, 99)), 1)],
        "drift_ms": round(float(np.median(d[-3:]) - np.median(d[:3])), 1),
        "note": "arrival of the chunk holding each click minus its writing time: includes the "
                "recorder's own buffer (parec --latency-msec=10) and its read-out",
        "wall_s": round(t_end - t_w0, 2),
    }
    print(json.dumps(res, indent=1))
    write_json_atomic(a.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
