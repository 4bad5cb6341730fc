"""Training: the loss goes down, resume works, tse-train / tse-eval run end to end on a user's room."""
import json

import numpy as np
import pytest
import torch

from realtime_tse.models.checkpoint import load_checkpoint, load_training_state
from realtime_tse.models.config import ModelConfig
from realtime_tse.models.net import build_model
from realtime_tse.train.cli import eval_main, train_main
from realtime_tse.train.corpus import SpeechCorpus
from realtime_tse.train.mixtures import MixtureSampler
from realtime_tse.train.rirbank import RIRBank, build_bank
from realtime_tse.train.rooms import distance_range, load_room_toml
from realtime_tse.train.trainer import TrainConfig, batch_loss

from tests.test_train_mixtures import _speech

TINY = {"d_model": 8, "hidden": 8, "time_hidden": 8, "n_dq": 1, "n_ts": 1}


@pytest.fixture(scope="module")
def room_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trainer")
    _speech(tmp / "speech", n_speakers=10)  # enough speakers for three disjoint splits
    speech = tmp / "speech"
    room_toml = tmp / "my_room.toml"
    room_toml.write_text("size = [5.0, 4.0, 2.7]\nmic = [2.5, 2.0, 1.0]\nrt60 = 0.3\nn_rirs = 16\nseed = 1\n"
                         "split = [0.5, 0.25, 0.25]\n")
    train_toml = tmp / "train.toml"
    train_toml.write_text('[train]\nbatch = 4\nclip_s = 0.5\nsteps_per_epoch = 2\nepochs = 3\nval_mixtures = 4\n'
                          'threads = 1\nwarmup_steps = 2\n[train.model]\n'
                          + "".join(f"{k} = {v}\n" for k, v in TINY.items()))
    return tmp, speech, room_toml, train_toml


def test_tiny_training_lowers_the_loss(room_setup):
    tmp, speech, room_toml, _ = room_setup
    room = load_room_toml(room_toml)
    build_bank(room, tmp / "bank_a", workers=1, progress=False)
    bank = RIRBank(tmp / "bank_a")
    sampler = MixtureSampler(bank, bank.indices(), SpeechCorpus.from_folder(speech), 8000, 0.5, seed=0)
    batch = sampler.sample_batch(4, start=0)
    torch.manual_seed(0)
    net = build_model(ModelConfig.preset("lite-causal", **TINY))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = batch_loss(net(batch["mix"], batch["d_q"]), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0, losses


def test_train_config_schedule():
    cfg = TrainConfig(epochs=10, steps_per_epoch=10, curriculum=[[0, 1.5], [30, 0.75], [60, 0.0]])
    assert cfg.presence_at(0) == 0.9 and cfg.presence_at(49) == 0.9 and cfg.presence_at(50) == 0.7
    assert cfg.gap_at(0) == 1.5 and cfg.gap_at(30) == 0.75 and cfg.gap_at(99) == 0.0
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"batchsize": 3})


