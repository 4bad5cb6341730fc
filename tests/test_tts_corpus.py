"""scripts/make_tts_corpus.py: the unseen-voice corpus (skips without flite / espeak-ng)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from realtime_tse.train.corpus import SpeechCorpus

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_tts_corpus.py"


@pytest.mark.skipif(shutil.which("flite") is None and shutil.which("espeak-ng") is None,
                    reason="needs flite or espeak-ng (apt-get install flite espeak-ng)")
def test_tts_corpus_has_one_speaker_per_voice_of_speech_at_16k(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "tts")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    corpus = SpeechCorpus.from_folder(tmp_path / "tts")
    n_voices = 4 * (shutil.which("flite") is not None) + 6 * (shutil.which("espeak-ng") is not None)
    assert len(corpus.speakers) == n_voices and len(corpus) == 16 * n_voices
    for spk in corpus.speakers[:: max(1, n_voices // 3)]:
        x, sr = sf.read(next((tmp_path / "tts" / spk).glob("*.wav")))
        assert sr == 16000 and x.ndim == 1 and 1.5 < len(x) / sr < 8.0   # one spoken sentence
        assert 0.01 < abs(x).max() <= 1.0
