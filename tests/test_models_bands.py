"""Band-split front end (models/bands.py, preset lite-causal-bs): layout, streaming, speed-relevant size."""
import pytest
import torch

from realtime_tse.models import ModelConfig, build_model
from realtime_tse.models.bands import BandMerge, BandSplit, check_band_widths, default_band_widths


def test_default_bands_cover_every_bin_and_are_fewer():
    for n_freq, sr in [(129, 8000), (257, 16000)]:
        w = default_band_widths(n_freq, sr)
        assert sum(w) == n_freq
        assert len(w) < n_freq / 3          # the point: LSTMs see about 4x fewer positions
        assert w[0] <= w[-2]                # narrow at low frequency, wide at high
    assert ModelConfig.preset("lite-causal-bs").band_widths == default_band_widths(129, 8000)


def test_bad_band_widths_raise():
    with pytest.raises(ValueError):
        check_band_widths((2, 2, 2), 129)
    with pytest.raises(ValueError):
        ModelConfig.preset("lite-causal", band_widths=(64, 64))
    with pytest.raises(ValueError):
        check_band_widths((0, 129), 129)


def test_merge_split_shapes_and_band_locality():
    torch.manual_seed(0)
    widths = (2, 2, 4, 4, 1)
    merge, split = BandMerge(6, widths), BandSplit(6, widths)
    h = torch.randn(2, 6, 5, 13)
    m = merge(h)
    assert m.shape == (2, 6, 5, 5)
    assert split(m).shape == (2, 6, 5, 13)
    # changing bins 4..7 (the third band) changes only band 2 of the merged embedding
    h2 = h.clone()
    h2[..., 4:8] += 1.0
    d = (merge(h2) - m).abs().amax(dim=(0, 1, 2))
    assert d[2] > 1e-3 and torch.all(d[[0, 1, 3, 4]] < 1e-6)
    # and a change of band 2 reaches only bins 4..7 after the split
    m2 = m.clone()
    m2[..., 2] += 1.0
    d = (split(m2) - split(m)).abs().amax(dim=(0, 1, 2))
    assert torch.all(d[4:8] > 1e-4) and d[:4].max() < 1e-6 and d[8:].max() < 1e-6


def test_band_split_streaming_equals_offline():
    torch.manual_seed(3)
    cfg = ModelConfig.preset("lite-causal-bs")
    net = build_model(cfg).eval()
    x = torch.randn(2, 40 * cfg.hop) * 0.1
    d = torch.tensor([1.0, 3.0])
    with torch.no_grad():
        y = net(x, d)
        st = net.init_state(d)
        outs = []
        for i in range(0, x.shape[1], 3 * cfg.hop):
            blk = x[:, i:i + 3 * cfg.hop]
            if blk.shape[1] % cfg.hop:
                break
            o, st = net.step(blk, d, st)
            outs.append(o)
    s = torch.cat(outs, 1)
    dl = net.stream_delay
    assert (s[:, dl:] - y[:, : s.shape[1] - dl]).abs().max() < 1e-4
    # the query still reaches the output (FiLM runs per band)
    with torch.no_grad():
        y_far = net(x, torch.tensor([4.0, 4.0]))
    assert (y - y_far).abs().max() > 1e-4
