"""The learning-rate schedule and the optimiser state in checkpoints, including the committed
resumable state written before the optimiser's param_groups were stored."""
import math
import shutil
import tomllib
import types
from pathlib import Path

import torch

from realtime_tse.models.checkpoint import load_training_state, read_metadata
from realtime_tse.train.rooms import room_preset
from realtime_tse.train.optim_state import optim_tensors
from realtime_tse.train.trainer import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / "experiments" / "train_state" / "tse-lite-causal-d1-last.safetensors"
CPU_RECIPE = REPO / "experiments" / "configs" / "lite_d1_cpu.toml"  # the recipe of STATE


def _trainer(cfg, out, resume=False):
    dummy = types.SimpleNamespace(seed=0, rng=None)  # no batches are drawn here
    return Trainer(cfg, room_preset("d1"), dummy, dummy, out, resume=resume, device="cpu")


def test_committed_training_state_resumes_and_round_trips(tmp_path):
    torch.set_num_threads(1)
    shutil.copy(STATE, tmp_path / "last.safetensors")
    _, prov = read_metadata(STATE)
    cfg = TrainConfig.from_dict(tomllib.loads(CPU_RECIPE.read_text())["train"])
    tr = _trainer(cfg, tmp_path, resume=True)
    st = prov["trainer"]
    assert tr.resumed_step == st["step"] > 0
    assert math.isclose(tr.opt.param_groups[0]["lr"], st["lr"])
    if "plateau" not in st:  # the older layout: best_val / bad_epochs seed the plateau schedule
        assert tr.plateau.num_bad_epochs == st["bad_epochs"] and tr.plateau.best == st["best_val"]
    saved = load_training_state(STATE)
    now = optim_tensors(tr.opt, tr.net)
    assert set(saved) == set(now) and len(now) > 0
    assert all(torch.equal(saved[k], now[k]) for k in saved)
    # written again in the current layout and resumed: the same moments and settings
    tr.save()
    tr2 = _trainer(cfg, tmp_path, resume=True)
    again = optim_tensors(tr2.opt, tr2.net)
    assert all(torch.equal(again[k], now[k]) for k in now)
    assert tr2.opt.param_groups[0]["betas"] == tr.opt.param_groups[0]["betas"]
    assert tr2.plateau.num_bad_epochs == tr.plateau.num_bad_epochs


def test_plateau_lowers_the_rate_after_patience_epochs_and_warmup_ramps(tmp_path):
    cfg = TrainConfig(lr=1e-3, lr_patience=3, lr_factor=0.8, warmup_steps=4, model={"d_model": 8, "hidden": 8,
                      "time_hidden": 8, "n_dq": 1, "n_ts": 1})
    tr = _trainer(cfg, tmp_path)
    rates = []
    for _ in range(5):  # warm-up as train_step drives it: step s trains at lr * (s + 1) / 4
        rates.append(tr.opt.param_groups[0]["lr"])
        tr.opt.step()  # no gradients: the weights stay, the schedulers see the optimiser step
        tr.state["step"] += 1
        tr._advance_warmup()
    assert [round(r, 8) for r in rates] == [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3]
    lrs = []
    for loss in [1.0, 2.0, 2.0, 2.0, 2.0, 0.5]:   # one best, then 3 epochs without a lower loss
        tr.plateau.step(loss)
        lrs.append(tr.opt.param_groups[0]["lr"])
    assert [round(x, 8) for x in lrs] == [1e-3, 1e-3, 1e-3, 8e-4, 8e-4, 8e-4]


def test_lr_schedule_overrides_the_plateau_rate_from_its_steps(tmp_path):
    cfg = TrainConfig(lr=1e-3, lr_schedule=[[10, 3e-4], [20, 1e-4]],
                      model={"d_model": 8, "hidden": 8, "time_hidden": 8, "n_dq": 1, "n_ts": 1})
    tr = _trainer(cfg, tmp_path)
    seen = []
    for step in (0, 9, 10, 19, 20, 500):
        tr.state["step"] = step
        tr._apply_lr_schedule()
        seen.append(tr.opt.param_groups[0]["lr"])
    assert seen == [1e-3, 1e-3, 3e-4, 3e-4, 1e-4, 1e-4] and tr.state["lr"] == 1e-4


def test_the_cpu_default_recipe_is_the_shipped_networks():
    """tse-train's default without a GPU trains the shipped network (its preset) with the first
    stage of its recipe; the shipped checkpoint was fine-tuned from such a state (``--init``) with
    the second stage, ``train/configs/lite_lstm_d1_swap_fast.toml``, whose every setting equals the
    recipe stored in its provenance."""
    from realtime_tse.train.cli import CPU_RECIPE as DEFAULT
    shipped = REPO / "assets" / "models" / "lite-lstm-d1.safetensors"
    cfg, prov = read_metadata(shipped)
    first = tomllib.loads(DEFAULT.read_text())["train"]
    TrainConfig.from_dict(first)                        # a valid recipe
    assert first["model_preset"] == cfg.preset == "lite-lstm"
    recipe = tomllib.loads((DEFAULT.parent / "lite_lstm_d1_swap_fast.toml").read_text())["train"]
    TrainConfig.from_dict(recipe)
    assert recipe["model_preset"] == cfg.preset
    stored = prov["train_config"]
    differ = {k: (v, stored.get(k)) for k, v in recipe.items() if stored.get(k) != v}
    assert not differ, differ
