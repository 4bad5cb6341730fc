"""Validation on fixed mixtures (:func:`validate`) and how the best checkpoint is chosen
(:func:`selection_key`)."""
from __future__ import annotations

import math

import numpy as np
import torch

from realtime_tse.models.metrics import relative_level, sdr, si_sdr
from realtime_tse.train.losses import batch_loss


def validate(net, val_batches: list[dict], device, pit_queries=None) -> dict:
    """Validation loss and quick quality figures on fixed mixtures.

    Returns dict: val_loss, sdri_single (dB, mean SDR improvement on single-talker queries),
    si_sdri_single (dB), absence_level_db (output level relative to the input on absence queries),
    presence_level_db (output level relative to the target on single-talker queries: near 0 for a
    useful model; far below 0 when it has collapsed to silence for every query, which the
    scale-invariant SI-SDRi alone does not show), sep_si_sdri_single (dB, on the same queries: the
    SI-SDRi towards whichever of the two talkers the output is closer to; above si_sdri_single when
    the network separates the talkers but answers the query with the wrong one, e.g. during PIT).
    With ``pit_queries`` ([q_a, q_b] metres, ``TrainConfig.pit_queries``) also pit_fixed_si_sdri
    (dB): each single-talker mixture queried at the two fixed tokens, the mean SI-SDRi of the two
    outputs towards the two talkers under the better assignment (a uPIT separator's figure), and
    token_order_si_sdri (dB): the same with the assignment fixed by distance (q_a -> the nearer
    talker; needs ``distances`` [B, 2] in the batch), the figure of ``token_order_from``.
    """
    net.eval()
    losses, sdri, sisdri, absl, presl, sep, fixed, ordered = [], [], [], [], [], [], [], []
    with torch.no_grad():
        for b in val_batches:
            mix, tgt = b["mix"].to(device), b["target"].to(device)
            est = net(mix, b["d_q"].to(device)).float()
            bb = dict(b, mix=mix, target=tgt)
            losses.append(float(batch_loss(est, bb)))
            for k, kind in enumerate(b["kind"]):
                if kind == "single":
                    sdri.append(float(sdr(est[k], tgt[k]) - sdr(mix[k], tgt[k])))
                    sisdri.append(float(si_sdr(est[k], tgt[k]) - si_sdr(mix[k], tgt[k])))
                    presl.append(float(relative_level(est[k], tgt[k])))
                    if "sources" in b:
                        src = b["sources"][k].to(device)
                        base = si_sdr(mix[k].expand(2, -1), src)     # [2]: the mixture towards each talker
                        sep.append(float((si_sdr(est[k].expand(2, -1), src) - base).max()))
                        if pit_queries:
                            two = net(mix[k].expand(2, -1), torch.tensor([float(q) for q in pit_queries],
                                                                         device=device)).float()
                            same = (si_sdr(two, src) - base).mean()
                            cross = (si_sdr(two, src.flip(0)) - base.flip(0)).mean()
                            fixed.append(float(torch.maximum(same, cross)))
                            if "distances" in b:   # tokens in distance order: q_a -> the nearer talker
                                d = b["distances"][k]
                                ordered.append(float(same if float(d[0]) <= float(d[1]) else cross))
                elif kind == "absence":
                    absl.append(float(relative_level(est[k], mix[k])))
    net.train()
    nan = float("nan")
    return {"val_loss": float(np.mean(losses)), "sdri_single": float(np.mean(sdri)) if sdri else nan,
            "si_sdri_single": float(np.mean(sisdri)) if sisdri else nan,
            "absence_level_db": float(np.mean(absl)) if absl else nan,
            "presence_level_db": float(np.mean(presl)) if presl else nan,
            "sep_si_sdri_single": float(np.mean(sep)) if sep else nan,
            **({"pit_fixed_si_sdri": float(np.mean(fixed)) if fixed else nan,
                "token_order_si_sdri": float(np.mean(ordered)) if ordered else nan} if pit_queries else {})}


ABSENCE_OK_DB = -10.0  # absence output (dB re input) a chosen checkpoint should reach (issue floor)


def selection_key(metrics: dict) -> tuple:
    """How ``best.safetensors`` is chosen, among checkpoints whose absence output is at most
    :data:`ABSENCE_OK_DB` first (key compared as a tuple, larger is better): with the position-swap
    test in the metrics (``TrainConfig.val_swap_pairs``), by its right-in-both share and then its
    mean contrast (a model that answers by voice scores well on SI-SDRi and 0 % here); without it,
    by validation SI-SDRi on single-talker queries. Not by the loss: a gain on the mixture lowers
    eq. 8 (about 2.9 dB SDRi) without selecting anyone (0 dB SI-SDRi)."""
    def num(k):
        v = metrics.get(k, float("nan"))
        return -math.inf if math.isnan(v) else float(v)
    ab = metrics.get("absence_level_db", float("nan"))
    ok = 1.0 if (math.isnan(ab) or ab <= ABSENCE_OK_DB) else 0.0
    if "swap_right_in_both" in metrics:
        return ok, num("swap_right_in_both"), num("swap_contrast_db")
    return ok, num("si_sdri_single")
