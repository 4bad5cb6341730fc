"""One talker detector (models/detection.py): the paper's indicator and the product's rule."""
import numpy as np
import pytest
import torch

from realtime_tse.models import ModelConfig, build_model
from realtime_tse.models.detection import TAU, detect_talkers, scan_levels


def _profile(d, talkers, floor=-18.0, height=15.0, width=0.3):
    lv = np.full_like(d, floor)
    for t in talkers:
        lv = np.maximum(lv, floor + height * np.exp(-0.5 * ((d - t) / width) ** 2))
    return lv


def test_two_clear_peaks_are_both_talkers():
    d = np.round(np.arange(0, 5.01, 0.25), 2)
    det = detect_talkers(_profile(d, [1.0, 3.0]), d, input_dbfs=-25.0)
    assert sorted(det.talkers_m) == [1.0, 3.0]
    assert det.peaks_m[0] in (1.0, 3.0) and len(det.indicator) == len(d)


def test_gain_like_profile_and_silence_give_no_talker():
    d = np.round(np.arange(0, 5.01, 0.25), 2)
    smooth = -8.0 - 0.8 * (d - 1.5) ** 2 / 4      # a gentle distance-dependent gain, < 3 dB contrast
    det = detect_talkers(smooth, d, input_dbfs=-25.0)
    assert det.peaks_m and det.talkers_m == []     # the paper's indicator still names a peak
    assert detect_talkers(_profile(d, [2.0]), d, input_dbfs=-80.0).talkers_m == []
    assert detect_talkers(np.full_like(d, np.nan), d).talkers_m == []
    with pytest.raises(ValueError):
        detect_talkers(np.zeros(3), np.zeros(4))


def test_scan_levels_batched_equals_one_by_one_and_floor():
    torch.manual_seed(0)
    net = build_model(ModelConfig.preset("lite-causal-bs")).eval()
    x = torch.randn(4000) * 0.05
    d = np.array([0.5, 1.5, 3.0])
    a = scan_levels(net, x, d)
    b = scan_levels(net, x, d, batch_size=1)
    assert a.shape == (3,) and np.allclose(a, b, atol=1e-4)
    assert np.all(a >= 10 * np.log10(TAU) - 1e-9)
    with pytest.raises(ValueError):
        scan_levels(net, x[None], d)
