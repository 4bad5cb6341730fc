#!/usr/bin/env python3
"""Render a small speech corpus of synthetic voices no model of this project has heard, to test
that a model keeps selecting by distance on voices outside its training corpus (floor: >= 2 dB
SI-SDRi on espeak-ng / flite voices it never heard).

One sub-folder per voice (the layout ``tse-eval --speech`` reads), each with one 16 kHz mono
16-bit WAV per sentence. Test a checkpoint on every voice with::

    .venv/bin/python scripts/make_tts_corpus.py runs/tts_voices
    .venv/bin/tse-eval CKPT --scenario d1 --speech runs/tts_voices --all-speakers --json OUT.json

Voices (both engines are Debian packages: ``apt-get install flite espeak-ng``): flite ``awb``,
``kal16``, ``rms``, ``slt`` (``kal`` is an 8 kHz voice and is left out) and espeak-ng ``en-us``,
``en-us+f3``, ``en-gb``, ``en-gb+f4``, ``en-gb-scotland``, ``en-029+f2`` (``+fN`` are espeak-ng's
female variants). A voice whose engine is missing is skipped with a message; none at all is an
error. The sentences were written for this project.

Output levels follow the engines; ``realtime_tse.train.mixtures`` sets each talker's level itself.
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
FLITE_VOICES = ("awb", "kal16", "rms", "slt")
ESPEAK_VOICES = ("en-us", "en-us+f3", "en-gb", "en-gb+f4", "en-gb-scotland", "en-029+f2")

SENTENCES = (
    "The train to the coast leaves at ten past eight from the second platform.",
    "Please put the blue folder on the shelf beside the window.",
    "We walked along the river until the path turned into a muddy field.",
    "A small boat was tied to the old wooden post near the bridge.",
    "My brother fixed the bicycle with a spoon and a piece of wire.",
    "The soup needs more salt, and perhaps a little pepper as well.",
    "Nobody knew who had left the umbrella in the meeting room.",
    "The library closes early on Fridays during the summer months.",
    "She counted forty seven birds sitting on the telephone wire.",
    "If the weather stays dry, we will paint the fence on Sunday.",
    "The museum has a clock that has not stopped for two hundred years.",
    "He wrote the numbers on the back of an envelope and lost it.",
    "The baker opens the shop before the sun comes up each morning.",
    "Turn left at the church, then follow the road up the hill.",
    "Our neighbours keep three goats and a very noisy goose.",
    "The children built a tower of cardboard boxes in the hall.",
)


def render(engine: str, voice: str, text: str, out: Path) -> np.ndarray:
    """``text`` spoken by ``voice`` of ``engine`` ("flite" | "espeak-ng"), as float32 mono at FS.

    Raises subprocess.CalledProcessError when the engine fails."""
    cmd = ([engine, "-voice", voice, "-t", text, "-o", str(out)] if engine == "flite"
           else [engine, "-v", voice, "-w", str(out), text])
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    x, sr = sf.read(str(out), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    return x if sr == FS else soxr.resample(x, sr, FS).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output folder (one sub-folder per voice); e.g. runs/tts_voices")
    a = ap.parse_args(argv)
    out = Path(a.out)
    voices = [(e, v) for e, vs in (("flite", FLITE_VOICES), ("espeak-ng", ESPEAK_VOICES)) for v in vs]
    done = 0
    with tempfile.TemporaryDirectory() as tmp:
        for engine, voice in voices:
            if shutil.which(engine) is None:
                print(f"skipping {engine} {voice}: {engine} not installed (apt-get install {engine})",
                      file=sys.stderr)
                continue
            folder = out / f"{engine.split('-')[0]}_{voice.replace('+', '_')}"
            folder.mkdir(parents=True, exist_ok=True)
            for i, text in enumerate(SENTENCES):
                x = render(engine, voice, text, Path(tmp) / "utt.wav")
                sf.write(folder / f"{i:02d}.wav", x, FS, subtype="PCM_16")
            done += 1
            print(f"{folder}: {len(SENTENCES)} sentences")
    if done == 0:
        print("no voice rendered: install flite or espeak-ng", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