def test_tse_train_and_eval_on_a_custom_room(room_setup, tmp_path, capsys):
    tmp, speech, room_toml, train_toml = room_setup
    run = tmp_path / "run"
    args = [str(room_toml), "--speech", str(speech), "--out", str(run), "--train-config", str(train_toml),
            "--bank", str(tmp / "bank_cli"), "--workers", "1", "--quiet"]
    assert train_main(args + ["--steps", "3"]) == 0
    log = (run / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,epoch") and len(log) == 3  # epochs end at steps 2 and 3 (budget)
    net, meta = load_checkpoint(run / "last.safetensors")
    assert meta["provenance"]["trainer"]["step"] == 3
    # the query range is the room's largest talker distance rounded up to 0.5 m
    assert meta["config"].sample_rate == 8000
    assert meta["config"].d_max == np.ceil(2 * distance_range(load_room_toml(room_toml))) / 2
    assert meta["provenance"]["room"]["name"] == "my_room"
    assert len(load_training_state(run / "last.safetensors")) > 0
    assert (run / "best.safetensors").exists()
    # resume continues the step count instead of starting again
    assert train_main(args + ["--steps", "2", "--resume"]) == 0
    _, meta2 = load_checkpoint(run / "last.safetensors")
    assert meta2["provenance"]["trainer"]["step"] == 5
    out_json = tmp_path / "eval.json"
    capsys.readouterr()
    assert eval_main([str(run / "best.safetensors"), "--scenario", str(room_toml), "--speech", str(speech),
                      "--bank", str(tmp / "bank_cli"), "--mixtures", "4", "--repeats", "2",
                      "--clip-s", "0.5", "--json", str(out_json), "--quiet"]) == 0
    rep = json.loads(out_json.read_text())
    m = rep["models"]["best"]["mean"]
    assert rep["repeats"] == 2 and len(rep["models"]["best"]["repeats"]) == 2
    assert np.isfinite(m["mae_m"]) and m["mae_m"] >= 0 and np.isfinite(m["const_2p5_mae_m"])
    assert 0 <= m["det_found"] <= 1 and m["det_false"] >= 0 and 0 <= m["det_none"] <= 1
    out = capsys.readouterr().out
    assert "SDRi" in out and "detector (what the app shows)" in out


def test_detector_counts_found_and_false():
    from realtime_tse.train.evaluate import detector_counts
    assert detector_counts([], [1.0, 3.0]) == (0, 0)
    assert detector_counts([1.2, 3.0], [1.0, 3.0]) == (2, 0)
    assert detector_counts([1.2, 2.0], [1.0, 3.0]) == (1, 1)   # 2.0 m is 1 m from 3 m


def test_tse_train_errors_are_messages(tmp_path, capsys):
    assert train_main(["nowhere.toml", "--speech", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "tse-train: error" in capsys.readouterr().err
    assert eval_main([str(tmp_path / "none.safetensors"), "--scenario", "d1", "--speech", str(tmp_path)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_best_checkpoint_follows_si_sdri_and_data_resumes_identically(room_setup, tmp_path, monkeypatch):
    """best.safetensors is the epoch with the highest validation SI-SDRi (absence quiet), not the
    lowest loss; and the scheduled loader gives step s the same mixtures whether started at 0 or s."""
    import realtime_tse.train.trainer as tr
    from realtime_tse.train.data import batches

    tmp, speech, room_toml, _ = room_setup
    room = load_room_toml(room_toml)
    build_bank(room, tmp / "bank_b", workers=1, progress=False)
    bank = RIRBank(tmp / "bank_b")
    corpus = SpeechCorpus.from_folder(speech)
    mk = lambda: MixtureSampler(bank, bank.indices(), corpus, 8000, 0.5, seed=0)  # noqa: E731
    cfg = TrainConfig(batch=2, clip_s=0.5, steps_per_epoch=1, epochs=10, val_mixtures=2, threads=1,
                      workers=0, model=dict(TINY))
    t = tr.Trainer(cfg, room, mk(), mk(), tmp_path / "run")
    (tmp_path / "run").mkdir()
    seq = iter([{"val_loss": -1.0, "si_sdri_single": 1.5, "absence_level_db": -20.0},
                {"val_loss": -4.0, "si_sdri_single": 0.1, "absence_level_db": -20.0},   # lower loss
                {"val_loss": -2.0, "si_sdri_single": 0.8, "absence_level_db": -20.0}])
    monkeypatch.setattr(tr, "validate", lambda *a, **k: next(seq))
    for _ in range(3):
        t._end_epoch([0.0], [1.0], True)
    _, meta = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert meta["provenance"]["val_metrics"]["si_sdri_single"] == 1.5

    def take(start_step, n_steps):
        it = batches(mk(), 2, start_step, cfg.sampler_settings, workers=0)
        return [next(it) for _ in range(n_steps)]
    a = take(0, 3)[2]
    b = take(2, 1)[0]
    assert torch.equal(a["mix"], b["mix"]) and a["kind"] == b["kind"] and torch.equal(a["d_q"], b["d_q"])
    c = take(0, 1)[0]
    assert not torch.equal(a["mix"], c["mix"])


def _room_and_sampler(room_setup, bank_name: str):
    """The fixture's room and a factory of 8 kHz, 0.5 s samplers over a bank built once per name."""
    tmp, speech, room_toml, _ = room_setup
    room = load_room_toml(room_toml)
    if not (tmp / bank_name).exists():
        build_bank(room, tmp / bank_name, workers=1, progress=False)
    bank = RIRBank(tmp / bank_name)
    corpus = SpeechCorpus.from_folder(speech)
    return room, lambda: MixtureSampler(bank, bank.indices(), corpus, 8000, 0.5, seed=0)


def test_log_gains_new_columns_on_resume_without_misaligning(room_setup, tmp_path):
    import csv as _csv

    import realtime_tse.train.trainer as tr
    room, mk = _room_and_sampler(room_setup, "bank_b")
    s = mk()
    t = tr.Trainer(TrainConfig(batch=2, clip_s=0.5, model=dict(TINY)), room, s, s, tmp_path / "run")
    (tmp_path / "run").mkdir()
    t._log({"step": 1, "a": 1.0})
    t._log({"step": 2, "a": 2.0})
    t._log({"step": 3, "a": 3.0, "b": 9.0})
    t._log({"step": 4, "a": 4.0, "b": 8.0})
    rows = list(_csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"]
    assert [r["b"] for r in rows] == ["", "", "9.0", "8.0"] and rows[1]["a"] == "2.0"


def test_token_pit_then_token_order_train_and_log_their_figures(room_setup, tmp_path):
    import csv as _csv

    import realtime_tse.train.trainer as tr
    room, mk = _room_and_sampler(room_setup, "bank_c")
    cfg = TrainConfig.from_dict({"batch": 4, "clip_s": 0.5, "model": dict(TINY), "paired_queries": True,
                                 "pit_steps": 100, "pit_queries": [0.5, 4.5], "token_order_from": 2,
                                 "steps_per_epoch": 2, "epochs": 2, "val_mixtures": 16, "threads": 1,
                                 "presence_first": 1.0, "presence_second": 1.0})
    t = tr.Trainer(cfg, room, mk(), mk(), tmp_path / "run")
    m = t.run(steps=4, progress=False)
    assert np.isfinite(m["pit_fixed_si_sdri"]) and np.isfinite(m["token_order_si_sdri"])
    assert m["pit_fixed_si_sdri"] >= m["token_order_si_sdri"] - 1e-6   # PIT takes the better assignment
    rows = list(_csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [r["step"] for r in rows] == ["2", "4"] and rows[-1]["token_order_si_sdri"] != ""


def test_a_training_run_with_warmup_and_plateau_prints_no_warnings(room_setup, tmp_path):
    import warnings

    import realtime_tse.train.trainer as tr
    room, mk = _room_and_sampler(room_setup, "bank_d")
    cfg = TrainConfig.from_dict({"batch": 2, "clip_s": 0.5, "model": dict(TINY), "lr": 1e-3,
                                 "warmup_steps": 3, "steps_per_epoch": 2, "epochs": 3,
                                 "val_mixtures": 4, "threads": 1})
    t = tr.Trainer(cfg, room, mk(), mk(), tmp_path / "run")
    rates = []
    t.opt.step = _recording(t.opt.step, lambda: rates.append(t.opt.param_groups[0]["lr"]))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        t.run(steps=5, progress=False)
    assert [str(w.message)[:80] for w in seen if not issubclass(w.category, ResourceWarning)] == []
    # the warm-up's first rate is used, not skipped: lr / 3, 2 lr / 3, then lr
    assert [round(r, 8) for r in rates] == [round(1e-3 / 3, 8), round(2e-3 / 3, 8), 1e-3, 1e-3, 1e-3]


def _recording(step, note):
    """``step`` (an optimiser's step method) calling ``note()`` first; it keeps the attribute torch's
    schedulers set on the bound method, so they still see each optimiser step."""
    def wrapped(*a, **k):
        note()
        return step(*a, **k)
    wrapped.__dict__.update(getattr(step, "__dict__", {}))
    return wrapped
