"""Copy a run's checkpoint into assets/models/ with the provenance a user needs (credits, run log).

    .venv/bin/python scripts/publish_model.py runs/lite-d1/best.safetensors \
        assets/models/lite-lstm-d1.safetensors [--eval eval.json] [--state]

``--state`` also copies the run's resumable last.safetensors (weights + Adam state) and log.csv to
experiments/train_state/ (outside the installed packages), so training can continue on a fresh machine.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from models.checkpoint import load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parent.parent
CREDIT = ("Speech: speechocean762 (Zhang et al., Interspeech 2021, arXiv 2104.01378), OpenSLR SLR101, "
          "CC BY 4.0; RIRs simulated with pyroomacoustics (randomised image method).")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--eval", help="tse-eval JSON to store in the provenance")
    ap.add_argument("--state", action="store_true")
    a = ap.parse_args(argv)
    net, meta = load_checkpoint(a.src)
    prov = dict(meta["provenance"])
    prov["credits"] = CREDIT
    prov["source_run"] = str(Path(a.src).parent)
    if a.eval:
        prov["evaluation"] = json.loads(Path(a.eval).read_text())
    save_checkpoint(a.dst, net, prov)
    print(f"wrote {a.dst} (step {prov.get('trainer', {}).get('step')})")
    if a.state:
        run = Path(a.src).parent
        st = REPO / "experiments" / "train_state"
        st.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run / "last.safetensors", st / (Path(a.dst).stem + "-last.safetensors"))
        shutil.copy2(run / "log.csv", st / (Path(a.dst).stem + "-log.csv"))
        print(f"copied resumable state to {st}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
