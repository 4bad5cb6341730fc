"""Swap-consistent training groups, dry-speech augmentation and the position-swap test."""

import numpy as np
import pytest
import torch

from realtime_tse.train.augment import DryAugment, augment_dry, shift_pitch, tilt
from realtime_tse.train.corpus import SpeechCorpus
from realtime_tse.train.data import ScheduledMixtures
from realtime_tse.train.mixtures import MixtureSampler
from realtime_tse.train.rirbank import RIRBank, build_bank
from realtime_tse.train.rooms import room_preset
from realtime_tse.train.swaptest import contrast_db, summarise, swap_test

from .test_train_mixtures import _speech


@pytest.fixture(scope="module")
def sampler(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("swap")
    _speech(tmp / "sp", n_speakers=4)
    build_bank(room_preset("d1", n_rirs=12, seed=4), tmp / "bank", workers=1, progress=False)
    bank = RIRBank(tmp / "bank")
    return MixtureSampler(bank, bank.indices(), SpeechCorpus.from_folder(tmp / "sp"), 8000, 0.5,
                          p_presence=1.0, min_gap_m=1.0, seed=7)


def test_swap_group_trades_the_voices_and_keeps_positions_and_queries(sampler):
    for m in range(3):
        g = [sampler.sample_swapped_at(4 * m + r) for r in range(4)]
        assert all(np.array_equal(x.distances, g[0].distances) for x in g)
        assert all(x.rir_indices == g[0].rir_indices for x in g)
        assert g[0].speakers == g[1].speakers == g[2].speakers[::-1] == g[3].speakers[::-1]
        assert g[0].utterances == g[2].utterances[::-1]
        assert np.allclose(g[0].levels_db, g[2].levels_db[::-1])
        # the same query in both renderings, around position 0 then position 1
        assert g[0].d_q == g[2].d_q and g[1].d_q == g[3].d_q
        assert abs(g[0].d_q - g[0].distances[0]) <= 0.5 + 1e-9
        assert abs(g[1].d_q - g[1].distances[1]) <= 0.5 + 1e-9
        # the target is whoever stands at the asked position: a different voice in each rendering
        assert np.allclose(g[0].target, g[0].sources[0]) and np.allclose(g[2].target, g[2].sources[0])
        assert g[0].speakers[0] != g[2].speakers[0]
        assert not np.allclose(g[0].mix, g[2].mix)
    assert np.array_equal(sampler.sample_swapped_at(5).mix, sampler.sample_swapped_at(5).mix)


def test_swapped_dataset_needs_groups_of_four(sampler):
    with pytest.raises(ValueError, match="divisible by 4"):
        ScheduledMixtures(sampler, 6, lambda step: {}, swapped=True)
    with pytest.raises(ValueError, match="not both"):
        ScheduledMixtures(sampler, 8, lambda step: {}, paired=True, swapped=True)
    ds = ScheduledMixtures(sampler, 8, lambda step: {"p_presence": 1.0}, swapped=True)
    a, c = ds[0], ds[2]
    assert float(a["d_q"]) == float(c["d_q"]) and not torch.equal(a["target"], c["target"])


def test_pitch_shift_moves_the_fundamental():
    sr = 8000
    t = np.arange(sr) / sr
    x = np.sin(2 * np.pi * 200 * t)
    for st in (-3.0, 2.0):
        y = shift_pitch(x, st)
        assert abs(len(y) - len(x) / 2 ** (st / 12)) < 0.01 * len(x)
        spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
        f0 = np.argmax(spec) * sr / len(y)
        assert abs(f0 - 200 * 2 ** (st / 12)) < 4.0


def test_tilt_changes_the_balance_and_augment_is_reproducible():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8000)
    hi = tilt(x, 0.6)
    lo = tilt(x, -0.6)

    def high_share(v):
        s = np.abs(np.fft.rfft(v)) ** 2
        return s[len(s) // 2:].sum() / s.sum()
    assert high_share(hi) > 0.6 > 0.4 > high_share(lo)
    aug = DryAugment(3.0, 0.4).validate()
    a = augment_dry(x, np.random.default_rng(3), aug)
    b = augment_dry(x, np.random.default_rng(3), aug)
    assert np.array_equal(a, b) and not np.array_equal(a[:len(x)], x[:len(a)])
    with pytest.raises(ValueError):
        DryAugment(-1.0, 0.0).validate()
    with pytest.raises(ValueError):
        DryAugment(1.0, 1.0).validate()


def test_contrast_and_summary():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(4000), rng.standard_normal(4000)
    mix = a + b
    assert contrast_db(a + 0.1 * b, a, b, mix) > 15
    assert contrast_db(b + 0.1 * a, a, b, mix) < -15
    assert abs(contrast_db(mix, a, b, mix)) < 1e-4
    # a voice-picker: right in rendering 0, wrong in rendering 1, at both positions
    voice = np.array([[[5.0, 5.0], [-5.0, -5.0]]] * 4)
    s = summarise(voice)
    assert s["leans_right"] == 0.5 and s["right_in_both"] == 0.0 and s["same_voice_wins"] == 1.0
    s = summarise(np.abs(voice))
    assert s["right_in_both"] == 1.0 and s["same_voice_wins"] == 0.0 and s["mean_contrast_db"] == 5.0
    with pytest.raises(ValueError):
        summarise(np.zeros((3, 2)))


class _Oracle(torch.nn.Module):
    """Answers with the talker nearest to d_q (reads the sampler's sources): a distance picker."""

    def __init__(self, lookup):
        super().__init__()
        self.lookup = lookup

    def forward(self, mix, d_q):
        return torch.stack([torch.from_numpy(self.lookup[(m.numpy().tobytes(), float(d))])
                            for m, d in zip(mix, d_q)])


def test_swap_test_scores_a_distance_picker_right_and_a_voice_picker_wrong(sampler):
    lookup_dist, lookup_voice = {}, {}
    for p in range(6):
        g = [sampler.sample_swapped_at(4 * p + r) for r in range(4)]
        for r, m in enumerate(g):
            pos = r % 2
            key = (m.mix.tobytes(), float(np.float32(m.distances[pos])))
            lookup_dist[key] = m.sources[pos]
            # a voice picker: always the voice drawn first for this query, wherever it stands
            first_voice_pos = pos if r < 2 else 1 - pos
            lookup_voice[key] = m.sources[first_voice_pos]
    good = swap_test(_Oracle(lookup_dist), sampler, pairs=6)
    assert good["right_in_both"] == 1.0 and good["same_voice_wins"] == 0.0 and good["mean_contrast_db"] > 20
    bad = swap_test(_Oracle(lookup_voice), sampler, pairs=6)
    assert bad["right_in_both"] == 0.0 and bad["same_voice_wins"] == 1.0 and bad["leans_right"] == 0.5
    assert sampler.p_presence == 1.0 and sampler.min_gap_m == 1.0    # settings restored
