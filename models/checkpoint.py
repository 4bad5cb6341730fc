"""Checkpoints: one ``.safetensors`` file per model, never pickle.

The file's string metadata holds ``format`` ("realtime-tse"), ``config`` (ModelConfig JSON) and
``provenance`` (JSON: training data, steps, metrics, ...). Optional training state (optimiser
moments) may be stored as extra tensors under the ``optim/`` prefix; :func:`load_checkpoint` ignores
them and :func:`load_training_state` returns them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config import ModelConfig
from .net import build_model

FORMAT = "realtime-tse"


class CheckpointError(ValueError):
    """A checkpoint file is missing, not a checkpoint, truncated or does not fit its config."""


def save_checkpoint(path, model: torch.nn.Module, provenance: dict | None = None,
                    extra_tensors: dict | None = None) -> Path:
    """Write ``model`` (with ``model.cfg``) to ``path`` whole or not at all: a temporary file in
    the same folder, renamed over ``path`` when complete, deleted when writing fails (a previous
    checkpoint at ``path`` stays as it was).

    Args:
        provenance: JSON-serialisable dict (training data, steps, metrics, ...).
        extra_tensors: optional name -> tensor (e.g. optimiser state under "optim/...").
    Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    for k, v in (extra_tensors or {}).items():
        tensors[k] = v.detach().to("cpu").contiguous()
    meta = {"format": FORMAT, "config": model.cfg.to_json(), "provenance": json.dumps(provenance or {})}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def read_metadata(path) -> tuple[ModelConfig, dict]:
    """Config and provenance of a checkpoint without loading weights.

    Raises:
        CheckpointError: naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable .safetensors checkpoint ({e})") from e
    if meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path}: safetensors file without realtime-tse metadata (format/config)")
    try:
        cfg = ModelConfig.from_json(meta["config"])
    except ValueError as e:
        raise CheckpointError(f"{path}: bad model config: {e}") from e
    try:
        prov = json.loads(meta.get("provenance", "{}"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: bad provenance JSON: {e}") from e
    return cfg, prov


def _read_tensors(path: Path, prefix_filter) -> dict:
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys() if prefix_filter(k)}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot read tensors ({e})") from e


def load_checkpoint(path, device="cpu"):
    """Load a model from ``path``.

    Returns:
        (model in eval mode on ``device``, {"config": ModelConfig, "provenance": dict})
    Raises:
        CheckpointError: missing file, not a checkpoint, truncated, unknown config version,
            weights that do not fit the config (missing / unexpected / wrongly shaped tensors),
            or non-finite weights (NaN / Inf: such a model outputs NaN, which reaches a file as
            full-scale samples).
    """
    path = Path(path)
    cfg, prov = read_metadata(path)
    state = _read_tensors(path, lambda k: not k.startswith("optim/"))
    model = build_model(cfg)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:3]))
        raise CheckpointError(f"{path}: weights do not fit the config ({cfg.preset}): " + ", ".join(parts))
    bad = [k for k, v in state.items()
           if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"non-finite weights in {path}: {len(bad)} tensor(s) hold NaN or "
                              f"Inf ({', '.join(bad[:3])}{'...' if len(bad) > 3 else ''}); the "
                              "training diverged or the file is damaged")
    model.load_state_dict(state)
    model.to(device).eval()
    return model, {"config": cfg, "provenance": prov}


def load_training_state(path) -> dict:
    """Extra tensors saved under the ``optim/`` prefix (empty dict if none). Raises CheckpointError."""
    path = Path(path)
    read_metadata(path)
    return _read_tensors(path, lambda k: k.startswith("optim/"))
