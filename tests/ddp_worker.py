"""One rank of the two-process training test (tests/test_train_ddp.py), started by torchrun.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_worker.py DATA_DIR OUT_DIR

DATA_DIR holds room.toml, speech/ and bank/ (built by the test). Rank 0 sees every epoch as "no
better" (its plateau schedule's best is -inf), so it lowers the learning rate at each epoch end; rank
1's clock says its time budget ran out at once. Both must still train the same 4 steps at rank 0's
learning rate. Each rank writes OUT_DIR/rank<r>.json: step, lr, sha1 of its weights.
"""
import hashlib
import json
import math
import sys
import time
import types
from pathlib import Path

import torch

import realtime_tse.train.trainer as trainer_module
from realtime_tse.train.cli import load_room, prepare_data
from realtime_tse.train.trainer import TrainConfig, Trainer

TINY = {"d_model": 8, "hidden": 8, "time_hidden": 8, "n_dq": 1, "n_ts": 1}


def _late_clock():
    """A clock that reads true once (when the budget starts), then an hour later ever after."""
    calls = []

    def now() -> float:
        calls.append(1)
        return time.time() + (3600.0 if len(calls) > 1 else 0.0)
    return now


def main() -> None:
    torch.set_num_threads(1)
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = TrainConfig(batch=2, clip_s=0.5, steps_per_epoch=2, epochs=10, val_mixtures=2, threads=1,
                      lr_patience=1, lr_factor=0.5, model=dict(TINY))
    room = load_room(str(data / "room.toml"))
    room, _, samplers, info = prepare_data(room, str(data / "speech"), str(data / "bank"), None, 1, 8000,
                                           cfg.clip_s, cfg.seed, progress=False)
    tr = Trainer(cfg, room, samplers["train"], samplers["val"], out / "run", provenance={"data": info})
    if tr.rank == 0:
        tr.plateau.best = -math.inf
    else:
        trainer_module.time = types.SimpleNamespace(time=_late_clock())  # "the deadline has passed"
    tr.run(minutes=30, steps=4, progress=False)
    h = hashlib.sha1()
    for name, p in sorted(tr.net.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().numpy().tobytes())
    (out / f"rank{tr.rank}.json").write_text(json.dumps(
        {"rank": tr.rank, "step": tr.state["step"], "lr": tr.opt.param_groups[0]["lr"], "weights": h.hexdigest()}))


if __name__ == "__main__":
    main()
