"""Shared fixtures of the engine and CLI tests (test_rt_model.py, test_rt_streamer.py,
test_rt_live_engine.py, test_rt_cli.py).

``rand_ckpt``: a randomly initialised ``lite-causal`` checkpoint written once per session to a
temporary folder (the engine never depends on the shipped model being there). ``model``: it,
loaded on the CPU. ``demo_model_rate``: the first seconds of the demo mixture at the model's rate.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "assets" / "demo"
DEMO_MIX = DEMO_DIR / "demo_mix.wav"
SHIPPED = REPO / "assets" / "models" / "lite-lstm-d1.safetensors"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread for these tests (2 threads on 2 cores shared with a training run were
    up to 20x slower), restored afterwards for other modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def rand_ckpt(tmp_path_factory):
    from realtime_tse.models import ModelConfig, build_model
    from realtime_tse.models.checkpoint import save_checkpoint
    torch.manual_seed(0)
    net = build_model(ModelConfig.preset("lite-causal")).eval()
    p = tmp_path_factory.mktemp("ckpt") / "rand-lite-causal.safetensors"
    save_checkpoint(p, net, {"note": "random init, tests only"})
    return p


@pytest.fixture(scope="session")
def model(rand_ckpt):
    from realtime_tse.model import load_model
    return load_model(rand_ckpt, device="cpu")


def demo_at(rate: int, seconds: float | None = None) -> np.ndarray:
    from realtime_tse.model import resample
    x, sr = sf.read(DEMO_MIX, dtype="float32")
    if seconds is not None:
        x = x[:int(seconds * sr)]
    return resample(x, sr, rate)


@pytest.fixture(scope="session")
def demo_model_rate(model):
    return demo_at(model.sample_rate, 6.0)


# Start of a child script (``python -c``) that runs its own PulseAudio server, so that the test can
# kill it mid-stream: argv[1] the server's folder, argv[2] scripts/pulse.sh. Leaves the server's
# environment in os.environ and its process id in ``pid``.
PRIVATE_PULSE_PRELUDE = r"""
import os, subprocess, sys
os.environ["RTSE_PULSE_DIR"] = sys.argv[1]
out = subprocess.run(["bash", sys.argv[2], "start"], capture_output=True, text=True, check=True).stdout
for line in out.splitlines():
    k, v = line[len("export "):].split("=", 1); os.environ[k] = v
pid = int(open(os.path.join(sys.argv[1], "runtime", "pid")).read())
"""
