"""RIR-bank build rate per preset (d1, d2, d3) and the RT60 the presets really produce.

For each preset: build RIRs [0, N) (default 40) with 2 worker processes into a temporary folder
(wall clock, including the worker start-up), time RIRs in-process on one core (the steady rate
of a large build is about workers / that time), then report RIRs per second, the mean measured RT60
(``room.measure_rt60()``) against the target, and the truncated RIR length.
An extra "d3-rooms" row builds one RIR in each of N different D3 rooms (the preset's first N rooms),
so the RT60 comparison covers the whole 0.2 to 0.5 s range.

    .venv/bin/python benchmarks/bench_rir.py [--n 40] [--workers 2]

Prints a table and writes ``benchmarks/results/rir_build.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from realtime_tse.train.rir_simulation import simulate_rir
from realtime_tse.train.rirbank import RIRBank, build_bank
from realtime_tse.train.rooms import room_preset


def core_ms_per_rir(spec, n: int, n_built: int) -> float:
    """Mean single-core milliseconds per RIR, in-process (no worker start-up), after a warm-up,
    over ``n`` indices spread across ``[0, n_built)`` (so D3 covers several rooms)."""
    simulate_rir(spec, n_built)
    idx = np.unique(np.linspace(0, n_built - 1, n).round().astype(int))
    t0 = time.perf_counter()
    for i in idx:
        simulate_rir(spec, int(i))
    return (time.perf_counter() - t0) / len(idx) * 1000.0


def run(name: str, spec, n: int, workers: int, n_serial: int) -> dict:
    ms = core_ms_per_rir(spec, n_serial, n)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_bank(spec, tmp, 0, n, workers=workers, progress=False)
        wall = time.perf_counter() - t0
        bank = RIRBank(tmp)
        meta = bank.meta
    tgt = np.array([m["rt60_target"] for m in meta])
    meas = np.array([m["rt60_measured"] for m in meta])
    length_s = np.array([m["length"] for m in meta]) / spec.sample_rate
    ratio = meas / tgt
    bins = {}
    for lo, hi in ((0.2, 0.3), (0.3, 0.4), (0.4, 0.5001)):
        sel = (tgt >= lo) & (tgt < hi)
        if sel.any():
            bins[f"{lo:.1f}-{min(hi, 0.5):.1f}"] = {
                "n": int(sel.sum()), "target_mean_s": float(tgt[sel].mean()),
                "measured_mean_s": float(meas[sel].mean()), "ratio_mean": float(ratio[sel].mean())}
    return {
        "preset": name, "n_rirs": n, "workers": workers, "wall_s": wall, "rirs_per_s": n / wall,
        "core_ms_per_rir": ms, "n_serial": n_serial,
        "steady_rirs_per_s": workers * 1000.0 / ms,
        "rt60_target_mean_s": float(tgt.mean()), "rt60_target_range_s": [float(tgt.min()), float(tgt.max())],
        "rt60_measured_mean_s": float(meas.mean()),
        "rt60_measured_range_s": [float(meas.min()), float(meas.max())],
        "rt60_ratio_mean": float(ratio.mean()), "rt60_ratio_range": [float(ratio.min()), float(ratio.max())],
        "rt60_by_target": bins,
        "length_mean_s": float(length_s.mean()), "length_over_measured_rt60": float((length_s / meas).mean()),
        "distance_range_m": [float(min(m["distance"] for m in meta)), float(max(m["distance"] for m in meta))],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--serial", type=int, default=10, help="RIRs timed in-process per preset")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "rir_build.json"))
    a = ap.parse_args()
    cases = [("d1", room_preset("d1")), ("d2", room_preset("d2")), ("d3", room_preset("d3")),
             ("d3-rooms", room_preset("d3", talkers_per_room=1))]
    rows = [run(name, spec, a.n, a.workers, a.serial) for name, spec in cases]
    print(f"{'preset':9s} {'RIRs':>5s} {'wall s':>7s} {'RIR/s':>7s} {'ms/RIR':>7s} {'steady':>7s} "
          f"{'RT60 target':>13s} "
          f"{'RT60 measured':>15s} {'ratio':>11s} {'len s':>6s}")
    for r in rows:
        print(f"{r['preset']:9s} {r['n_rirs']:5d} {r['wall_s']:7.2f} {r['rirs_per_s']:7.1f} "
              f"{r['core_ms_per_rir']:7.1f} {r['steady_rirs_per_s']:7.1f} "
              f"{r['rt60_target_range_s'][0]:5.2f}..{r['rt60_target_range_s'][1]:4.2f} s "
              f"{r['rt60_measured_range_s'][0]:6.3f}..{r['rt60_measured_range_s'][1]:5.3f} s "
              f"{r['rt60_ratio_range'][0]:4.2f}..{r['rt60_ratio_range'][1]:4.2f} "
              f"{r['length_mean_s']:6.3f}")
    for r in rows:
        for b, v in r["rt60_by_target"].items():
            print(f"  {r['preset']:9s} target {b} s: n={v['n']:2d} measured {v['measured_mean_s']:.3f} s "
                  f"(x{v['ratio_mean']:.2f})")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import pyroomacoustics as pra
    out.write_text(json.dumps({
        "benchmark": "rir_build", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "pyroomacoustics": pra.__version__, "load_avg": list(os.getloadavg())},
        "note": "rirs_per_s: wall clock of build_bank including spawning the workers (each imports "
                "pyroomacoustics, 1 to 3 s on a loaded machine); core_ms_per_rir: in-process, one core; "
                "steady_rirs_per_s = workers * 1000 / core_ms_per_rir (large banks); "
                "d3-rooms = one RIR in each of the preset's first N rooms",
        "results": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
