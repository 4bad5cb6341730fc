"""The shipped model and demo input: they load, say where they come from, and the model extracts the
near talker of the demo (positive SDRi against the demo's stored reverberant reference)."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from realtime_tse.models.checkpoint import load_checkpoint
from realtime_tse.models.metrics import sdr

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CKPT = ASSETS / "models" / "lite-lstm-d1.safetensors"
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
    assert cfg.preset == "lite-lstm" and cfg.causal   # the name says so (docs/model-card.md)
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
    """The query turns the output on and off: on 8 s of the demo, the output level (re input) at
    d_q = 1.0 m (the near talker's distance) minus the level at d_q = 5.0 m (nobody there).
    Measured 53.8 dB for the shipped checkpoint (step 51,200 of the swap fine-tuning), 48.3 dB at
    its step 36,046, 42.5 dB for the model before the swap fine-tuning (step 68,800) and 34.2 dB for that run at step 32,000; 5.1 dB for the lite-causal state in experiments/train_state/; a model that ignores the
    query (the paper's token alone in a prototype) gives 0 dB. It compares 1.0 m with 5.0 m, not
    0.5 m with 4 m: both of those are absence queries for the demo, which a selective model
    silences, so their ratio says nothing."""
    import torch

    net, meta = load_checkpoint(CKPT)
    sr = meta["config"].sample_rate
    mix, fs = sf.read(DEMO / "demo_mix.wav", dtype="float32")
    x = torch.from_numpy(soxr.resample(mix, fs, sr).astype(np.float32))[None, : 8 * sr]
    with torch.no_grad():
        on, off = net(x, torch.tensor([1.0])), net(x, torch.tensor([5.0]))
    contrast_db = 10 * np.log10(float((on ** 2).sum() / ((off ** 2).sum() + 1e-12)))
    assert contrast_db > 10.0, contrast_db
