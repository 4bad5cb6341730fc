"""What the live benchmarks share (bench_realtime.py and its sections): the repository on the
import path, the demo file, the model to measure and the demo speech at a rate."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from realtime_tse.model import TSEModel, default_model_path, load_model, resample  # noqa: E402

DEMO = REPO / "assets" / "demo" / "demo_mix.wav"


def get_model(path: str | None) -> tuple[TSEModel, str]:
    p = Path(path) if path else default_model_path()
    if p.is_file():
        return load_model(p, device="cpu"), f"checkpoint {p.relative_to(REPO) if p.is_relative_to(REPO) else p}"
    from realtime_tse.models import ModelConfig, build_model
    from realtime_tse.models.checkpoint import save_checkpoint
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp()) / "random-lite-causal.safetensors"
    save_checkpoint(tmp, build_model(ModelConfig.preset("lite-causal")).eval(), {"note": "random"})
    return load_model(tmp, device="cpu"), "random lite-causal (shipped checkpoint absent)"


def demo(rate: int, seconds: float) -> np.ndarray:
    x, sr = sf.read(DEMO, dtype="float32")
    x = resample(x, sr, rate)
    reps = int(np.ceil(seconds * rate / len(x)))
    return np.tile(x, reps)[: int(seconds * rate)]
