"""Model speed: real-time factor (RTF = compute time / audio time) of offline and streaming inference
for each preset, 1 and 2 torch threads, streaming blocks of 1, 4 and 8 hops, plus parameter counts.

    .venv/bin/python benchmarks/bench_models.py [--seconds 4] [--out benchmarks/results/models.json]

Random weights (speed does not depend on training). Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from realtime_tse.models import ModelConfig, build_model, count_parameters


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_preset(name: str, seconds: float, threads: int, blocks=(1, 4, 8), repeats: int = 3) -> dict:
    torch.set_num_threads(threads)
    cfg = ModelConfig.preset(name)
    net = build_model(cfg).eval()
    n = int(seconds * cfg.sample_rate)
    x = torch.randn(1, n) * 0.05
    d = torch.tensor([1.5])
    row = {"preset": name, "threads": threads, "parameters": count_parameters(net),
           "sample_rate": cfg.sample_rate, "hop_ms": 1000 * cfg.hop_s}
    with torch.inference_mode():
        net(x[:, : cfg.sample_rate // 2], d)  # warm-up
        row["offline_rtf"] = _best_of(lambda: net(x, d), repeats) / seconds
        if not cfg.causal:
            return row
        for k in blocks:
            blk = k * cfg.hop
            n_blocks = max(1, int(min(seconds, 2.0) * cfg.sample_rate) // blk)

            def run():
                st = net.init_state(d)
                for i in range(n_blocks):
                    _, st2 = net.step(x[:, i * blk:(i + 1) * blk], d, st)
                    st = st2

            t = _best_of(run, repeats)
            row[f"stream_rtf_block{k}"] = t / (n_blocks * blk / cfg.sample_rate)
            row[f"stream_ms_per_block{k}"] = 1000 * t / n_blocks
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--presets", default="paper,paper-causal,lite-causal,lite-causal-bs,lite-lstm,baseline")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "models.json"))
    a = ap.parse_args(argv)
    rows = []
    for name in a.presets.split(","):
        for th in (1, 2):
            r = bench_preset(name, a.seconds, th)
            rows.append(r)
            s = " ".join(f"{k}={v:.3f}" for k, v in r.items() if "rtf" in k)
            print(f"{name:13s} threads={th} params={r['parameters']:>9,d}  {s}", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                               "torch": torch.__version__, "audio_seconds": a.seconds, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
