"""Copy a run's checkpoint into assets/models/ with the provenance a user needs (credits, run log,
measured figures).

    .venv/bin/python scripts/publish_model.py runs/lite-d1/best.safetensors \
        assets/models/lite-lstm-d1.safetensors [--eval eval.json [--eval-model NAME]] [--state]

``--eval``: a ``tse-eval --json`` report of this checkpoint (with the position-swap test: tse-eval
runs it unless ``--swap-pairs 0``), stored as ``provenance["evaluation"]``; the app's Model box and
the headless run show its figures (SI-SDRi, output where no one talks, right talker in both
swapped positions; ``realtime_tse.models.provenance.measured_figures``). ``--eval-model``: which of the report's
models is this checkpoint (default: the one named like the source file, else the first).

``--state`` also copies the run's resumable last.safetensors (weights + Adam state) and log.csv to
experiments/train_state/ (outside the installed packages), so training can continue on a fresh machine.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from realtime_tse.models.checkpoint import load_checkpoint, save_checkpoint
from realtime_tse.model_card import measured_line

REPO = Path(__file__).resolve().parent.parent
CREDIT = ("Speech: speechocean762 (Zhang et al., Interspeech 2021, arXiv 2104.01378), OpenSLR SLR101, "
          "CC BY 4.0; RIRs simulated with pyroomacoustics (randomised image method).")


def evaluation(path, name: str | None, stem: str) -> dict:
    """The ``tse-eval --json`` report at ``path`` with ``"model"`` set to this checkpoint's entry:
    ``name``, else the entry called ``stem``, else the first. Raises SystemExit naming the problem
    (no models in the report, or ``name`` not among them)."""
    ev = json.loads(Path(path).read_text())
    models = ev.get("models") if isinstance(ev, dict) else None
    if not isinstance(models, dict) or not models:
        raise SystemExit(f"{path}: not a tse-eval report (no \"models\")")
    if name is not None and name not in models:
        raise SystemExit(f"{path}: no model {name!r} (it has {', '.join(models)})")
    ev["model"] = name or (stem if stem in models else next(iter(models)))
    missing = [k for k in ("si_sdri_single", "absence_level_db")
               if k not in (models[ev["model"]].get("mean") or {})]
    if "swap" not in models[ev["model"]]:
        missing.append("swap (tse-eval --swap-pairs N)")
    if missing:
        print(f"note: {path} lacks {', '.join(missing)}: shown as not measured")
    return ev


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--eval", help="tse-eval JSON to store in the provenance")
    ap.add_argument("--eval-model", help="the report's entry that is this checkpoint")
    ap.add_argument("--state", action="store_true")
    a = ap.parse_args(argv)
    net, meta = load_checkpoint(a.src)
    prov = dict(meta["provenance"])
    prov["credits"] = CREDIT
    prov["source_run"] = str(Path(a.src).parent)
    if a.eval:
        prov["evaluation"] = evaluation(a.eval, a.eval_model, Path(a.src).stem)
    save_checkpoint(a.dst, net, prov)
    print(f"wrote {a.dst} (step {prov.get('trainer', {}).get('step')})")
    print(measured_line(prov))
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
