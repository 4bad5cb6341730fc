"""The stream delay and the algorithmic latency (realtime_tse/models/latency.py): one definition,
the same figures from both networks (DQTSNet, LSTMDEG) and from ModelConfig, equal to the formula
``(block + n_fft - hop) / sample_rate``."""
import pytest

from realtime_tse.models import latency
from realtime_tse.models.config import ModelConfig
from realtime_tse.models.lstm_deg import LSTMDEG
from realtime_tse.models.net import DQTSNet, build_model


@pytest.mark.parametrize("preset, cls, delay, rate", [
    ("lite-causal", DQTSNet, 128, 8000),
    ("lite-lstm", LSTMDEG, 128, 8000),
    ("paper-causal", DQTSNet, 256, 16000),
])
def test_each_network_reports_the_formula(preset, cls, delay, rate):
    cfg = ModelConfig.preset(preset)
    net = build_model(cfg)
    assert type(net) is cls and cfg.sample_rate == rate
    # stream delay: n_fft - hop samples, one hop (16 ms)
    assert net.stream_delay == latency.stream_delay(cfg) == cfg.n_fft - cfg.hop == delay
    assert 1e3 * net.stream_delay / rate == pytest.approx(16.0)
    # the smallest block (one hop): one frame, 32 ms for every preset
    assert net.algorithmic_latency_s == pytest.approx((cfg.hop + cfg.n_fft - cfg.hop) / rate)
    assert net.algorithmic_latency_s == pytest.approx(0.032)
    for k, want_ms in ((1, 32.0), (2, 48.0), (4, 80.0)):   # blocks of 16, 32, 64 ms
        block = k * cfg.hop
        formula = (block + cfg.n_fft - cfg.hop) / cfg.sample_rate
        assert latency.algorithmic_latency_s(cfg, block) == pytest.approx(formula)
        assert cfg.algorithmic_latency_s(block) == pytest.approx(formula)
        assert 1e3 * formula == pytest.approx(want_ms)


def test_the_two_networks_give_equal_figures():
    dq, lstm = build_model(ModelConfig.preset("lite-causal")), build_model(ModelConfig.preset("lite-lstm"))
    assert (dq.stream_delay, dq.algorithmic_latency_s) == (lstm.stream_delay, lstm.algorithmic_latency_s) \
        == (128, 0.032)


def test_the_figures_have_one_home(monkeypatch):
    """Both networks and ModelConfig read realtime_tse.models.latency: a change there is seen by all."""
    monkeypatch.setattr(latency, "stream_delay", lambda cfg: 999)
    cfg = ModelConfig.preset("lite-lstm")
    for preset in ("lite-causal", "lite-lstm"):
        net = build_model(ModelConfig.preset(preset))
        assert net.stream_delay == 999
        assert net.algorithmic_latency_s == pytest.approx((128 + 999) / 8000)
    assert cfg.algorithmic_latency_s(512) == pytest.approx((512 + 999) / 8000)


@pytest.mark.parametrize("block", [0, -128])
def test_a_block_that_is_not_positive_is_refused(block):
    cfg = ModelConfig.preset("lite-lstm")
    with pytest.raises(ValueError, match="block_samples must be positive"):
        latency.algorithmic_latency_s(cfg, block)
    with pytest.raises(ValueError, match="block_samples must be positive"):
        cfg.algorithmic_latency_s(block)
