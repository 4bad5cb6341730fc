"""realtime_tse.train.corpus: speaker folders, CSV lists, speaker-disjoint splits, loading (synthetic audio)."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime_tse.train.corpus import CorpusError, SpeechCorpus, Utterance

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "speechocean762"


def _tone(sr=16000, s=0.5, f0=150.0):
    t = np.arange(int(sr * s)) / sr
    return (0.1 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "speech"
    for spk, ext in (("alice", "wav"), ("bob", "flac"), ("carol", "ogg")):
        (root / spk).mkdir(parents=True)
        for k in range(2):
            sf.write(root / spk / f"u{k}.{ext}", _tone(f0=100 + 30 * k), 16000)
    # LibriSpeech layout: speaker/chapter/file.flac -> speaker "dave"
    (root / "dave" / "ch7").mkdir(parents=True)
    sf.write(root / "dave" / "ch7" / "a.flac", _tone(), 16000)
    (root / "README.txt").write_text("not audio")
    return root


def test_from_folder_speakers(folder):
    c = SpeechCorpus.from_folder(folder)
    assert c.speakers == ["alice", "bob", "carol", "dave"]
    assert len(c) == 7 and len(c.utterances_of("bob")) == 2
    assert c.speaker_of(c.utterances_of("dave")[0]) == "dave"


def test_from_folder_errors(tmp_path, folder):
    with pytest.raises(CorpusError, match="not found"):
        SpeechCorpus.from_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no audio files"):
        SpeechCorpus.from_folder(tmp_path / "empty")
    sf.write(folder / "loose.wav", _tone(), 16000)
    with pytest.raises(CorpusError, match="directly in the folder"):
        SpeechCorpus.from_folder(folder)


def test_load_mono_resample_and_unreadable(folder):
    c = SpeechCorpus.from_folder(folder)
    x = c.load(0)
    assert x.dtype == np.float32 and x.ndim == 1 and len(x) == 8000
    y = c.load(0, 8000)
    assert y.dtype == np.float32 and abs(len(y) - 4000) <= 1
    stereo = folder / "erin" / "s.wav"
    stereo.parent.mkdir()
    t = _tone(s=0.25)
    sf.write(stereo, np.stack([t, -0.5 * t], axis=1), 16000)
    c2 = SpeechCorpus.from_folder(folder)
    z = c2.load(c2.utterances_of("erin")[0])
    assert z.ndim == 1 and np.allclose(z, 0.25 * t, atol=1e-4)
    (folder / "frank").mkdir()
    (folder / "frank" / "broken.wav").write_bytes(b"RIFF....garbage")
    c3 = SpeechCorpus.from_folder(folder)
    with pytest.raises(CorpusError, match="broken.wav"):
        c3.load(c3.utterances_of("frank")[0])


def test_from_csv(folder, tmp_path):
    p = folder / "list.csv"
    p.write_text("path,speaker,extra\nalice/u0.wav,A\nbob/u1.flac,B\n")
    c = SpeechCorpus.from_csv(p)
    assert c.speakers == ["A", "B"] and len(c.load(1)) == 8000
    (folder / "bad.csv").write_text("file,who\nalice/u0.wav,A\n")
    with pytest.raises(CorpusError, match="'path' and 'speaker'"):
        SpeechCorpus.from_csv(folder / "bad.csv")
    (folder / "gone.csv").write_text("path,speaker\nnobody.wav,A\n")
    with pytest.raises(CorpusError, match="line 2"):
        SpeechCorpus.from_csv(folder / "gone.csv")
    with pytest.raises(CorpusError):
        SpeechCorpus.from_csv(tmp_path / "none.csv")


def _fake(n_speakers, per=3):
    return SpeechCorpus([Utterance(Path(f"/x/{s}/{k}.wav"), f"s{s:03d}")
                         for s in range(n_speakers) for k in range(per)])


def test_split_speaker_disjoint_and_deterministic():
    c = _fake(240)
    tr, va, te = c.split(seed=0)
    assert (len(tr.speakers), len(va.speakers), len(te.speakers)) == (128, 48, 64)  # paper
    sets = [set(tr.speakers), set(va.speakers), set(te.speakers)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert set().union(*sets) == set(c.speakers)
    assert len(tr) + len(va) + len(te) == len(c)
    assert c.split(seed=0)[0].speakers == tr.speakers
    assert c.split(seed=1)[0].speakers != tr.speakers
    a, b, d = _fake(5).split(seed=0, ratios=(0.9, 0.05, 0.05))
    assert (len(a.speakers), len(b.speakers), len(d.speakers)) == (3, 1, 1)
    a, b, d = _fake(4).split(seed=0, ratios=(1, 0, 1))
    assert len(b) == 0 and len(a.speakers) + len(d.speakers) == 4
    with pytest.raises(CorpusError, match="disjoint"):
        _fake(2).split(seed=0)


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED.is_dir(), reason="speechocean762 not available")
def test_speechocean762():
    c = SpeechCorpus.from_folder(SHARED)
    assert len(c.speakers) == 220 and len(c) == 1760
    assert len(SpeechCorpus.from_csv(SHARED / "utterances.csv")) == 1760
    tr, va, te = c.split(seed=0)
    assert not set(tr.speakers) & set(te.speakers)
    x = c.load(0, 16000)
    assert x.dtype == np.float32 and 0.01 < np.abs(x).max() <= 1.0


def test_merged_corpus_keeps_both_and_refuses_shared_speaker_ids(tmp_path):
    import numpy as np
    import pytest
    import soundfile as sf

    from realtime_tse.train.corpus import CorpusError, SpeechCorpus
    for root, spk in (("a", "s1"), ("a", "s2"), ("b", "v1"), ("c", "s1")):
        (tmp_path / root / spk).mkdir(parents=True)
        sf.write(tmp_path / root / spk / "u.wav", np.zeros(1600, np.float32), 16000)
    a, b, c = (SpeechCorpus.from_folder(tmp_path / r) for r in "abc")
    m = a.merged(b)
    assert m.speakers == ["s1", "s2", "v1"] and len(m) == 3 and len(m.utterances_of("v1")) == 1
    with pytest.raises(CorpusError, match="s1"):
        a.merged(c)
