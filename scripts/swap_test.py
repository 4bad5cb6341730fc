#!/usr/bin/env python3
"""Position-swap test of one or more checkpoints: picks it talkers by distance or by voice?

For each checkpoint, prints and writes to JSON:

* the swap test (``train/swaptest.py``) in the D1 room on the test split of ``--speech`` (speakers
  the model never heard) and on every voice of each ``--unseen`` folder (a corpus the model never
  heard, e.g. ``scripts/make_tts_corpus.py``'s flite and espeak-ng voices);
* the demo both ways: the shipped demo (flite ``rms`` at 1 m, ``slt`` at 3 m) and the same demo
  rendered with the voices swapped (``assets/demo/make_demo.py --swap``), each extracted at 1 m
  and 3 m through the product's own ``realtime_tse`` path, with the contrast towards the talker
  at the asked distance (dB, ``realtime_tse.train.swaptest.contrast_db``; > 0 is the right way).

    .venv/bin/python scripts/swap_test.py CKPT [CKPT ...] --speech ../speechocean762 \\
        --unseen runs/tts_voices --pairs 40 --json benchmarks/results/swap_test.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def demo_contrasts(ckpt: str, demo_dirs: dict) -> dict:
    """{rendering: {"1m": dB, "3m": dB}} for the demo folders ``demo_dirs`` {name: folder}."""
    from realtime_tse import load_model
    from realtime_tse.train.swaptest import contrast_db

    m = load_model(ckpt, device="cpu")
    out = {}
    for name, d in demo_dirs.items():
        truth = json.loads((Path(d) / "demo.json").read_text())
        sr = truth["sample_rate"]
        mix = sf.read(Path(d) / truth["files"]["mix"], dtype="float32")[0]
        near = sf.read(Path(d) / truth["files"]["near"], dtype="float32")[0]
        far = sf.read(Path(d) / truth["files"]["far"], dtype="float32")[0]
        row = {}
        for dist, asked, other in ((1.0, near, far), (3.0, far, near)):
            y = m.extract(mix, dist, sample_rate=sr)
            row[f"{dist:g}m"] = round(contrast_db(y, asked, other, mix), 2)
        row["voices"] = {k: v["voice"] for k, v in truth["talkers"].items()}
        out[name] = row
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ckpts", nargs="+")
    ap.add_argument("--speech", help="corpus whose test split is used (e.g. speechocean762)")
    ap.add_argument("--unseen", action="append", default=[], help="a corpus folder used whole")
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--n-rirs", type=int, default=4000)
    ap.add_argument("--no-demo", action="store_true")
    ap.add_argument("--json", help="write the report here")
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from realtime_tse.models.checkpoint import load_checkpoint
    from realtime_tse.file_write import write_json_atomic
    from realtime_tse.train.cli import load_room, prepare_data
    from realtime_tse.train.swaptest import format_swap, swap_test

    sets = []
    if a.speech:
        sets.append(("test split of " + Path(a.speech).name, a.speech, False))
    sets += [("every voice of " + Path(u).name, u, True) for u in a.unseen]
    report = {"pairs": a.pairs, "room": "d1", "models": {}}
    with tempfile.TemporaryDirectory() as td:
        demos = {}
        if not a.no_demo:
            demos["demo"] = ROOT / "assets" / "demo"
            swapped = Path(td) / "demo_swapped"
            subprocess.run([sys.executable, str(ROOT / "assets" / "demo" / "make_demo.py"), "--swap",
                            "--out", str(swapped)], check=True, stdout=subprocess.DEVNULL)
            demos["demo_swapped"] = swapped
        testers = {}   # (speech set, sample rate) -> its test sampler, made once for every checkpoint
        for ckpt in a.ckpts:
            net, meta = load_checkpoint(ckpt)
            rep = {"sets": {}}
            for label, folder, whole in sets:
                key = (label, net.cfg.sample_rate)
                if key not in testers:
                    testers[key] = prepare_data(load_room("d1"), folder, None, a.n_rirs, 2,
                                                net.cfg.sample_rate, 4.0, seed=12345, progress=False,
                                                test_all_speakers=whole)[2]["test"]
                r = swap_test(net, testers[key], a.pairs)
                rep["sets"][label] = r
                print(format_swap(f"{Path(ckpt).name} [{label}]", r), flush=True)
            if demos:
                rep["demo"] = demo_contrasts(ckpt, demos)
                for name, row in rep["demo"].items():
                    print(f"{Path(ckpt).name} [{name}: {row['voices']['near']} at 1 m, "
                          f"{row['voices']['far']} at 3 m]: contrast at 1 m {row['1m']:+.1f} dB, "
                          f"at 3 m {row['3m']:+.1f} dB", flush=True)
            report["models"][str(ckpt)] = rep
    if a.json:
        write_json_atomic(a.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
