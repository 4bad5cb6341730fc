"""realtime_tse.train.mixtures: query rules (eq. 3, 4), levels, pairing of talkers, determinism, batches."""

import csv

import numpy as np
import pytest
import soundfile as sf
import torch

from realtime_tse.train.corpus import SpeechCorpus
from realtime_tse.train.measured import MeasuredRIRs
from realtime_tse.train.mixtures import (MixtureSampler, absence_intervals, active_talkers, query_kind,
                            rms_dbfs, sample_absence_query, sample_presence_query,
                            target_for_query, fit_length)
from realtime_tse.train.rirbank import RIRBank, build_bank
from realtime_tse.train.rooms import room_preset

R = 0.5


# ------------------------------------------------------------------ pure rules

def test_target_rules():
    s = np.stack([np.full(8, 1.0), np.full(8, 10.0)]).astype(np.float32)
    d = np.array([1.0, 3.0])
    assert np.array_equal(target_for_query(s, d, 1.2, R), s[0])            # one talker in range
    assert np.array_equal(target_for_query(s, d, 3.5, R), s[1])            # boundary counts (<=)
    assert np.array_equal(target_for_query(s, [2.0, 2.4], 2.2, R), s[0] + s[1])  # both
    assert np.array_equal(target_for_query(s, d, 2.0, R), np.zeros(8))     # none -> zeros
    assert query_kind(active_talkers(d, 1.2, R)) == "single"
    assert query_kind(active_talkers([2.0, 2.4], 2.2, R)) == "both"
    assert query_kind(active_talkers(d, 2.0, R)) == "absence"
    with pytest.raises(ValueError):
        target_for_query(s, [1.0, 2.0, 3.0], 1.0, R)


def test_absence_intervals_and_queries():
    iv = absence_intervals([1.0, 3.0], R, 4.7)
    assert [(round(a, 3), round(b, 3)) for a, b in iv] == [(0.0, 0.5), (1.5, 2.5), (3.5, 4.7)]
    assert absence_intervals([0.4, 1.2], R, 1.6) == []
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = rng.uniform(0.2, 4.5, size=2)
        q = sample_absence_query(rng, d, R, 4.7)
        if q is not None:
            assert 0 <= q <= 4.7 and np.all(np.abs(d - q) > R)
        q, k = sample_presence_query(rng, d, R)
        assert q >= 0 and abs(d[k] - q) <= R + 1e-12
    assert sample_absence_query(rng, [0.4, 1.2], R, 1.6) is None


def test_fit_length():
    rng = np.random.default_rng(0)
    x = np.arange(10.0)
    c = fit_length(x, 4, rng)
    assert len(c) == 4 and np.all(np.diff(c) == 1)
    p = fit_length(x, 15, rng)
    assert len(p) == 15 and p.sum() == x.sum()


# ------------------------------------------------------------------ sampler

def _speech(root, n_speakers=4, per=2, sr=16000):
    rng = np.random.default_rng(1)
    for s in range(n_speakers):
        (root / f"spk{s}").mkdir(parents=True)
        for k in range(per):
            n = int(sr * (0.6 + 0.5 * k))
            t = np.arange(n) / sr
            f0 = 100 + 40 * s + 10 * k
            x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))
            x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(n)
            sf.write(root / f"spk{s}" / f"u{k}.flac", (0.2 * x).astype(np.float32), sr)
    return SpeechCorpus.from_folder(root)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mix")
    corpus = _speech(tmp / "speech")
    build_bank(room_preset("d1", n_rirs=8, seed=3), tmp / "d1", workers=1, progress=False)
    # two microphones of D2, 4 RIRs each: pairs must share the microphone
    build_bank(room_preset("d2", n_rirs=8, n_mics=2, seed=3), tmp / "d2", workers=1, progress=False)
    return corpus, RIRBank(tmp / "d1"), RIRBank(tmp / "d2")


def _check(m, sampler, bank):
    n = sampler.n
    assert m.mix.shape == (n,) and m.target.shape == (n,) and m.sources.shape == (2, n)
    assert m.mix.dtype == np.float32 and m.target.dtype == np.float32
    assert np.allclose(m.mix, m.sources.sum(0), atol=1e-6)
    for k in range(2):
        assert -25.0 - 1e-3 <= rms_dbfs(m.sources[k]) <= -20.0 + 1e-3
    assert m.speakers[0] != m.speakers[1]
    i, j = m.rir_indices
    assert i != j and bank.meta_of(i)["group"] == bank.meta_of(j)["group"] == m.group
    assert np.allclose(m.distances, [bank.distance(i), bank.distance(j)])
    act = np.abs(m.distances - m.d_q) <= sampler.r_spk + 1e-9
    assert np.allclose(m.target, m.sources[act].sum(0) if act.any() else 0.0, atol=1e-6)
    assert m.kind == {0: "absence", 1: "single", 2: "both"}[int(act.sum())]
    assert m.d_q >= 0


