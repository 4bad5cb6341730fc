#!/usr/bin/env python3
"""Re-create the shipped demo input of realtime-tse (``assets/demo/``).

Two synthetic talkers (Debian's ``flite``: ``rms``, a US male voice, and ``slt``, a US female
voice) read texts written for this project, placed in the paper's D1 room (7 x 8 x 3 m, microphone
at (3.5, 4, 1.1), RT60 0.2 s, randomised image method) with pyroomacoustics: the near talker about
1.0 m from the microphone, the far talker about 3.0 m.

Outputs (16-bit PCM WAV, 16 kHz, mono), next to this script unless ``--out`` says otherwise:

- ``demo_mix.wav``   the mixture ``y = x_near + x_far``
- ``demo_near.wav``  reverberant speech of the near talker (the target for d_q ~ 1 m)
- ``demo_far.wav``   reverberant speech of the far talker (the target for d_q ~ 3 m)
- ``demo.json``      the truth: distances, positions, room, RT60 (target and measured), voices,
                     texts, levels, seed, licence note

Choices (the paper and SPEC are silent on a demo; decided here):

- Each sentence is rendered separately and its leading/trailing silence trimmed, then the sentences
  are joined with random pauses of 0.25..0.55 s so that each talker speaks most of the time, like
  a conversation where both talk over each other. The signal is cut (with a 50 ms fade) at
  ``DURATION_S``.
- flite already writes 16 kHz; every rendering goes through ``soxr`` anyway so that another flite
  build (or voice) at another rate gives the same result.
- Talker positions: 3-D distance exactly 1.0 m / 3.0 m from the microphone (height uniform in
  1.2..2.0 m, azimuth random, >= 0.5 m from every wall). Note that the randomised image method only
  jitters image sources, so the direct path keeps this distance.
- RIRs are convolved with the dry speech separately (``scipy.signal.fftconvolve``) and cut to the
  dry length, so that ``mix == near + far`` up to 16-bit rounding; each reverberant signal is then
  scaled to its RMS level (-22 dBFS near, -23 dBFS far: inside the paper's [-25, -20] dBFS).
- Deterministic: numpy and pyroomacoustics' own generator are seeded with ``SEED``.

Run: ``.venv/bin/python assets/demo/make_demo.py`` (needs the ``flite`` command:
``apt-get install flite``).

``--swap`` renders the same demo with the two voices' positions swapped (``slt`` at 1 m, ``rms`` at
3 m: same room, RIRs, texts, pauses and levels per position, only the voices trade places). A model
that selects by distance gives the talker at 1 m for ``d_q`` = 1 m in both renderings; one that
selects by voice gives the same voice in both (the position-swap test, ``train/swaptest.py``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pyroomacoustics as pra
import soundfile as sf
import soxr
from scipy.signal import fftconvolve

SEED = 20240611
FS = 16000
DURATION_S = 24.0
ROOM_DIM = (7.0, 8.0, 3.0)
MIC_POS = (3.5, 4.0, 1.1)
RT60_TARGET = 0.2
WALL_MARGIN = 0.5
HEIGHT_RANGE = (1.2, 2.0)
PAUSE_RANGE = (0.25, 0.55)

# Texts written for this project (released with it); plain, public-domain style prose.
TALKERS = {
    "near": {
        "voice": "rms",
        "voice_desc": "flite rms (US English, male)",
        "distance_m": 1.0,
        "level_dbfs": -22.0,
        "sentences": [
            "The old lighthouse stood on a rock at the end of the bay.",
            "Every evening the keeper climbed the narrow stairs and lit the great lamp.",
            "Ships far out at sea would see the light and turn away from the reef.",
            "In winter the wind was so strong that the windows rattled all night.",
            "The keeper wrote the weather in a thick book with a blue cover.",
            "He counted the boats that passed, and he noted the times of the tides.",
            "When the fog came in, he rang the bell until his arms were tired.",
            "In the spring, his daughter rowed out with bread, apples and letters.",
            "They sat on the steps and watched the gulls fight over the fish.",
            "Years later, the lamp was run by a machine, but the book is still there.",
        ],
    },
    "far": {
        "voice": "slt",
        "voice_desc": "flite slt (US English, female)",
        "distance_m": 3.0,
        "level_dbfs": -23.0,
        "sentences": [
            "Our garden is small, but something grows in it all through the year.",
            "In March we plant peas along the fence, and the children count the green shoots.",
            "By June the beans climb higher than the gate, and the bees are busy all day.",
            "My grandmother taught me to save the seeds from the best tomatoes.",
            "We dry them on a paper towel by the kitchen window.",
            "When the first frost arrives, we cover the lettuce with old sheets.",
            "The pumpkins sit on the porch until the end of October.",
            "On quiet mornings, a fox walks along the wall and looks at the hens.",
            "We have never lost a hen, because the dog sleeps right beside them.",
            "Next year we would like to try sweet corn and a row of sunflowers.",
        ],
    },
}

LICENCE_NOTE = (
    "Speech synthesised with CMU Flite (Debian package 'flite'); flite and its voices (rms, slt) "
    "are free software and may be redistributed, including generated audio; see Debian's "
    "copyright file for flite (/usr/share/doc/flite/copyright). Texts written for realtime-tse "
    "and released with it."
)


def flite_render(text: str, voice: str, workdir: Path) -> np.ndarray:
    """Render ``text`` with the flite ``voice``; return float64 mono at FS (via soxr)."""
    exe = shutil.which("flite")
    if exe is None:
        raise SystemExit("flite not found: apt-get install flite")
    out = workdir / "utt.wav"
    subprocess.run([exe, "-voice", voice, "-t", text, "-o", str(out)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    x, sr = sf.read(str(out), dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    if sr != FS:
        x = soxr.resample(x, sr, FS, quality="HQ")
    return x


def trim_silence(x: np.ndarray, thresh_db: float = -45.0, pad_s: float = 0.03) -> np.ndarray:
    """Cut leading/trailing frames quieter than ``thresh_db`` relative to the peak frame."""
    hop = int(0.01 * FS)
    n = len(x) // hop
    e = np.array([np.mean(x[i * hop:(i + 1) * hop] ** 2) for i in range(n)]) + 1e-20
    e_db = 10 * np.log10(e / e.max())
    active = np.flatnonzero(e_db > thresh_db)
    if active.size == 0:
        return x
    pad = int(pad_s * FS)
    a = max(0, active[0] * hop - pad)
    b = min(len(x), (active[-1] + 1) * hop + pad)
    return x[a:b]


def dry_talker(sentences: list[str], voice: str, rng: np.random.Generator,
               n_total: int, workdir: Path) -> tuple[np.ndarray, list[str], float]:
    """Join sentence renderings with short random pauses up to ``n_total`` samples."""
    out = np.zeros(n_total)
    pos = int(rng.uniform(0.05, 0.3) * FS)  # short random onset
    spoken: list[str] = []
    for s in sentences:
        if pos >= n_total:
            break
        u = trim_silence(flite_render(s, voice, workdir))
        u = u / (np.sqrt(np.mean(u ** 2)) + 1e-12)
        m = min(len(u), n_total - pos)
        out[pos:pos + m] = u[:m]
        spoken.append(s if m == len(u) else s + " [cut]")
        pos += len(u) + int(rng.uniform(*PAUSE_RANGE) * FS)
    if pos < n_total:
        raise SystemExit(f"texts too short for {DURATION_S} s with voice {voice}: add sentences")
    fade = int(0.05 * FS)
    out[-fade:] *= np.linspace(1.0, 0.0, fade)
    return out, spoken, active_fraction(out)


def active_fraction(x: np.ndarray, thresh_db: float = -40.0) -> float:
    """Fraction of 20 ms frames within ``thresh_db`` of the loudest frame."""
    hop = int(0.02 * FS)
    n = len(x) // hop
    e = np.mean(x[:n * hop].reshape(n, hop) ** 2, axis=1) + 1e-20
    return float(np.mean(10 * np.log10(e / e.max()) > thresh_db))


def place_talker(distance: float, rng: np.random.Generator, avoid: list[np.ndarray]) -> np.ndarray:
    """A point at 3-D ``distance`` from the mic, height in HEIGHT_RANGE, >= WALL_MARGIN from walls."""
    mic = np.array(MIC_POS)
    for _ in range(10000):
        h = rng.uniform(*HEIGHT_RANGE)
        dz = h - mic[2]
        r = np.sqrt(distance ** 2 - dz ** 2)
        az = rng.uniform(0, 2 * np.pi)
        p = np.array([mic[0] + r * np.cos(az), mic[1] + r * np.sin(az), h])
        inside = all(WALL_MARGIN <= p[i] <= ROOM_DIM[i] - WALL_MARGIN for i in range(2))
        far_enough = all(np.linalg.norm(p - q) > 1.0 for q in avoid)
        if inside and far_enough:
            return p
    raise RuntimeError("no valid talker position")


def flite_version() -> str:
    txt = subprocess.run(["flite", "--version"], capture_output=True, text=True).stdout
    lines = [ln.strip() for ln in txt.splitlines() if "version" in ln]
    return "CMU Flite" + (f" ({lines[0]})" if lines else "")


def dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x ** 2)) + 1e-20))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--swap", action="store_true",
                    help="the voices trade places (slt near, rms far); write it to another --out")
    args = ap.parse_args(argv)
    if args.swap and args.out.resolve() == Path(__file__).resolve().parent:
        ap.error("--swap would overwrite the shipped demo: give --out DIR")
    args.out.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(SEED)
    np.random.seed(SEED)
    pra.random.seed(SEED)
    n_total = int(DURATION_S * FS)

    # --- dry speech ---
    dry, spoken, activity = {}, {}, {}
    with tempfile.TemporaryDirectory() as td:
        for name, t in TALKERS.items():
            dry[name], spoken[name], activity[name] = dry_talker(
                t["sentences"], t["voice"], rng, n_total, Path(td))

    # --- room (paper D1) ---
    e_absorption, max_order = pra.inverse_sabine(RT60_TARGET, ROOM_DIM)
    room = pra.ShoeBox(ROOM_DIM, fs=FS, materials=pra.Material(e_absorption),
                       max_order=max_order, use_rand_ism=True, max_rand_disp=0.08)
    room.add_microphone(np.array(MIC_POS))
    positions = {}
    for name, t in TALKERS.items():
        positions[name] = place_talker(t["distance_m"], rng, list(positions.values()))
        room.add_source(positions[name])
    room.compute_rir()
    rt60_measured = [float(v) for v in np.asarray(room.measure_rt60())[0]]

    talkers = {n: dict(t) for n, t in TALKERS.items()}
    if args.swap:   # the voices (their speech, texts and voice names) trade places; positions stay
        dry["near"], dry["far"] = dry["far"], dry["near"]
        spoken["near"], spoken["far"] = spoken["far"], spoken["near"]
        activity["near"], activity["far"] = activity["far"], activity["near"]
        for key in ("voice", "voice_desc", "sentences"):
            talkers["near"][key], talkers["far"][key] = TALKERS["far"][key], TALKERS["near"][key]

    # --- reverberant speech, levels, mixture ---
    rev = {}
    for k, (name, t) in enumerate(talkers.items()):
        x = fftconvolve(dry[name], room.rir[0][k])[:n_total]
        x *= 10 ** (t["level_dbfs"] / 20) / np.sqrt(np.mean(x ** 2))
        rev[name] = x
    mix = rev["near"] + rev["far"]
    peak = float(np.max(np.abs(mix)))
    if peak >= 1.0:
        raise SystemExit(f"mixture clips (peak {peak:.3f})")

    files = {"mix": "demo_mix.wav", "near": "demo_near.wav", "far": "demo_far.wav"}
    sf.write(args.out / files["mix"], mix, FS, subtype="PCM_16")
    sf.write(args.out / files["near"], rev["near"], FS, subtype="PCM_16")
    sf.write(args.out / files["far"], rev["far"], FS, subtype="PCM_16")

    mic = np.array(MIC_POS)
    truth = {
        "sample_rate": FS,
        "duration_s": n_total / FS,
        "files": files,
        "format": "WAV, 16-bit PCM, mono",
        "room": {"preset": "D1", "dim_m": list(ROOM_DIM), "mic_pos_m": list(MIC_POS),
                 "rt60_target_s": RT60_TARGET,
                 "rt60_measured_s": dict(zip(TALKERS, rt60_measured)),
                 "max_order": int(max_order), "e_absorption": float(e_absorption),
                 "use_rand_ism": True, "max_rand_disp_m": 0.08, "simulator": f"pyroomacoustics {pra.__version__}"},
        "talkers": {
            name: {
                "voice": t["voice"], "voice_desc": t["voice_desc"],
                "distance_m": round(float(np.linalg.norm(positions[name] - mic)), 4),
                "position_m": [round(float(v), 4) for v in positions[name]],
                "level_dbfs": round(dbfs(rev[name]), 2),
                "speech_activity": round(activity[name], 3),
                "text": " ".join(spoken[name]),
                "file": files[name],
            } for name, t in talkers.items()
        },
        "voices_swapped": bool(args.swap),
        "mixture_level_dbfs": round(dbfs(mix), 2),
        "mixture_peak": round(peak, 4),
        "seed": SEED,
        "script": "assets/demo/make_demo.py",
        "tts": flite_version(),
        "licence": LICENCE_NOTE,
    }
    (args.out / "demo.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(json.dumps({k: truth[k] for k in ("duration_s", "mixture_level_dbfs", "mixture_peak")}),
          {n: (v["distance_m"], v["level_dbfs"], v["speech_activity"]) for n, v in truth["talkers"].items()},
          "rt60 measured", rt60_measured)


if __name__ == "__main__":
    main()
