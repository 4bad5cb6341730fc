"""Metrics and losses against hand-computed values."""
import numpy as np
import torch

from realtime_tse.models import metrics


def test_sdr_of_signal_plus_noise_at_known_snr():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000)
    n = rng.standard_normal(16000)
    n *= np.sqrt((x ** 2).sum() / (n ** 2).sum()) * 10 ** (-15 / 20)  # exactly 15 dB
    assert abs(float(metrics.sdr(x + n, x)) - 15.0) < 1e-6


def test_si_sdr_ignores_scale_but_sdr_does_not():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(8000)
    assert float(metrics.si_sdr(0.5 * x, x)) > 100
    # half the reference: |x - x/2|^2 = |x|^2 / 4 -> 6.02 dB
    assert abs(float(metrics.sdr(0.5 * x, x)) - 10 * np.log10(4)) < 1e-9


def test_loss_active_matches_eq8_by_hand():
    x = torch.tensor([[1.0, -2.0, 3.0]])
    xh = torch.tensor([[1.0, -1.0, 2.0]])
    tau = 1e-3
    want = -10 * np.log10(14.0 / (2.0 + tau * 14.0))
    assert abs(float(metrics.loss_active(xh, x, tau)) - want) < 1e-5
    # bounded below by -30 dB for a perfect estimate
    assert abs(float(metrics.loss_active(x, x, tau)) + 30.0) < 1e-4


def test_loss_inactive_matches_eq9_by_hand():
    y = torch.tensor([[3.0, 4.0]])      # |y|^2 = 25
    xh = torch.tensor([[0.1, 0.2]])     # |x_hat|^2 = 0.05
    want = 10 * np.log10(0.05 + 1e-2 * 25)
    assert abs(float(metrics.loss_inactive(xh, y)) - want) < 1e-5


def test_relative_level():
    y = np.ones(100)
    assert abs(float(metrics.relative_level(0.1 * y, y)) + 20.0) < 1e-9


def test_distance_profile_finds_two_peaks():
    d = np.arange(0, 5.01, 0.5)
    lv = np.full(len(d), -20.0)
    lv[2] = 0.0   # 1.0 m
    lv[6] = -3.0  # 3.0 m
    ind, peaks = metrics.distance_profile(lv, d)
    assert peaks == [1.0, 3.0]
    assert ind.shape == d.shape
