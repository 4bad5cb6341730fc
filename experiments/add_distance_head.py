#!/usr/bin/env python3
"""Give a ``lite-lstm`` checkpoint the training-only distance head (``ModelConfig.distance_bins``),
computing exactly what it computed before.

The head (one linear layer from the last LSTM output to ``BINS`` distance bins of ``BIN_M`` metres)
starts small and random; the mask, streaming and the live path never read it, so the output is
unchanged. Fine-tune the result with ``tse-train --init`` and a recipe with ``distance_loss > 0``
(``configs/lite_lstm_d1_swap_fast_dist.toml``).

    .venv/bin/python experiments/add_distance_head.py IN.safetensors OUT.safetensors [BINS] [BIN_M]
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_state import save_equivalent  # noqa: E402
from realtime_tse.models.checkpoint import load_checkpoint  # noqa: E402
from realtime_tse.models.net import build_model  # noqa: E402


def convert(src: str, dst: str, bins: int = 10, bin_m: float = 0.5) -> None:
    net, meta = load_checkpoint(src)
    cfg = dataclasses.replace(meta["config"], distance_bins=int(bins), distance_bin_m=float(bin_m)).validate()
    torch.manual_seed(0)
    new = build_model(cfg)
    sd = new.state_dict()
    sd.update(net.state_dict())
    new.load_state_dict(sd)
    err = save_equivalent(src, dst, net, new, meta, tol=1e-6)
    print(f"wrote {dst}: distance head of {bins} bins x {bin_m} m, output equal to {src} within {err:.1e}")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4, 5):
        raise SystemExit(__doc__)
    convert(sys.argv[1], sys.argv[2], *(int(sys.argv[3]),) if len(sys.argv) > 3 else (),
            *(float(sys.argv[4]),) if len(sys.argv) > 4 else ())
