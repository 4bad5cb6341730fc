"""Training throughput: seconds of audio trained per wall-clock second, one row per change.

Each variant runs forward + loss + backward + clip + Adam on batches of ``--batch`` x ``--clip-s``
seconds. Variants are interleaved (round-robin over the variants, ``--rounds`` times) so a
machine whose load changes during the run treats them alike; the median step time is reported.

Rows:
* ``lite-causal`` (the DQ/TS lite preset) and ``lite-causal-bs`` (band-split, models/bands.py);
* width/depth and hop variants of the band-split model;
* ``torch.compile`` of the band-split model (``--compile``, slow to start);
* torch threads 1 and 2;
* the data pipeline: building a batch of mixtures on the training thread vs in a DataLoader worker
  (needs ``--speech`` and simulates a small D1 bank under ``cache/``), reported as the step time
  with data included.

    .venv/bin/python benchmarks/bench_train.py [--batch 8 --clip-s 1 --rounds 4]
        [--speech ../shared/data/speechocean762] [--compile]

Writes ``benchmarks/results/train_throughput.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from realtime_tse.models import ModelConfig, build_model, count_parameters
from realtime_tse.train.losses import batch_loss

VARIANTS = [
    # label, preset, ModelConfig overrides
    ("lite-causal (shipped)", "lite-causal", {}),
    ("lite-causal-bs", "lite-causal-bs", {}),
    ("lite-causal-bs D48 H48", "lite-causal-bs", {"d_model": 48, "hidden": 48, "time_hidden": 96}),
    ("lite-causal-bs 3 DQ + 3 TS", "lite-causal-bs", {"n_dq": 3, "n_ts": 3}),
    ("lite-causal hop 32 ms", "lite-causal", {"n_fft": 512, "hop": 256}),
]


def _stepper(preset: str, overrides: dict, batch: int, clip_s: float, compile_: bool = False):
    cfg = ModelConfig.preset(preset, **overrides)
    torch.manual_seed(0)
    net = build_model(cfg)
    fwd = torch.compile(net) if compile_ else net
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    n = int(clip_s * cfg.sample_rate)
    x = torch.randn(batch, n) * 0.05
    b = {"mix": x, "target": x * 0.5, "d_q": torch.rand(batch) * 4, "kind": ["single"] * batch}

    def step(data=None):
        bb = b if data is None else data
        loss = batch_loss(fwd(bb["mix"], bb["d_q"]), bb, "si_sdr")
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
    return step, cfg, count_parameters(net)


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _data_rows(a, rows):
    """Step time of the band-split model with its data built inline vs by a DataLoader worker."""
    from realtime_tse.train.corpus import SpeechCorpus
    from realtime_tse.train.data import batches
    from realtime_tse.train.mixtures import MixtureSampler
    from realtime_tse.train.rirbank import RIRBank, build_bank
    from realtime_tse.train.rooms import room_preset

    room = room_preset("d1", n_rirs=200)
    bank_dir = Path("cache") / "bench_bank_d1"
    build_bank(room, bank_dir, workers=1, progress=False)
    bank = RIRBank(bank_dir)
    corpus = SpeechCorpus.from_folder(a.speech)
    step, cfg, _ = _stepper("lite-causal-bs", {}, a.batch, a.clip_s)
    sampler = MixtureSampler(bank, bank.indices(), corpus, cfg.sample_rate, a.clip_s, min_gap_m=1.0)
    for label, workers in [("lite-causal-bs + data inline", 0), ("lite-causal-bs + DataLoader worker", 1)]:
        it = batches(sampler, a.batch, 0, lambda s: {"p_presence": 0.9, "min_gap_m": 1.0}, workers)
        next(it)
        ts = []
        for _ in range(a.rounds * 2):
            t = time.perf_counter()
            step(next(it))
            ts.append(time.perf_counter() - t)
        s = sorted(ts)[len(ts) // 2]
        rows.append({"variant": label, "threads": torch.get_num_threads(), "seconds_per_step": s,
                     "audio_seconds_per_second": a.batch * a.clip_s / s})
        print(f"{label:36s} {s:6.2f} s/step {a.batch * a.clip_s / s:6.2f} audio-s/s", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--clip-s", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow start)")
    ap.add_argument("--speech", help="speech folder: also time the data pipeline (inline vs worker)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_throughput.json"))
    a = ap.parse_args(argv)
    rows = []
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.2f} on {os.cpu_count()} cores", flush=True)
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        variants = list(VARIANTS)
        if a.compile:
            variants.append(("lite-causal-bs torch.compile", "lite-causal-bs", {"compile": True}))
        steppers = []
        for label, preset, ov in variants:
            ov = dict(ov)
            comp = ov.pop("compile", False)
            step, cfg, n_par = _stepper(preset, ov, a.batch, a.clip_s, comp)
            step()  # warm-up (and compilation)
            steppers.append((label, preset, ov, step, cfg, n_par, []))
        for _ in range(a.rounds):
            for *_, step, _cfg, _n, ts in steppers:
                ts.append(_time(step))
        base = None
        for label, preset, ov, _s, cfg, n_par, ts in steppers:
            s = sorted(ts)[len(ts) // 2]
            aps = a.batch * a.clip_s / s
            base = base or aps
            rows.append({"variant": label, "preset": preset, "overrides": ov, "parameters": n_par,
                         "sample_rate": cfg.sample_rate, "batch": a.batch, "clip_s": a.clip_s,
                         "threads": threads, "seconds_per_step": s, "audio_seconds_per_second": aps,
                         "speedup_vs_shipped": aps / base})
            print(f"{threads} thr  {label:30s} {n_par:9,d} par {s:6.2f} s/step {aps:6.2f} audio-s/s "
                  f"x{aps / base:4.1f}", flush=True)
    if a.speech:
        torch.set_num_threads(1)
        _data_rows(a, rows)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"load_average_start": load, "load_average_end": os.getloadavg()[0],
                               "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