def test_sampler_mixtures(setup):
    corpus, d1, _ = setup
    s = MixtureSampler(d1, d1.indices(), corpus, 16000, clip_s=1.0, seed=0)
    kinds = []
    for _ in range(12):
        m = s.sample()
        _check(m, s, d1)
        kinds.append(m.kind)
    assert "absence" in kinds or "single" in kinds
    a = s.sample(presence=False)
    _check(a, s, d1)
    assert a.kind == "absence" and not a.target.any() and a.d_q <= a.d_range
    assert np.all(np.abs(a.distances - a.d_q) > R)
    p = s.sample(presence=True)
    assert p.kind in ("single", "both") and p.target.any()


def test_pairs_share_microphone_group(setup):
    corpus, _, d2 = setup
    assert len(d2.groups()) == 2
    s = MixtureSampler(d2, d2.indices(), corpus, 16000, clip_s=0.5, seed=4)
    for _ in range(8):
        _check(s.sample(), s, d2)


def test_min_gap_and_determinism(setup):
    corpus, d1, _ = setup
    dist = np.array([d1.distance(i) for i in d1.indices()])
    gap = np.sort(np.abs(dist[:, None] - dist[None, :]).ravel())[-6]  # a gap few pairs reach
    s = MixtureSampler(d1, d1.indices(), corpus, 16000, clip_s=0.5, min_gap_m=gap, seed=2)
    for _ in range(5):
        m = s.sample()
        assert abs(m.distances[0] - m.distances[1]) >= gap - 1e-9
    s2 = MixtureSampler(d1, d1.indices(), corpus, 16000, clip_s=0.5, min_gap_m=gap, seed=2)
    a, b = s.sample_at(7), s2.sample_at(7)
    assert np.array_equal(a.mix, b.mix) and a.d_q == b.d_q and a.rir_indices == b.rir_indices
    s3 = MixtureSampler(d1, d1.indices(), corpus, 16000, clip_s=0.5, seed=2)
    s4 = MixtureSampler(d1, d1.indices(), corpus, 16000, clip_s=0.5, seed=2)
    assert np.array_equal(s3.sample().mix, s4.sample().mix)
    with pytest.raises(RuntimeError, match="talker pair"):
        MixtureSampler(d1, d1.indices(), corpus, 16000, clip_s=0.5, min_gap_m=50.0).sample()


def test_sample_batch_and_rate(setup):
    corpus, d1, _ = setup
    s = MixtureSampler(d1, d1.indices(), corpus, 8000, clip_s=0.5, p_presence=0.5, seed=1)
    b = s.sample_batch(3)
    assert b["mix"].shape == (3, 4000) and b["mix"].dtype == torch.float32
    assert b["target"].shape == (3, 4000) and b["d_q"].shape == (3,)
    assert b["distances"].shape == (3, 2) and b["sources"].shape == (3, 2, 4000)
    assert len(b["kind"]) == 3 and set(b["kind"]) <= {"single", "both", "absence"}
    b1, b2 = s.sample_batch(2, start=10), s.sample_batch(2, start=10)
    assert torch.equal(b1["mix"], b2["mix"])


def test_sampler_errors(setup):
    corpus, d1, _ = setup
    with pytest.raises(ValueError, match="two RIRs"):
        MixtureSampler(d1, d1.indices()[:1], corpus, 16000, clip_s=0.5)
    one = corpus.subset(corpus.speakers[:1])
    with pytest.raises(ValueError, match="two speakers"):
        MixtureSampler(d1, d1.indices(), one, 16000, clip_s=0.5)


def test_sampler_with_measured_rirs(setup, tmp_path):
    corpus, _, _ = setup
    rng = np.random.default_rng(0)
    rows = []
    for k in range(6):
        h = np.zeros(3000, np.float32)
        h[20 + 10 * k:] = (rng.standard_normal(2980 - 10 * k) * np.exp(-np.arange(2980 - 10 * k) / 500)
                           ).astype(np.float32)
        sf.write(tmp_path / f"r{k}.wav", h, 16000)
        rows.append((f"r{k}.wav", 0.5 + 0.6 * k, "lab" if k < 4 else "hall"))
    with open(tmp_path / "rirs.csv", "w", newline="") as f:
        csv.writer(f).writerows([("file", "distance_m", "room"), *rows])
    mb = MeasuredRIRs(tmp_path / "rirs.csv")
    s = MixtureSampler(mb, mb.indices(), corpus, 16000, clip_s=0.5, r_spk=0.1, seed=0)
    for _ in range(4):
        _check(s.sample(), s, mb)


