"""Permutation-invariant training (uPIT) through two fixed query tokens: which pairs of a batch are
queried at the tokens (:func:`fixed_query_pairs`) and their targets in distance order
(:func:`nearer_first`)."""
from __future__ import annotations

import torch


def fixed_query_pairs(d_q: torch.Tensor, kinds: list, queries, share: float,
                      gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries for uPIT through two fixed query tokens (``TrainConfig.pit_queries``).

    The batch holds pairs (rows ``2m``, ``2m + 1``: one mixture queried around each of its talkers).
    A pair whose rows are both single-talker queries is, with probability ``share``, queried at the
    fixed distances ``queries[0]`` (row ``2m``) and ``queries[1]`` (row ``2m + 1``) instead, and is
    then scored with PIT (``batch_loss(pit_only=...)``): the network learns to split any mixture into
    two streams, one per token, like a two-output uPIT separator, without having to know either
    talker's distance first. With a query at the talkers' own distances the same split is ambiguous
    (a query at 2 m is the farther talker of a 1 m / 2 m pair and the nearer one of a 2 m / 3 m pair),
    which capped PIT through the query at about 1 dB (``experiments/FINDINGS.md``). ``share`` < 1 mixes in
    pairs at their true queries (a soft switch to the query-bound loss).

    Args:
        d_q: [B] metres, the batch's queries. kinds: B strings ("single", "both", "absence").
        queries: two distances in metres. share: probability in [0, 1]. gen: torch generator.
    Returns:
        (d_q [B] with the chosen pairs replaced, bool [B / 2]: the pairs to score with PIT).
    Raises:
        ValueError: an odd batch or ``len(kinds) != B``.
    """
    if d_q.shape[0] % 2 or len(kinds) != d_q.shape[0]:
        raise ValueError(f"fixed_query_pairs needs an even batch of pairs, got {d_q.shape[0]} rows, {len(kinds)} kinds")
    single = torch.tensor([k == "single" for k in kinds]).reshape(-1, 2).all(1)
    pick = single & (torch.rand(single.shape[0], generator=gen) < share)
    out = d_q.clone().reshape(-1, 2)
    out[pick] = torch.tensor([float(queries[0]), float(queries[1])], dtype=out.dtype)
    return out.flatten(), pick


def nearer_first(target: torch.Tensor, d_q: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Targets of the token pairs in distance order: row ``2m`` the nearer talker, ``2m + 1`` the
    farther (``TrainConfig.token_order_from``), so that the token ``pit_queries[0]`` always means
    "the nearer talker" and the network has to tell the two separated streams apart by distance.

    Args:
        target: [B, N] the pair rows' targets (row ``2m`` the talker at ``d_q[2m]``).
        d_q: [B] metres, each row's own talker distance (before any token replaced it).
        pairs: bool [B / 2], the pairs queried at the tokens.
    Returns:
        [B, N], a copy with the two rows of each marked pair swapped where ``d_q[2m] > d_q[2m + 1]``.
    """
    d = d_q.reshape(-1, 2)
    swap = (pairs.to(d.device) & (d[:, 0] > d[:, 1])).to(target.device)
    t = target.reshape(-1, 2, target.shape[-1])
    return torch.where(swap[:, None, None], t.flip(1), t).reshape(target.shape)
