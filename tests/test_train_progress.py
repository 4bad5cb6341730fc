"""What tse-train shows: progress against the budget given, the resume message, the closing line."""
import math

import pytest

from realtime_tse.train.cli import train_main
from realtime_tse.train.progress import BudgetProgress, summary_line, verdict

from tests.test_train_trainer import room_setup  # noqa: F401  (the module's tiny room, speech, config)


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_minutes_budget_estimates_the_steps_it_will_reach():
    clock = Clock(1000.0)
    # a 3-minute budget that started 60 s ago (RIR simulation); the configured epochs say 100,000 steps
    p = BudgetProgress(start_step=0, stop_step=100_000, deadline=1000.0 + 120, started_at=940.0,
                       enabled=True, clock=clock)
    assert p.bar.total == 180 and p.bar.n == 60          # seconds of the budget, not steps
    assert p.expected_stop_step() is None                 # no step measured yet: no guess
    for k in range(1, 6):
        clock.t += 6.0
        p.update(k, loss=-3.0)
    # 5 steps of 6 s, 90 s left -> 15 more steps
    assert math.isclose(p.seconds_per_step(), 6.0)
    assert p.expected_stop_step() == 20
    assert p.describe() == "step 5 of ~20, 6.0 s/step, loss -3.00"
    assert p.bar.n == 90
    p.close()


def test_minutes_budget_estimate_of_a_resumed_run_and_step_cap():
    clock = Clock(0.0)
    p = BudgetProgress(start_step=1550, stop_step=1560, deadline=600.0, enabled=False, clock=clock)
    clock.t = 20.0
    p.update(1552)
    # 10 s per step would reach step 1610 by the deadline, but the step budget ends at 1560
    assert p.expected_stop_step() == 1560
    assert p.describe().startswith("step 1552 of ~1560")


def test_step_budget_shows_steps():
    p = BudgetProgress(start_step=10, stop_step=13, enabled=True, clock=Clock(0.0))
    assert p.bar.total == 3 and p.bar.unit == "step"
    p.update(12)
    assert p.bar.n == 2 and p.expected_stop_step() == 13
    p.close()


def test_closing_line_wording_follows_si_sdri():
    line = summary_line({"si_sdri_single": -0.2, "absence_level_db": -15.06}, 1550, 25, "runs/x")
    assert line.startswith("not separating yet: SI-SDRi -0.2 dB on validation, absence output -15.1 dB re input")
    assert "step 1,550 (25 this run)" in line and line.endswith("runs/x")
    assert verdict({"si_sdri_single": 0.99}) == "not separating yet"
    assert verdict({"si_sdri_single": 1.0}) == "starting to separate"
    assert verdict({"si_sdri_single": 3.4}) == "separating"
    assert verdict({"si_sdri_single": float("nan")}) == "no single-talker validation queries"
    assert summary_line({}, 7, 0, "r").startswith("nothing trained (step 7)")
    assert "\n" not in line


def test_tse_train_says_where_it_resumes_and_ends_with_one_line(room_setup, tmp_path, capsys):  # noqa: F811
    tmp, speech, room_toml, train_toml = room_setup
    run = tmp_path / "run"
    args = [str(room_toml), "--speech", str(speech), "--out", str(run), "--train-config", str(train_toml),
            "--bank", str(tmp / "bank_cli"), "--workers", "1"]
    assert train_main(args + ["--steps", "2", "--resume"]) == 0
    out, err = capsys.readouterr()
    assert "nothing to resume" in err and "starting at step 0" in err
    assert train_main(args + ["--steps", "1", "--resume"]) == 0
    out, err = capsys.readouterr()
    assert "resuming from step 2 " in err
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "step 3 (1 this run)" in lines[0]
    assert lines[0].split(":")[0] in ("not separating yet", "starting to separate", "separating")
    # a budget already spent when training would start: nothing trained, said plainly
    assert train_main(args + ["--minutes", "0", "--resume"]) == 0
    out, err = capsys.readouterr()
    assert out.strip().startswith("nothing trained: the 0-minute budget went into data preparation")
    assert "budget 0 min from the start" in err and "0 s left for training" in err


def test_tse_eval_cpu_default_and_per_mixture_progress(room_setup, tmp_path, capsys):  # noqa: F811
    import json

    import torch

    from realtime_tse.models.checkpoint import save_checkpoint
    from realtime_tse.models.config import ModelConfig
    from realtime_tse.models.net import build_model
    from realtime_tse.train.cli import CPU_EVAL, eval_main
    from tests.test_train_trainer import TINY

    if torch.cuda.is_available():
        pytest.skip("the CPU default is what this checks")
    tmp, speech, room_toml, _ = room_setup
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", build_model(ModelConfig.preset("lite-causal", **TINY)))
    out = tmp_path / "eval.json"
    assert eval_main([str(ckpt), "--scenario", str(room_toml), "--speech", str(speech), "--bank",
                      str(tmp / "bank_cli"), "--workers", "1", "--clip-s", "0.5", "--repeats", "1",
                      "--json", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"1 repeats x {CPU_EVAL[0]} mixtures, distance scan on {CPU_EVAL[1]} of each" in err
    assert f"{CPU_EVAL[0]}/{CPU_EVAL[0]}" in err and "repeat 1/1" in err     # per-mixture progress
    rep = json.loads(out.read_text())
    assert rep["mixtures_per_repeat"] == CPU_EVAL[0] and rep["scan_mixtures_per_repeat"] == CPU_EVAL[1]


def test_all_speakers_tests_on_every_speaker_and_keeps_the_training_split(room_setup):  # noqa: F811
    from realtime_tse.train.cli import load_room, prepare_data

    tmp, speech, room_toml, _ = room_setup
    args = (load_room(str(room_toml)), str(speech), str(tmp / "bank_cli"), None, 1, 8000, 0.5)
    _, _, split, info = prepare_data(*args, seed=1, progress=False)
    _, _, every, info_all = prepare_data(*args, seed=1, progress=False, test_all_speakers=True)
    assert info["speakers"]["test"] < info_all["speakers"]["test"] == 10   # the fixture's 10 speakers
    assert info_all["speakers"]["train"] == info["speakers"]["train"]
    assert set(every["test"].corpus.speakers) > set(split["test"].corpus.speakers)
