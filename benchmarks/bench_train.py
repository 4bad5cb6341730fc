"""Training throughput: audio seconds trained per wall-clock second (forward + backward + Adam) for
each preset, on random audio (the data pipeline's own cost is measured by bench_rir.py and is small:
about 17 ms per 2 s mixture).

    .venv/bin/python benchmarks/bench_train.py [--batch 8 --clip-s 2 --steps 3 --threads 2]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from models import ModelConfig, build_model
from models.metrics import loss_active


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="lite-causal,paper-causal,paper")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--clip-s", type=float, default=2.0)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_throughput.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    for name in a.presets.split(","):
        cfg = ModelConfig.preset(name)
        net = build_model(cfg)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        x = torch.randn(a.batch, int(a.clip_s * cfg.sample_rate)) * 0.05
        d = torch.rand(a.batch) * 4
        times = []
        for i in range(a.steps + 1):
            t = time.perf_counter()
            loss = loss_active(net(x, d), x).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            if i:  # the first step warms up allocators
                times.append(time.perf_counter() - t)
        step_s = sorted(times)[len(times) // 2]
        row = {"preset": name, "sample_rate": cfg.sample_rate, "batch": a.batch, "clip_s": a.clip_s,
               "threads": a.threads, "seconds_per_step": step_s,
               "audio_seconds_per_second": a.batch * a.clip_s / step_s}
        rows.append(row)
        print(f"{name:13s} {step_s:7.2f} s/step  {row['audio_seconds_per_second']:6.2f} audio s/s", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
