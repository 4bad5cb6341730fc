"""Fine-tuning on measured RIRs: a calibration folder (written through the simulated-room test double)
feeds ``tse-train --measured --init`` and ``tse-eval --measured`` (no ../shared: synthetic speech)."""
from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest
import torch

from realtime_tse.models.checkpoint import load_checkpoint, load_training_state, save_checkpoint
from realtime_tse.models.config import ModelConfig
from realtime_tse.models.net import build_model
from realtime_tse.calibration.measure import SweepConfig
from realtime_tse.calibration.folder import RoomSetup
from realtime_tse.cli.calibrate import CalibrateOptions, run_calibration
from tests.calibration_fixtures import FS, FakeRoom, room_rirs
from tests.test_train_mixtures import _speech
from tests.test_train_trainer import TINY
from realtime_tse.train.cli import eval_main, prepare_measured, train_main
from realtime_tse.train.measured import MeasuredRoom
from realtime_tse.train.trainer import TrainConfig, Trainer

SETUP = RoomSetup("lab", (5.0, 4.0, 2.7), (1.0, 1.0, 1.0))
DISTANCES = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("measured")
    cfg = SweepConfig(sample_rate=FS, sweep_s=1.0, repeats=1, gap_s=1.0, lead_s=0.3)
    opts = CalibrateOptions(out=tmp / "my_room", setup=SETUP, cfg=cfg, distances=DISTANCES,
                            latency_s=0.07, interactive=False)
    out = run_calibration(opts, FakeRoom(room_rirs(SETUP, DISTANCES, 0.3), 1120),
                          say=lambda s: None)
    _speech(tmp / "speech", n_speakers=10)
    torch.manual_seed(0)
    init = tmp / "d3-like.safetensors"  # stands in for a model trained on a simulated bank
    save_checkpoint(init, build_model(ModelConfig.preset("lite-causal", **TINY)),
                    {"room": {"name": "lab-sim"}, "trainer": {"step": 1234}})
    train_toml = tmp / "train.toml"
    train_toml.write_text('[train]\nbatch = 2\nclip_s = 0.5\nsteps_per_epoch = 2\nepochs = 3\n'
                          'val_mixtures = 2\nthreads = 1\n')
    return out, tmp / "speech", init, train_toml


def test_init_loads_weights_only(measured, tmp_path):
    out, speech, init, _ = measured
    net0, meta0 = load_checkpoint(init)
    rb, samplers, info, notes = prepare_measured(str(out / "rirs.csv"), str(speech), 8000, 0.5, 0, 0.5)
    assert info["rirs"] == {"train": 4, "val": 4, "test": 2} and "training RIRs" in notes[0]
    room = MeasuredRoom("lab", 0.5, 3.0, str(out / "rirs.csv"))
    tr = Trainer(TrainConfig(batch=2, clip_s=0.5, threads=1, model_preset="paper"), room,
                 samplers["train"], samplers["val"], tmp_path / "run", init=init,
                 init_overrides={"r_spk": 0.25})
    assert tr.net.cfg == meta0["config"].__class__(**{**meta0["config"].__dict__, "r_spk": 0.25})
    for (k, a), b in zip(tr.net.state_dict().items(), net0.state_dict().values()):
        assert torch.equal(a, b), k
    assert tr.state["step"] == 0 and not tr.opt.state_dict()["state"]  # fresh optimiser
    assert tr.provenance["init"]["step"] == 1234 and tr.provenance["init"]["room"] == "lab-sim"


def test_tse_train_fine_tunes_and_tse_eval_reports_on_measured_rirs(measured, tmp_path, capsys,
                                                                     record_property):
    out, speech, init, train_toml = measured
    run = tmp_path / "ft"
    t0 = time.time()
    assert train_main([str(out / "room.toml"), "--measured", str(out / "rirs.csv"), "--init",
                       str(init), "--speech", str(speech), "--out", str(run), "--train-config",
                       str(train_toml), "--steps", "3", "--lr", "3e-4"]) == 0
    wall = time.time() - t0
    err = capsys.readouterr().err
    assert f"fine-tuning {init} on lab (6 measured RIRs" in err
    net, meta = load_checkpoint(run / "last.safetensors")
    prov = meta["provenance"]
    st = prov["trainer"]
    assert st["step"] == 3 and prov["init"]["checkpoint"] == str(init)
    assert prov["data"]["measured_rirs"].endswith("rirs.csv") and prov["data"]["rirs"]["train"] == 4
    assert prov["train_config"]["lr"] == 3e-4 and len(load_training_state(run / "last.safetensors"))
    assert meta["config"] == load_checkpoint(init)[1]["config"]  # the init's model, r_spk kept
    figures = (f"3 fine-tuning steps (batch 2 x 0.5 s, tiny model, 1 thread): "
               f"{st['train_seconds'] / 3:.2f} s per step, {wall:.1f} s wall with data loading")
    print(figures)
    record_property("fine_tune", figures)
    js = tmp_path / "eval.json"
    assert eval_main([str(run / "best.safetensors"), "--measured", str(out / "rirs.csv"), "--speech",
                      str(speech), "--mixtures", "2", "--repeats", "1", "--scan-mixtures", "1",
                      "--clip-s", "0.5", "--json", str(js), "--quiet"]) == 0
    rep = json.loads(js.read_text())
    assert rep["scenario"] == "measured:lab" and rep["data"]["rirs"]["test"] == 2
    assert np.isfinite(rep["models"]["best"]["mean"]["mae_m"])
    # without a room TOML: the measured RIRs alone
    assert train_main(["--measured", str(out / "rirs.csv"), "--init", str(init), "--speech",
                       str(speech), "--out", str(tmp_path / "ft2"), "--train-config", str(train_toml),
                       "--steps", "1", "--r-spk", "0.3", "--quiet"]) == 0
    m2 = load_checkpoint(tmp_path / "ft2" / "last.safetensors")[1]
    assert m2["config"].r_spk == 0.3 and m2["provenance"]["room"]["measured"].endswith("rirs.csv")


def test_measured_errors_are_messages(measured, tmp_path, capsys):
    out, speech, init, _ = measured
    rows = list(csv.DictReader(open(out / "rirs.csv")))
    only_train = tmp_path / "train_only.csv"
    with open(only_train, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows([{**r, "file": str(out / r["file"]), "split": "train"} for r in rows])
    assert eval_main([str(init), "--measured", str(only_train), "--speech", str(speech)]) == 2
    assert "its test split holds 0 RIR(s)" in capsys.readouterr().err
    one = tmp_path / "one.csv"
    with open(one, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerow({**rows[0], "file": str(out / rows[0]["file"])})
    assert train_main(["--measured", str(one), "--speech", str(speech), "--out",
                       str(tmp_path / "r"), "--quiet"]) == 2
    assert "a mixture needs two" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["--speech", str(speech), "--out", str(tmp_path / "r")])
    assert "ROOM is required" in capsys.readouterr().err
