"""Long files through the command line: ``realtime-tse scan`` of a 3-minute file and
``realtime-tse extract`` of a 10-minute file, each in its own process; wall time and peak RSS.

    .venv/bin/python benchmarks/bench_long_files.py [--scan-minutes 3] [--extract-minutes 10]
        [--model CKPT] [--threads 1] [--out benchmarks/results/long_files.json]

The input is the shipped demo mixture (24 s, 16 kHz) repeated to length with a slowly varying gain,
written as a 16 kHz 16-bit WAV. Targets: the 3-minute scan in under 60 s with peak RSS
under 1 GB on 2 cores. Peak RSS is each child's own ``ru_maxrss`` (``os.wait4``). Prints the figures and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from realtime_tse.file_write import write_json_atomic  # noqa: E402

DEMO = REPO / "assets" / "demo" / "demo_mix.wav"
CLI = [sys.executable, "-m", "realtime_tse.cli"]


def make_long_file(path: Path, minutes: float) -> Path:
    """The demo repeated to ``minutes``, gain varying by +-3 dB over 40 s; 16-bit WAV."""
    x, sr = sf.read(DEMO, dtype="float32")
    n = int(minutes * 60 * sr)
    reps = int(np.ceil(n / len(x)))
    y = np.tile(x, reps)[:n]
    t = np.arange(n) / sr
    y = y * (10 ** (3 * np.sin(2 * np.pi * t / 40.0) / 20)).astype(np.float32)
    sf.write(path, np.clip(y, -1, 1), sr, subtype="PCM_16")
    return path


def run_child(args: list[str]) -> dict:
    """Run one CLI command; its wall time, its own peak RSS (``os.wait4``) and its output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        p = subprocess.Popen(CLI + args, stdout=out, stderr=err, cwd=REPO)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}):\n{stderr}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(ru.ru_maxrss / 1024, 1),
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 2), "stdout": stdout.strip(),
            "notes": [ln for ln in stderr.splitlines() if "note:" in ln]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scan-minutes", type=float, default=3.0)
    ap.add_argument("--extract-minutes", type=float, default=10.0)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "long_files.json"))
    a = ap.parse_args(argv)
    common = ["--threads", str(a.threads)] + (["--model", a.model] if a.model else [])
    res = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "load_avg_at_start": os.getloadavg()},
           "threads": a.threads, "targets": {"scan_3min_wall_s": 60, "scan_peak_rss_mb": 1024}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if a.scan_minutes > 0:
            f = make_long_file(tmp / "long_scan.wav", a.scan_minutes)
            r = run_child(["scan", str(f), "--json", str(tmp / "scan.json")] + common)
            doc = json.loads((tmp / "scan.json").read_text())
            r.update(minutes=a.scan_minutes, n_distances=len(doc["distances_m"]),
                     measured_s=doc.get("measured_s"), peaks_m=doc["peaks_m"])
            res["scan"] = r
            print(f"scan    {a.scan_minutes:g} min: {r['wall_s']:.1f} s wall, peak RSS "
                  f"{r['peak_rss_mb']:.0f} MB, {r['n_distances']} distances, measured "
                  f"{r['measured_s']} s; {r['stdout'].splitlines()[0]}")
        if a.extract_minutes > 0:
            f = make_long_file(tmp / "long_extract.wav", a.extract_minutes)
            r = run_child(["extract", str(f), "--distance", "1.0", "-o", str(tmp / "out.flac")]
                          + common)
            y, _ = sf.read(tmp / "out.flac", dtype="float32")
            r.update(minutes=a.extract_minutes, output_peak=round(float(np.abs(y).max()), 4),
                     output_finite=bool(np.all(np.isfinite(y))))
            res["extract"] = r
            print(f"extract {a.extract_minutes:g} min: {r['wall_s']:.1f} s wall, peak RSS "
                  f"{r['peak_rss_mb']:.0f} MB (RTF {r['wall_s'] / (60 * a.extract_minutes):.3f})")
    out = write_json_atomic(a.out, res)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
