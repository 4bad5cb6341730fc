"""The training-only distance head: its targets, its loss, and that it leaves the network's output alone."""
from __future__ import annotations

import math

import pytest
import torch

from realtime_tse.models.config import ModelConfig
from realtime_tse.models.net import build_model
from realtime_tse.train.losses import distance_head_loss, distance_targets
from realtime_tse.train.train_config import TrainConfig


def _tone(n, f, sr=8000, amp=0.5):
    t = torch.arange(n) / sr
    return amp * torch.sin(2 * math.pi * f * t)


def test_targets_mark_each_talkers_bin_where_it_is_active():
    n, hop = 8000, 128
    a = _tone(n, 300.0)
    a[n // 2:] = 0                      # talker A (1.2 m) speaks in the first half only
    b = _tone(n, 700.0)
    b[: n // 2] = 0                     # talker B (3.1 m) in the second half only
    src = torch.stack([a, b])[None]     # [1, 2, N]
    tgt = distance_targets(src, torch.tensor([[1.2, 3.1]]), 256, hop, n_bins=10, bin_m=0.5)
    t = tgt.shape[1]
    assert tgt.shape == (1, t, 10)
    early, late = tgt[0, 5], tgt[0, t - 6]
    assert early.tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]      # 1.2 m -> bin 2
    assert late.tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0]       # 3.1 m -> bin 6


def test_targets_ignore_a_missing_talker_and_clip_far_ones_to_the_last_bin():
    n = 4000
    src = torch.stack([_tone(n, 400.0), torch.zeros(n)])[None]
    tgt = distance_targets(src, torch.tensor([[7.0, float("inf")]]), 256, 128, n_bins=10, bin_m=0.5)
    assert torch.all(tgt[0, 3:-3, 9] == 1)
    assert float(tgt[..., :9].sum()) == 0.0


def test_head_leaves_the_output_unchanged_and_its_loss_learns():
    torch.manual_seed(0)
    cfg = ModelConfig.preset("lite-lstm", distance_bins=10)
    net = build_model(cfg)
    x, d = torch.randn(2, 4000) * 0.1, torch.tensor([1.0, 3.0])
    est, logits = net(x, d, with_distance=True)
    assert torch.allclose(est, net(x, d), atol=1e-6)
    assert logits.shape[0] == 2 and logits.shape[2] == 10
    src = torch.stack([torch.stack([_tone(4000, 300.0), _tone(4000, 900.0)])] * 2)
    dist = torch.tensor([[1.2, 3.1], [0.6, float("inf")]])
    opt = torch.optim.Adam(net.dist_head.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        _, logits = net(x, d, with_distance=True)
        loss = distance_head_loss(logits, src, dist, cfg.n_fft, cfg.hop, cfg.distance_bin_m).mean()
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def test_settings_are_checked():
    with pytest.raises(ValueError, match="distance_bins"):
        ModelConfig.preset("lite-lstm", distance_bins=-1)
    with pytest.raises(ValueError, match="lstm_deg"):
        ModelConfig.preset("lite-causal", distance_bins=10)
    with pytest.raises(ValueError, match="distance_loss"):
        TrainConfig.from_dict({"distance_loss": -1.0})
    with pytest.raises(ValueError, match="no distance head"):
        build_model(ModelConfig.preset("lite-lstm"))(torch.zeros(1, 800), torch.ones(1), with_distance=True)