def test_paired_examples_share_the_mixture_and_query_different_talkers(tmp_path):
    """sample_paired_at(2m) and (2m+1): the same mixture, queried around talker 0 and talker 1."""
    from realtime_tse.train.corpus import SpeechCorpus
    from realtime_tse.train.mixtures import MixtureSampler
    from realtime_tse.train.rirbank import RIRBank, build_bank
    from realtime_tse.train.rooms import room_preset

    _speech(tmp_path / "sp", n_speakers=4)
    build_bank(room_preset("d1", n_rirs=12), tmp_path / "bank", workers=1, progress=False)
    bank = RIRBank(tmp_path / "bank")
    s = MixtureSampler(bank, bank.indices(), SpeechCorpus.from_folder(tmp_path / "sp"), 8000, 0.5,
                       p_presence=1.0, min_gap_m=1.2, seed=5)
    for m in range(3):
        a, b = s.sample_paired_at(2 * m), s.sample_paired_at(2 * m + 1)
        assert np.array_equal(a.mix, b.mix) and np.array_equal(a.distances, b.distances)
        assert abs(a.d_q - a.distances[0]) <= 0.5 + 1e-9 and abs(b.d_q - b.distances[1]) <= 0.5 + 1e-9
        assert a.kind == b.kind == "single"
        assert np.allclose(a.target, a.sources[0]) and np.allclose(b.target, b.sources[1])
    again = s.sample_paired_at(3)
    assert np.array_equal(again.target, s.sample_paired_at(3).target)
    assert not np.array_equal(s.sample_paired_at(0).mix, s.sample_paired_at(2).mix)


def test_near_boost_makes_the_nearer_talker_louder(tmp_path):
    from realtime_tse.train.corpus import SpeechCorpus
    from realtime_tse.train.mixtures import MixtureSampler, rms_dbfs
    from realtime_tse.train.rirbank import RIRBank, build_bank
    from realtime_tse.train.rooms import room_preset

    _speech(tmp_path / "sp", n_speakers=4)
    build_bank(room_preset("d1", n_rirs=12), tmp_path / "bank", workers=1, progress=False)
    bank = RIRBank(tmp_path / "bank")
    s = MixtureSampler(bank, bank.indices(), SpeechCorpus.from_folder(tmp_path / "sp"), 8000, 0.5,
                       min_gap_m=1.0, seed=2)
    s.near_boost_db = 6.0
    for k in range(4):
        m = s.sample_at(k)
        near, far = (0, 1) if m.distances[0] <= m.distances[1] else (1, 0)
        diff = rms_dbfs(m.sources[near]) - rms_dbfs(m.sources[far])
        assert 1.0 - 1e-6 <= diff <= 11.0 + 1e-6   # 6 dB boost on top of levels within 5 dB


def test_single_talker_share_pairs_one_talker_with_its_own_and_an_absence_query(tmp_path):
    """p_single: talker 0 alone; the pair queries it at its distance (target = the input) and away
    from it (absence, target zeros); the share of solo mixtures follows p_single."""
    from realtime_tse.train.corpus import SpeechCorpus
    from realtime_tse.train.mixtures import MixtureSampler
    from realtime_tse.train.rirbank import RIRBank, build_bank
    from realtime_tse.train.rooms import room_preset

    _speech(tmp_path / "sp", n_speakers=4)
    build_bank(room_preset("d1", n_rirs=12), tmp_path / "bank", workers=1, progress=False)
    bank = RIRBank(tmp_path / "bank")
    s = MixtureSampler(bank, bank.indices(), SpeechCorpus.from_folder(tmp_path / "sp"), 8000, 0.5,
                       p_presence=1.0, seed=5)
    two = [s.sample_paired_at(k).kind for k in range(8)]
    s.p_single = 0.5
    solo = 0
    for m in range(40):
        a, b = s.sample_paired_at(2 * m), s.sample_paired_at(2 * m + 1)
        assert np.array_equal(a.mix, b.mix)
        if np.isinf(a.distances[1]):
            solo += 1
            assert not a.sources[1].any() and np.allclose(a.mix, a.sources[0], atol=1e-6)
            assert a.kind == "single" and np.allclose(a.target, a.sources[0])
            assert b.kind == "absence" and not b.target.any() and abs(b.d_q - a.distances[0]) > 0.5
    assert 10 <= solo <= 30          # binomial(40, 0.5): outside this in about 1e-3 of seeds
    s.p_single = 0.0                 # off: the two-talker sequence is unchanged
    assert [s.sample_paired_at(k).kind for k in range(8)] == two
