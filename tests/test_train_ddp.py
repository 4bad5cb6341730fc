"""Two training processes under torchrun (gloo, CPU): one stop decision, one learning rate, same weights."""
import json
import os
import subprocess
import sys
from pathlib import Path

from realtime_tse.train.rirbank import build_bank
from realtime_tse.train.rooms import load_room_toml

from tests.test_train_mixtures import _speech

REPO = Path(__file__).resolve().parents[1]


def test_two_ranks_keep_identical_weights_and_learning_rate(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    _speech(data / "speech", n_speakers=10)
    (data / "room.toml").write_text("size = [5.0, 4.0, 2.7]\nmic = [2.5, 2.0, 1.0]\nrt60 = 0.3\nn_rirs = 16\n"
                                    "seed = 1\nsplit = [0.5, 0.25, 0.25]\n")
    build_bank(load_room_toml(data / "room.toml"), data / "bank", workers=1, progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(REPO / "tests" / "ddp_worker.py"), str(data), str(out)],
                       env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((out / f"rank{k}.json").read_text()) for k in (0, 1)]
    # rank 1's own clock said stop at once; both followed rank 0's decision and trained 4 steps
    assert [x["step"] for x in ranks] == [4, 4]
    # rank 0 lowered the rate at both epoch ends (steps 2 and 4): 1e-3 * 0.5 * 0.5, on both ranks
    assert [x["lr"] for x in ranks] == [2.5e-4, 2.5e-4]
    assert ranks[0]["weights"] == ranks[1]["weights"]
