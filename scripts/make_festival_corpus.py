#!/usr/bin/env python3
"""Render a training corpus of Debian's festival voices: more voices beside a small real corpus.

A model trained on one small corpus can learn its voices instead of the room. Festival's voices
(Czech, Finnish, Italian, Russian, Catalan and US English; the language does not matter to
reverberation) add speakers whose voice says nothing about where they stand. One sub-folder per
voice (the layout ``tse-train --extra-speech`` reads), one 16 kHz mono 16-bit WAV per sentence.

    apt-get install festival festvox-czech-dita festvox-czech-krb festvox-czech-machac \\
        festvox-czech-ph festvox-kdlpc16k festvox-suopuhe-lj festvox-suopuhe-mv festvox-italp16k \\
        festvox-itapc16k festvox-ru festvox-ca-ona-hts
    .venv/bin/python scripts/make_festival_corpus.py runs/festival_voices --sentences 40

Voices that stay out on purpose: ``us-slt-hts`` (the same speaker as flite's ``slt``, a voice of the
demo and of the unseen-voice test) and ``kal_diphone`` (the same speaker as flite's ``kal16``, an
unseen test voice). The Indic voices need their own scripts and are left out. A voice that is not
installed is skipped with a message; none at all is an error.

Sentences are drawn from word lists written for this project (plain, meaning-light English), so any
number of different sentences can be made; the seed fixes them.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

FS = 16000
VOICES = ("czech_dita", "czech_krb", "czech_machac", "czech_ph", "ked_diphone", "hy_fi_mv_diphone",
          "suo_fi_lj_diphone", "lp_diphone", "pc_diphone", "msu_ru_nsh_clunits", "upc_ca_ona_hts")
SUBJECTS = ("the farmer", "my neighbour", "a young teacher", "the old captain", "our driver",
            "the tall student", "a quiet painter", "the baker", "her brother", "the night nurse")
VERBS = ("carried", "painted", "counted", "found", "opened", "moved", "cleaned", "sold", "fixed",
         "watched")
OBJECTS = ("a heavy box", "the green door", "seven apples", "the broken clock", "an empty basket",
           "the long ladder", "two wooden chairs", "a bright lamp", "the paper map", "a silver key")
PLACES = ("near the station", "behind the church", "in the morning", "before the storm",
          "at the market", "under the bridge", "after dinner", "beside the river", "in the garden",
          "on the third floor")
TAILS = ("", " and then went home", " while the radio was playing", " without saying a word",
         " for the second time", " because it was late")


def sentences(n: int, seed: int) -> list[str]:
    """``n`` different sentences from the word lists, deterministic from ``seed``."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen = set()
    while len(out) < n:
        parts = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(PLACES)]
        s = " ".join(parts).capitalize() + str(rng.choice(TAILS)) + "."
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def render(voice: str, text: str, work: Path) -> np.ndarray | None:
    """One sentence through festival's ``text2wave``: float64 mono at FS, or None on failure."""
    txt, wav = work / "s.txt", work / "s.wav"
    txt.write_text(text + "\n")
    r = subprocess.run(["text2wave", "-eval", f"(voice_{voice})", str(txt), "-o", str(wav)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or not wav.is_file() or wav.stat().st_size < 1000:
        return None
    x, sr = sf.read(str(wav), dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    return soxr.resample(x, sr, FS) if sr != FS else x


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--sentences", type=int, default=40, help="sentences per voice")
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args(argv)
    if shutil.which("text2wave") is None:
        print("text2wave not found: apt-get install festival (and the festvox-* voices)", file=sys.stderr)
        return 2
    made = 0
    with tempfile.TemporaryDirectory() as td:
        for k, voice in enumerate(VOICES):
            texts = sentences(a.sentences, a.seed + k)
            first = render(voice, texts[0], Path(td))
            if first is None:
                print(f"{voice}: not installed or failed, skipped", file=sys.stderr)
                continue
            d = a.out / f"festival_{voice}"
            d.mkdir(parents=True, exist_ok=True)
            n = 0
            for i, t in enumerate(texts):
                x = first if i == 0 else render(voice, t, Path(td))
                if x is None or not np.isfinite(x).all() or np.abs(x).max() == 0:
                    continue
                x = 0.5 * x / np.abs(x).max()
                tmp = d / f".s{i:03d}.wav"
                sf.write(tmp, x.astype(np.float32), FS, subtype="PCM_16", format="WAV")
                tmp.replace(d / f"s{i:03d}.wav")
                n += 1
            print(f"{d}: {n} sentences", flush=True)
            made += 1
    if not made:
        print("no festival voice could be rendered", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
