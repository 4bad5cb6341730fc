"""What the state converters share (``film_every_layer_init.py``, ``add_distance_head.py``): check
that the converted network computes what the original computed, then save it with its provenance
naming the source."""
from __future__ import annotations

import torch

from realtime_tse.models.checkpoint import save_checkpoint


def save_equivalent(src: str, dst: str, old, new, meta: dict, tol: float) -> float:
    """Save ``new`` to ``dst`` if its output equals ``old``'s within ``tol`` on random input.

    old, new: networks taking (mix [B, N], d_q [B] metres). meta: ``old``'s checkpoint metadata
    (its provenance is kept, with ``converted_from`` = ``src``). Returns the largest absolute
    difference. Raises SystemExit naming the difference when it exceeds ``tol``.
    """
    x, d = torch.randn(2, 8000), torch.tensor([1.0, 3.0])
    with torch.no_grad():
        err = float((new(x, d) - old(x, d)).abs().max())
    if err > tol:
        raise SystemExit(f"the converted network differs by {err}")
    prov = dict(meta["provenance"])
    prov["converted_from"] = str(src)
    save_checkpoint(dst, new, prov)
    return err
