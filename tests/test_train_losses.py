"""Training losses (train/losses.py), checkpoint selection (realtime_tse.train.validation.selection_key), the scheduled
data loader (train/data.py)."""
import math

import numpy as np
import pytest
import torch

from realtime_tse.train.losses import batch_loss, presence_loss, spectral_loss
from realtime_tse.train.train_config import TrainConfig
from realtime_tse.train.validation import selection_key


def _speechlike(n=8000, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 8000
    env = (torch.sin(2 * math.pi * 3 * t) > 0).float()
    return (torch.randn(1, n, generator=g) * 0.05 * env + 0.05 * torch.sin(2 * math.pi * 220 * t) * env)


def test_si_sdr_loss_ignores_gain_but_sdr_loss_rewards_it():
    x = _speechlike()
    other = _speechlike(seed=1)
    mix = x + other
    # half the mixture: the paper's SDR loss improves, the SI-SDR loss does not move
    assert presence_loss("sdr", 0.5 * mix, x) < presence_loss("sdr", mix, x) - 1.0
    assert abs(float(presence_loss("si_sdr", 0.5 * mix, x) - presence_loss("si_sdr", mix, x))) < 1e-3
    # the target itself is the best answer for each
    for name in ("sdr", "si_sdr", "si_sdr_level", "spectral"):
        assert presence_loss(name, x, x) < presence_loss(name, mix, x)
    # silence for a presence query: free under plain SI-SDR, punished per dB by the level term
    good = x + 0.1 * other
    assert abs(float(presence_loss("si_sdr", 1e-3 * good, x) - presence_loss("si_sdr", good, x))) < 1e-2
    assert float(presence_loss("si_sdr_level", 1e-3 * good, x) - presence_loss("si_sdr_level", good, x)) > 25


def test_spectral_loss_is_zero_at_target_and_level_independent():
    x, y = _speechlike(), _speechlike(seed=2)
    assert float(spectral_loss(x, x)) < 1e-8
    a, b = float(spectral_loss(y, x)), float(spectral_loss(10 * y, 10 * x))
    assert a > 0.01 and abs(a - b) / a < 0.05


def test_batch_loss_finite_with_silent_targets_and_grad():
    mix = torch.cat([_speechlike(seed=s) for s in range(3)])
    tgt = mix.clone()
    tgt[1] = 0.0
    est = (0.7 * mix).requires_grad_(True)
    for name in ("sdr", "si_sdr", "si_sdr_level", "spectral"):
        loss = batch_loss(est, {"mix": mix, "target": tgt, "kind": ["single", "absence", "both"]}, name)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(est.grad).all()
        est.grad = None
    with pytest.raises(ValueError):
        presence_loss("l1", mix, tgt)


def test_loss_schedule():
    cfg = TrainConfig(presence_loss="si_sdr", loss_schedule=[[100, "sdr"]])
    assert cfg.loss_at(0) == "si_sdr" and cfg.loss_at(99) == "si_sdr" and cfg.loss_at(100) == "sdr"


def test_lr_schedule_fixes_rates_from_its_steps_and_rejects_bad_entries():
    cfg = TrainConfig.from_dict({"lr": 1e-3, "lr_schedule": [[100, 3e-4], [200, 1e-4]]})
    assert cfg.lr_at(99) is None and cfg.lr_at(100) == 3e-4 and cfg.lr_at(199) == 3e-4
    assert cfg.lr_at(200) == 1e-4 and cfg.lr_at(10**6) == 1e-4 and TrainConfig().lr_at(5) is None
    for bad in ([[200, 1e-4], [100, 3e-4]], [[100, 0.0]], [[100]]):
        with pytest.raises(ValueError, match="lr_schedule"):
            TrainConfig.from_dict({"lr_schedule": bad})


def test_best_checkpoint_is_chosen_by_si_sdri_not_loss():
    gain_only = {"val_loss": -3.0, "si_sdri_single": 0.0, "absence_level_db": -15.0}
    selective = {"val_loss": -1.0, "si_sdri_single": 2.0, "absence_level_db": -12.0}
    loud_absence = {"val_loss": -5.0, "si_sdri_single": 4.0, "absence_level_db": -2.0}
    assert selection_key(selective) > selection_key(gain_only)
    assert selection_key(selective) > selection_key(loud_absence)   # absence floor first
    assert selection_key(loud_absence) > selection_key({"si_sdri_single": 3.0, "absence_level_db": -1.0})


def test_level_curriculum_is_linear_and_ends_at_its_last_value():
    cfg = TrainConfig(level_curriculum=[[0, 6.0], [100, 0.0]])
    assert cfg.boost_at(0) == 6.0 and abs(cfg.boost_at(50) - 3.0) < 1e-9 and cfg.boost_at(100) == 0.0
    assert cfg.boost_at(10_000) == 0.0 and TrainConfig().boost_at(5) == 0.0
    s = cfg.sampler_settings(25)
    assert set(s) == {"p_presence", "min_gap_m", "near_boost_db", "p_single"} and abs(s["near_boost_db"] - 4.5) < 1e-9
    assert s["p_single"] == 0.0 and TrainConfig(single_talker=0.3).sampler_settings(0)["p_single"] == 0.3


def test_pit_pairs_scores_each_pair_by_its_better_assignment():
    g = torch.Generator().manual_seed(3)
    t0, t1, mix = (torch.randn(1, 4000, generator=g) for _ in range(3))
    tgt = torch.cat([t0, t1])
    good = tgt + 0.1 * torch.randn(2, 4000, generator=g)
    swapped = good.flip(0)
    b = {"target": tgt, "mix": torch.cat([mix, mix]), "kind": ["single", "single"]}
    for name in ("si_sdr", "sdr"):
        right = float(batch_loss(good, b, name))
        wrong = float(batch_loss(swapped, b, name))
        assert wrong > right + 10  # the query-bound loss punishes the swapped answer ...
        assert abs(float(batch_loss(swapped, b, name, pit_pairs=True)) - right) < 1e-4  # ... PIT not
        assert abs(float(batch_loss(good, b, name, pit_pairs=True)) - right) < 1e-4


def test_pit_pairs_leave_pairs_with_an_absence_query_alone():
    g = torch.Generator().manual_seed(4)
    t0, mix = torch.randn(1, 4000, generator=g), torch.randn(1, 4000, generator=g)
    b = {"target": torch.cat([t0, torch.zeros(1, 4000)]), "mix": torch.cat([mix, mix]),
         "kind": ["single", "absence"]}
    est = torch.cat([0.5 * mix, t0])  # swapped: PIT must not rescue it
    assert float(batch_loss(est, b, "si_sdr", pit_pairs=True)) == pytest.approx(
        float(batch_loss(est, b, "si_sdr")), abs=1e-5)
    with pytest.raises(ValueError, match="even"):
        batch_loss(est[:1], {"target": b["target"][:1], "mix": b["mix"][:1], "kind": ["single"]},
                   "si_sdr", pit_pairs=True)


def test_pit_steps_need_paired_queries():
    with pytest.raises(ValueError, match="paired_queries"):
        TrainConfig.from_dict({"pit_steps": 100})
    assert TrainConfig.from_dict({"pit_steps": 100, "paired_queries": True}).pit_steps == 100


def test_pit_weight_blends_pit_into_the_query_bound_score_and_falls_to_zero():
    g = torch.Generator().manual_seed(5)
    t0, t1, mix = (torch.randn(1, 4000, generator=g) for _ in range(3))
    b = {"target": torch.cat([t0, t1]), "mix": torch.cat([mix, mix]), "kind": ["single", "single"]}
    swapped = (torch.cat([t0, t1]) + 0.1 * torch.randn(2, 4000, generator=g)).flip(0)
    pit = float(batch_loss(swapped, b, "si_sdr", pit_pairs=True))
    bound = float(batch_loss(swapped, b, "si_sdr"))
    half = float(batch_loss(swapped, b, "si_sdr", pit_pairs=True, pit_weight=0.5))
    assert half == pytest.approx(0.5 * pit + 0.5 * bound, abs=1e-4)
    with pytest.raises(ValueError, match="pit_weight"):
        batch_loss(swapped, b, "si_sdr", pit_pairs=True, pit_weight=1.5)
    cfg = TrainConfig.from_dict({"paired_queries": True, "pit_steps": 100, "pit_blend_steps": 50})
    assert [cfg.pit_weight_at(s) for s in (0, 99, 100, 125, 150, 1000)] == [1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    hard = TrainConfig.from_dict({"paired_queries": True, "pit_steps": 100})
    assert [hard.pit_weight_at(s) for s in (99, 100)] == [1.0, 0.0]
    assert TrainConfig().pit_weight_at(0) == 0.0


def test_pit_only_restricts_pit_to_the_marked_pairs():
    g = torch.Generator().manual_seed(6)
    t = torch.randn(4, 4000, generator=g)
    mix = torch.randn(1, 4000, generator=g).expand(4, -1)
    b = {"target": t, "mix": mix, "kind": ["single"] * 4}
    swapped = (t + 0.1 * torch.randn(4, 4000, generator=g)).reshape(2, 2, -1).flip(1).reshape(4, -1)
    bound = float(batch_loss(swapped, b, "si_sdr"))
    both = float(batch_loss(swapped, b, "si_sdr", pit_pairs=True))
    first = float(batch_loss(swapped, b, "si_sdr", pit_pairs=True, pit_only=torch.tensor([True, False])))
    assert both < bound - 10
    rows_bound = presence_loss("si_sdr", swapped, t)                    # [4], query-bound per row
    rows_pit = presence_loss("si_sdr", swapped, t.reshape(2, 2, -1).flip(1).reshape(4, -1))
    expect = float(torch.cat([rows_pit[:2], rows_bound[2:]]).mean())    # pair 0 rescued, pair 1 not
    assert first == pytest.approx(expect, abs=1e-3)
    with pytest.raises(ValueError, match="one entry per pair"):
        batch_loss(swapped, b, "si_sdr", pit_pairs=True, pit_only=torch.tensor([True]))


def test_fixed_query_pairs_replace_only_single_talker_pairs_and_follow_the_share():
    from realtime_tse.train.pit import fixed_query_pairs
    d = torch.tensor([1.0, 3.0, 2.0, 2.5, 1.5, 4.0] * 50)
    kinds = ["single", "single", "single", "absence", "single", "single"] * 50
    out, pick = fixed_query_pairs(d, kinds, [0.5, 4.5], 1.0, torch.Generator().manual_seed(0))
    pairs = out.reshape(-1, 2)
    assert pick.tolist() == [True, False, True] * 50
    assert torch.equal(pairs[pick], torch.tensor([[0.5, 4.5]]).expand(100, 2))
    assert torch.equal(pairs[~pick], d.reshape(-1, 2)[~pick])          # the absence pairs untouched
    _, none = fixed_query_pairs(d, kinds, [0.5, 4.5], 0.0, torch.Generator().manual_seed(0))
    assert not none.any()
    _, some = fixed_query_pairs(d, kinds, [0.5, 4.5], 0.5, torch.Generator().manual_seed(0))
    assert 30 <= int(some.sum()) <= 70                                  # about half of 100 eligible pairs
    with pytest.raises(ValueError, match="even"):
        fixed_query_pairs(d[:3], kinds[:3], [0.5, 4.5], 1.0, torch.Generator())
    with pytest.raises(ValueError, match="pit_queries"):
        TrainConfig.from_dict({"paired_queries": True, "pit_steps": 10, "pit_queries": [1.0, 1.0]})


def test_nearer_first_puts_the_nearer_talker_on_the_first_token():
    from realtime_tse.train.pit import nearer_first
    t = torch.arange(6, dtype=torch.float32)[:, None].expand(6, 3)      # row r holds value r
    d = torch.tensor([3.0, 1.0, 1.0, 2.0, 4.0, 0.5])                    # pair 0 and 2: second is nearer
    out = nearer_first(t, d, torch.tensor([True, True, False]))
    assert out[:, 0].tolist() == [1, 0, 2, 3, 4, 5]                     # pair 2 is not a token pair
    with pytest.raises(ValueError, match="token_order_from"):
        TrainConfig.from_dict({"paired_queries": True, "pit_steps": 10, "token_order_from": 5})
    assert TrainConfig.from_dict({"paired_queries": True, "pit_steps": 10, "pit_queries": [0.5, 4.5],
                                  "token_order_from": 5}).token_order_from == 5
    with pytest.raises(ValueError, match="token_order_pit"):
        TrainConfig.from_dict({"paired_queries": True, "pit_steps": 10, "pit_queries": [0.5, 4.5],
                               "token_order_from": 5, "token_order_pit": 1.5})
