#!/usr/bin/env python3
"""Turn a ``lite-lstm`` checkpoint into the same network with the token's FiLM after every LSTM
layer (``ModelConfig.film_every_layer``), computing exactly what it computed before.

The multi-layer LSTM's weights move to one LSTM per layer (``rnn.*_l{i}`` -> ``rnns.{i}.*_l0``);
the new FiLM layers start at zero (scale 1, shift 0), so the output is unchanged until training
teaches them to use the query inside the network. Fine-tune the result with ``tse-train --init``.

    .venv/bin/python experiments/film_every_layer_init.py IN.safetensors OUT.safetensors
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


def convert(src: str, dst: str) -> None:
    net, meta = load_checkpoint(src)
    cfg = dataclasses.replace(meta["config"], film_every_layer=True).validate()
    new = build_model(cfg)
    old = net.state_dict()
    sd = {}
    for k, v in new.state_dict().items():
        if k.startswith("rnns."):
            i, rest = k[len("rnns."):].split(".", 1)           # "0", "weight_ih_l0"
            sd[k] = old["rnn." + rest[:-1] + i]
        elif k.startswith("layer_films."):
            sd[k] = torch.zeros_like(v)
        else:
            sd[k] = old[k]
    new.load_state_dict(sd)
    err = save_equivalent(src, dst, net, new, meta, tol=1e-5)
    print(f"wrote {dst}: film_every_layer, output equal to {src} within {err:.1e}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    convert(sys.argv[1], sys.argv[2])
