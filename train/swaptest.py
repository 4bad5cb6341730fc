"""The position-swap test: does a model pick a talker by distance or by voice?

Each pair of talkers is rendered twice at the same two positions (two RIRs of one room, at least
``min_gap_m`` apart): once with voice A at the first position and voice B at the second, once with
the voices swapped. Each rendering is queried at both talkers' distances (``d_q`` = the talker's
distance), so every pair gives four queries. For a query asking for position ``p``:

    contrast = [SI-SDR(out, asked) - SI-SDR(out, other)] - [SI-SDR(mix, asked) - SI-SDR(mix, other)]

in dB: how much more the output leans to the talker standing at the asked position than the
mixture already does. A model that uses distance leans to whoever stands there in both renderings;
a model that uses voice leans to the same voice in both, so it is right in one rendering and wrong
in the other. Reported (:func:`swap_test`):

* ``leans_right``: share of queries with contrast > 0;
* ``right_in_both``: share of (pair, position) where both renderings lean right;
* ``same_voice_wins``: share of (pair, position) where the output leans to the same voice in both
  renderings (right in exactly one): the voice decided, not the position;
* ``mean_contrast_db``: the mean contrast over all queries.

Chance for a model that ignores both voice and distance: 50 % / 25 % / 50 % / 0 dB; a model that
answers by voice alone: 50 % / 0 % / 100 %.

The renderings come from :meth:`realtime_tse.train.mixtures.MixtureSampler.sample_swapped_at` (one utterance,
crop and level per voice, the same two RIRs in both orders), on whatever speech the sampler holds:
a test split of the training corpus, or a corpus the model never heard.
"""
from __future__ import annotations

import numpy as np
import torch

from realtime_tse.models.metrics import si_sdr


def contrast_db(out, asked, other, mix) -> float:
    """Contrast (dB) of one output ``out`` [N] towards the talker ``asked`` [N] against ``other``
    [N], relative to what the mixture ``mix`` [N] already shows (module docstring). Arrays or
    tensors of one length."""
    t = [torch.as_tensor(np.asarray(v, dtype=np.float32)) for v in (out, asked, other, mix)]
    o, a, b, m = t
    return float((si_sdr(o, a) - si_sdr(o, b)) - (si_sdr(m, a) - si_sdr(m, b)))


def summarise(contrasts: np.ndarray) -> dict:
    """Figures of a contrast array [P, 2 renderings, 2 positions] (dB): see the module docstring.

    Raises ValueError for another shape."""
    c = np.asarray(contrasts, dtype=float)
    if c.ndim != 3 or c.shape[1:] != (2, 2):
        raise ValueError(f"contrasts must be [pairs, 2, 2], got {c.shape}")
    right = c > 0                                  # [P, rendering, position]
    both = right.all(axis=1)                       # [P, position]
    one = right.sum(axis=1) == 1
    return {"pairs": int(c.shape[0]), "queries": int(c.size),
            "leans_right": float(right.mean()), "right_in_both": float(both.mean()),
            "same_voice_wins": float(one.mean()), "mean_contrast_db": float(c.mean()),
            "std_contrast_db": float(c.std())}


def swap_test(net, sampler, pairs: int = 20, min_gap_m: float = 1.0, device="cpu",
              start: int = 0) -> dict:
    """Run the position-swap test of ``net`` on ``pairs`` voice pairs drawn by ``sampler``.

    Args:
        net: a model with ``forward(mix [B, N], d_q [B] m) -> [B, N]`` at ``sampler.sample_rate``.
        sampler: :class:`realtime_tse.train.mixtures.MixtureSampler` (test split; its augmentation is not used).
        pairs: voice pairs (each gives 2 renderings x 2 queries).
        min_gap_m: smallest distance between the two positions (m).
        device: torch device of ``net``.
        start: index of the first pair (``sample_swapped_at(4 * (start + i) + r)``).
    Returns:
        :func:`summarise`'s dict plus ``contrasts_db`` [pairs][2][2] (rendering, position) and
        ``distances_m`` [pairs][2].
    """
    saved = (sampler.p_presence, sampler.min_gap_m, sampler.augment, sampler.p_single)
    sampler.p_presence, sampler.min_gap_m, sampler.augment, sampler.p_single = 1.0, float(min_gap_m), None, 0.0
    out_c, dists = [], []
    was_training = getattr(net, "training", False)
    net.eval()
    try:
        with torch.no_grad():
            for p in range(start, start + pairs):
                ms = [sampler.sample_swapped_at(4 * p + r) for r in range(4)]
                mixes = torch.from_numpy(np.stack([m.mix for m in ms])).to(device)
                # query each position at the talker's own distance
                d_q = torch.tensor([float(m.distances[r % 2]) for r, m in enumerate(ms)],
                                   dtype=torch.float32, device=device)
                est = net(mixes, d_q).float().cpu().numpy()
                c = np.zeros((2, 2))
                for r, m in enumerate(ms):
                    rend, pos = divmod(r, 2)
                    c[rend, pos] = contrast_db(est[r], m.sources[pos], m.sources[1 - pos], m.mix)
                out_c.append(c)
                dists.append([float(v) for v in ms[0].distances])
    finally:
        sampler.p_presence, sampler.min_gap_m, sampler.augment, sampler.p_single = saved
        if was_training:
            net.train()
    rep = summarise(np.array(out_c))
    rep["contrasts_db"] = np.round(np.array(out_c), 3).tolist()
    rep["distances_m"] = dists
    return rep


def format_swap(name: str, rep: dict) -> str:
    """One line of a swap-test report (shares in %, contrast in dB)."""
    return (f"{name}: position swap over {rep['pairs']} pairs ({rep['queries']} queries): leans right "
            f"{100 * rep['leans_right']:.0f} %, right in both {100 * rep['right_in_both']:.0f} %, "
            f"same voice wins {100 * rep['same_voice_wins']:.0f} %, mean contrast "
            f"{rep['mean_contrast_db']:+.1f} dB")
