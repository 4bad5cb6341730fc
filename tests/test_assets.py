"""The shipped model and demo input: they load, say where they come from, and the model extracts the
near talker of the demo (positive SDRi against the demo's stored reverberant reference)."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from models.checkpoint import load_checkpoint
from models.metrics import sdr

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CKPT = ASSETS / "models" / "tse-lite-causal-d1.safetensors"
DEMO = ASSETS / "demo"


def test_demo_input_is_complete_and_consistent():
    meta = json.loads((DEMO / "demo.json").read_text())
    mix, sr = sf.read(DEMO / "demo_mix.wav", dtype="float32")
    near, _ = sf.read(DEMO / "demo_near.wav", dtype="float32")
    far, _ = sf.read(DEMO / "demo_far.wav", dtype="float32")
    assert sr == meta["sample_rate"] and mix.ndim == 1 and len(mix) / sr >= 20
    # the mixture is the sum of the two references (up to 16-bit rounding)
    assert np.max(np.abs(mix - near - far)) < 3 / 32768
    d = {k: v["distance_m"] for k, v in meta["talkers"].items()}
    assert abs(d["near"] - 1.0) < 0.2 and abs(d["far"] - 3.0) < 0.2


def test_shipped_checkpoint_loads_with_provenance():
    net, meta = load_checkpoint(CKPT)
    cfg, prov = meta["config"], meta["provenance"]
    assert cfg.preset == "lite-lstm" and cfg.causal   # since session 9 (assets/models/README.md)
    assert prov["room"]["name"] == "d1"
    assert "speechocean762" in prov["credits"]
    assert prov["trainer"]["step"] > 0


def test_shipped_model_extracts_the_near_talker_of_the_demo():
    import torch

    net, meta = load_checkpoint(CKPT)
    sr = meta["config"].sample_rate
    mix, fs = sf.read(DEMO / "demo_mix.wav", dtype="float32")
    near, _ = sf.read(DEMO / "demo_near.wav", dtype="float32")
    mix, near = (soxr.resample(x, fs, sr).astype(np.float32) for x in (mix, near))
    with torch.no_grad():
        est = net(torch.from_numpy(mix)[None], torch.tensor([1.0]))[0].numpy()
    sdri = float(sdr(est, near) - sdr(mix, near))
    assert sdri > 0.0, sdri


def test_shipped_model_query_effect_is_strong():
    """Energy of the output change between d_q = 0.5 m and 4 m relative to the 0.5 m output, on 8 s
    of the demo. Measured +18.8 dB for the shipped checkpoint (the paper's token alone: -45 to
    -60 dB in a prototype, PLATFORM.md); the floor leaves a margin."""
    import torch

    net, meta = load_checkpoint(CKPT)
    sr = meta["config"].sample_rate
    mix, fs = sf.read(DEMO / "demo_mix.wav", dtype="float32")
    x = torch.from_numpy(soxr.resample(mix, fs, sr).astype(np.float32))[None, : 8 * sr]
    with torch.no_grad():
        y1, y2 = net(x, torch.tensor([0.5])), net(x, torch.tensor([4.0]))
    effect_db = 10 * np.log10(float(((y1 - y2) ** 2).sum() / (y1 ** 2).sum()))
    assert effect_db > 6.0, effect_db
