"""Training loop: the paper's losses and schedule, time or step budget, resume, DDP, CSV log.

Paper Sec. II-C and III-B (SPEC.md "Losses and training"): presence queries minimise the negative
SDR of eq. 8 (tau = 10^-3), absence queries the iSDR of eq. 9 (tau = 10^-2 relative to the
mixture); Adam, learning rate 1e-3, gradient clipping at norm 5, learning rate x0.8 after 14 epochs
without a lower validation loss, batch 14, 500 epochs; presence:absence 0.9:0.1 for the first half
of training and 0.7:0.3 after. These are the defaults of :class:`TrainConfig`.

Additions for CPU-sized runs (off by default except where the config file sets them):
``warmup_steps`` (linear learning-rate warm-up) and ``curriculum`` (a minimum distance gap between
the two talkers that shrinks with training, ``[[step, gap_m], ...]``).

One run folder holds ``config.json`` (the resolved training config), ``log.csv`` (one row per
epoch), ``last.safetensors`` (weights + Adam state under ``optim/`` + trainer state in the
provenance: resumable) and ``best.safetensors`` (highest validation SI-SDRi among checkpoints with quiet absence output, :func:`selection_key`; weights only).

Distributed: started by ``torchrun --nproc_per_node=N``, each process trains on its own mixtures
(seed + rank) with DistributedDataParallel; rank 0 validates and writes. Mixed precision (bfloat16
autocast) on CUDA. The same command runs on one CPU.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import load_checkpoint, load_training_state, read_metadata, save_checkpoint
from models.config import ModelConfig
from models.metrics import loss_active, loss_inactive, relative_level, sdr, si_sdr
from models.net import build_model, count_parameters
from models.provenance import Provenance
from train.data import batches
from train.losses import batch_loss


def _reached(points: list, step: int, default):
    """The value of the last ``[step, value]`` entry of ``points`` whose step is <= ``step``
    (entries in ascending steps), or ``default`` before the first: the step schedules of
    :class:`TrainConfig` (loss, learning rate, talker-gap curriculum)."""
    value = default
    for s, v in points:
        if step >= s:
            value = v
    return value


@dataclass
class TrainConfig:
    """Training settings (units: seconds, metres, steps). Defaults = the paper (Sec. III-B)."""

    model_preset: str = "lite-causal"
    model: dict = field(default_factory=dict)      # ModelConfig overrides
    batch: int = 14
    clip_s: float = 4.0                            # seconds of audio per example
    lr: float = 1e-3
    clip_norm: float = 5.0
    lr_patience: int = 14                          # epochs without a lower validation loss
    lr_factor: float = 0.8
    epochs: int = 500
    steps_per_epoch: int = 200
    presence_first: float = 0.9                    # P(presence) in the first half
    presence_second: float = 0.7                   # ... and after
    presence_switch_step: int | None = None        # default: half of epochs * steps_per_epoch
    warmup_steps: int = 0
    curriculum: list = field(default_factory=list)  # [[step, min_gap_m], ...], ascending steps
    level_curriculum: list = field(default_factory=list)  # [[step, near_boost_db], ...] (see boost_at)
    single_talker: float = 0.0                     # share of training mixtures with one talker alone
    val_mixtures: int = 64
    seed: int = 0
    threads: int = 0                               # torch CPU threads (0 = torch's default)
    presence_loss: str = "sdr"                     # train.losses.PRESENCE_LOSSES; "sdr" = eq. 8
    loss_schedule: list = field(default_factory=list)  # [[step, presence loss], ...] overrides
    lr_schedule: list = field(default_factory=list)    # [[step, lr], ...]: fixed rates from these steps
    workers: int = 1                               # DataLoader worker processes building mixtures
    paired_queries: bool = False                   # each mixture twice per batch, one query per talker
    pit_steps: int = 0                             # steps scored with PIT over each pair (needs paired_queries)
    pit_blend_steps: int = 0                       # then PIT's weight falls linearly to 0 over these steps
    pit_queries: list = field(default_factory=list)  # [q_a, q_b] m: PIT pairs queried at two fixed tokens
    swap_voices: bool = False                      # swap-consistent groups of 4 (train.data)
    val_swap_pairs: int = 0                        # voice pairs of the position-swap test per validation
    augment_pitch_st: float = 0.0                  # dry-speech pitch/formant shift range, semitones
    augment_tilt: float = 0.0                      # dry-speech spectral tilt range (train.augment)
    token_order_from: int = -1                     # from this step the token pairs are scored in distance
                                                   # order (q_a -> the nearer talker), not PIT; -1 = never
    token_order_pit: float = 0.0                   # ... with this share of PIT kept in their score

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def presence_at(self, step: int) -> float:
        switch = self.presence_switch_step if self.presence_switch_step is not None else self.total_steps // 2
        return self.presence_first if step < switch else self.presence_second

    def loss_at(self, step: int) -> str:
        """Presence loss in force at ``step``: ``presence_loss`` until the first ``loss_schedule``
        entry whose step is reached (e.g. ``[[0, "si_sdr"], [20000, "sdr"]]``)."""
        return str(_reached(self.loss_schedule, step, self.presence_loss))

    def lr_at(self, step: int) -> float | None:
        """Learning rate fixed by ``lr_schedule`` at ``step``: the rate of the last entry whose step
        is reached, or None before the first entry (the plateau schedule and warm-up rule until then;
        from the first entry on, the entries override the plateau schedule). E.g.
        ``[[32000, 3e-4], [50000, 1e-4]]`` decays a resumed run in two steps."""
        lr = _reached(self.lr_schedule, step, None)
        return None if lr is None else float(lr)

    def boost_at(self, step: int) -> float:
        """Level boost (dB) of the nearer talker at ``step``: linear between the ``level_curriculum``
        points ``[[step, dB], ...]``, 0 before the first and after the last. A near talker louder
        than the far one is the easier separation (as in a real room, where the direct sound of a
        near talker is louder); fading the boost to 0 leaves the reverberation cue alone (SPEC's
        equal-level mixtures)."""
        pts = self.level_curriculum
        if not pts or step >= pts[-1][0]:
            return 0.0 if not pts else float(pts[-1][1])
        if step < pts[0][0]:
            return 0.0
        for (s0, b0), (s1, b1) in zip(pts, pts[1:]):
            if s0 <= step < s1:
                return float(b0 + (b1 - b0) * (step - s0) / max(s1 - s0, 1))
        return 0.0

    def pit_weight_at(self, step: int) -> float:
        """Weight of the PIT score at ``step`` (train.losses.batch_loss): 1 before ``pit_steps``,
        then falling linearly to 0 over ``pit_blend_steps`` (0 = a hard switch); 0 without
        ``paired_queries``."""
        if not self.paired_queries or step >= self.pit_steps + self.pit_blend_steps:
            return 0.0
        if step < self.pit_steps:
            return 1.0
        return 1.0 - (step - self.pit_steps) / self.pit_blend_steps

    def sampler_settings(self, step: int) -> dict:
        """Mixture-sampler attributes for the examples of ``step`` (train.data)."""
        return {"p_presence": self.presence_at(step), "min_gap_m": self.gap_at(step),
                "near_boost_db": self.boost_at(step), "p_single": self.single_talker}

    def gap_at(self, step: int) -> float:
        return float(_reached(self.curriculum, step, 0.0))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown [train] keys {sorted(unknown)}; allowed: {sorted(names)}")
        if d.get("pit_steps") and not d.get("paired_queries"):
            raise ValueError("pit_steps needs paired_queries = true (PIT scores the two queries of a pair)")
        q = d.get("pit_queries") or []
        if not 0.0 <= float(d.get("token_order_pit", 0.0)) <= 1.0:
            raise ValueError(f"token_order_pit must be in [0, 1], got {d.get('token_order_pit')!r}")
        if d.get("token_order_from", -1) >= 0 and not q:
            raise ValueError("token_order_from needs pit_queries (the two tokens it orders)")
        if q and (len(q) != 2 or float(q[0]) == float(q[1]) or min(float(v) for v in q) < 0):
            raise ValueError(f"pit_queries must be two different distances >= 0 m, got {q!r}")
        if d.get("swap_voices") and d.get("paired_queries"):
            raise ValueError("swap_voices and paired_queries exclude each other (a swap group already "
                             "queries each mixture at both talkers)")
        if d.get("swap_voices") and int(d.get("batch", 14)) % 4:
            raise ValueError(f"swap_voices needs a batch divisible by 4, got {d.get('batch', 14)}")
        if not 0.0 <= float(d.get("single_talker", 0.0)) < 1.0:
            raise ValueError(f"single_talker must be in [0, 1), got {d.get('single_talker')!r}")
        sched = d.get("lr_schedule") or []
        if any(len(e) != 2 or float(e[1]) <= 0 for e in sched) or \
                [e[0] for e in sched] != sorted(e[0] for e in sched):
            raise ValueError(f"lr_schedule must be [[step, lr > 0], ...] in ascending steps, got {sched!r}")
        return cls(**d)


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


def _optim_tensors(opt: torch.optim.Optimizer, net) -> dict:
    """The optimiser's own ``state_dict()["state"]`` as safetensors tensors named by parameter:
    ``optim/<parameter name>/<key>`` (Adam: exp_avg, exp_avg_sq, step; a 0-d ``step`` is stored with
    shape [1]). Its ``param_groups`` go into the provenance (:func:`_optim_groups`)."""
    sd = opt.state_dict()
    names = _optim_param_names(opt, net)
    out = {}
    for idx, st in sd["state"].items():
        for key, v in st.items():
            t = torch.as_tensor(v, dtype=torch.float32) if not torch.is_tensor(v) else v
            out[f"optim/{names[idx]}/{key}"] = t.reshape(1) if t.dim() == 0 else t
    return out


def _optim_groups(opt: torch.optim.Optimizer, net) -> list[dict]:
    """``state_dict()["param_groups"]`` with parameter names instead of indices (JSON-able)."""
    names = _optim_param_names(opt, net)
    return [{**{k: v for k, v in g.items() if k != "params"}, "params": [names[i] for i in g["params"]]}
            for g in opt.state_dict()["param_groups"]]


def _optim_param_names(opt: torch.optim.Optimizer, net) -> dict[int, str]:
    """state_dict index -> parameter name (indices run over the groups' parameters in order)."""
    by_id = {id(p): n for n, p in net.named_parameters()}
    return dict(enumerate(by_id[id(p)] for g in opt.param_groups for p in g["params"]))


def _load_optim(opt: torch.optim.Optimizer, net, tensors: dict, groups: list[dict] | None = None) -> None:
    """Restore the optimiser with ``opt.load_state_dict`` from :func:`_optim_tensors` tensors (also the
    files written before param_groups were stored: ``optim/<param>/exp_avg|exp_avg_sq|step``) and,
    when given, the saved param_groups' settings (learning rate, betas, ...).

    Raises:
        ValueError: a tensor names a parameter the model does not have.
    """
    sd = opt.state_dict()
    index = {n: i for i, n in _optim_param_names(opt, net).items()}
    state: dict = {}
    for k, v in tensors.items():
        name, key = k[len("optim/"):].rsplit("/", 1)
        if name not in index:
            raise ValueError(f"optimiser state for an unknown parameter {name!r}")
        state.setdefault(index[name], {})[key] = v.reshape(()) if key == "step" else v
    for g, saved in zip(sd["param_groups"], groups or []):
        g.update({k: tuple(v) if isinstance(g.get(k), tuple) else v  # JSON made (b1, b2) a list
                  for k, v in saved.items() if k != "params"})
    opt.load_state_dict({"state": state, "param_groups": sd["param_groups"]})


class Trainer:
    """Runs training for one run folder.

    Args:
        cfg: TrainConfig. room: train.rooms.RoomSpec (for provenance and the distance range), or
            :class:`train.measured.MeasuredRoom` for measured RIRs.
        train_sampler, val_sampler: train.mixtures.MixtureSampler over the train / val splits.
        out_dir: run folder. provenance: extra JSON-able facts (speech corpus, bank, room).
        resume: continue from ``out_dir/last.safetensors`` if it exists.
        init: fine-tune: start from this checkpoint's weights (and its model config, so
            ``cfg.model_preset`` / ``cfg.model`` are not used), with a fresh optimiser at step 0,
            as the paper's D4 model starts from its D3 model. A resumable ``last.safetensors`` in
            ``out_dir`` wins over it with ``resume``.
        init_overrides: ModelConfig fields to change in the init checkpoint's config (``r_spk``:
            metadata the scan reads, not a weight).
    Raises:
        ValueError: a resumed run whose model config differs; models.checkpoint.CheckpointError
            (a ValueError) for an unreadable ``init``.
    """

    def __init__(self, cfg: TrainConfig, room, train_sampler, val_sampler, out_dir, provenance=None,
                 resume: bool = False, device: str | None = None, init=None,
                 init_overrides: dict | None = None):
        self.cfg, self.room = cfg, room
        self.train_sampler, self.val_sampler = train_sampler, val_sampler
        self.out = Path(out_dir)
        self.rank = int(os.environ.get("RANK", "0"))
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if device is None:
            if torch.cuda.is_available():
                device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            else:
                device = "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        # query range of the model: the room's largest talker distance rounded up to 0.5 m
        # (D1: 4.7 m -> 5.0 m, the paper's 0 to 5 m scan of Table III)
        init_net = None
        if init is not None:   # fine-tuning: the checkpoint's model, weights only
            init_net, init_meta = load_checkpoint(init, device="cpu")
            mcfg = dataclasses.replace(init_meta["config"], **(init_overrides or {})).validate()
        else:
            d_max = math.ceil(2 * float(getattr(room, "d_max", None) or _room_range(room))) / 2
            mcfg = ModelConfig.preset(cfg.model_preset, **{"r_spk": float(room.r_spk), "d_max": d_max,
                                                             **cfg.model})
        torch.manual_seed(cfg.seed)
        self.net = build_model(mcfg).to(self.device)
        if init_net is not None:
            self.net.load_state_dict(init_net.state_dict())
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.state = {"step": 0, "epoch": 0, "best_val": math.inf, "lr": cfg.lr,
                      "train_seconds": 0.0}
        self.provenance = dict(provenance or {})
        if init_net is not None:
            p0 = Provenance.from_dict(init_meta["provenance"])
            self.provenance["init"] = {"checkpoint": str(init), "step": p0.trainer.get("step"),
                                       "room": (p0.room or {}).get("name"),
                                       "changed": dict(init_overrides or {})}
        self.resumed_step: int | None = None   # the step a resumed run continues from
        last = self.out / "last.safetensors"
        if resume and last.exists():
            net, meta = load_checkpoint(last, device=self.device)
            if meta["config"] != mcfg:
                raise ValueError(f"{last}: its model config differs from this run's; start a new run folder")
            self.net.load_state_dict(net.state_dict())
            _load_optim(self.opt, self.net, load_training_state(last), meta["provenance"].get("optimizer"))
            self.state.update(meta["provenance"].get("trainer", {}))
            old = meta["provenance"].get("train_config", {})
            if (old.get("clip_s"), old.get("val_mixtures")) != (cfg.clip_s, cfg.val_mixtures):
                self.state["best_val"] = math.inf  # a different validation set: losses not comparable
                self.state.pop("plateau", None)
            for g in self.opt.param_groups:
                g["lr"] = self.state["lr"]
            self.resumed_step = int(self.state["step"])
        self._make_schedules()
        self.model = self.net
        if self.world > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        # one deterministic sequence of training mixtures per rank (sample_at(i), i = step * batch + b)
        self.train_sampler.seed = cfg.seed + 1000 * self.rank
        self.train_sampler.rng = np.random.default_rng([self.train_sampler.seed])
        if cfg.augment_pitch_st or cfg.augment_tilt:   # training only: validation keeps real voices
            from .augment import DryAugment
            self.train_sampler.augment = DryAugment(cfg.augment_pitch_st, cfg.augment_tilt).validate()
        self._val = None

    # ------------------------------------------------------------------------------------------
    def _make_schedules(self) -> None:
        """The learning-rate schedule, as torch schedulers on ``self.opt``:

        * ``self.plateau``: ReduceLROnPlateau on the validation loss, x ``lr_factor`` once
          ``lr_patience`` full epochs in a row brought no lower loss (the paper: x0.8 after 14), stepped
          by rank 0 at each full epoch's end; its state is kept in ``state["plateau"]`` (so in the
          checkpoint's provenance). Runs saved before that kept ``best_val`` / ``bad_epochs``: both
          seed it.
        * ``self.warmup``: LinearLR from lr / warmup_steps to lr over the first ``warmup_steps``
          steps (step s trains at lr * (s + 1) / warmup_steps), None once warm-up is over.
        """
        cfg, st = self.cfg, self.state
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.opt, mode="min", factor=cfg.lr_factor, patience=max(cfg.lr_patience - 1, 0), threshold=0.0)
        if "plateau" in st:
            self.plateau.load_state_dict(st["plateau"])
        elif "bad_epochs" in st:
            self.plateau.best = float(st.get("best_val", math.inf))
            self.plateau.num_bad_epochs = int(st["bad_epochs"])
        self.warmup = None
        if cfg.warmup_steps and st["step"] < cfg.warmup_steps:
            w = cfg.warmup_steps
            self.warmup = torch.optim.lr_scheduler.LinearLR(self.opt, start_factor=1.0 / w, end_factor=1.0,
                                                            total_iters=max(w - 1, 1))
            with warnings.catch_warnings():  # replaying the schedule of a resumed run, before any opt.step()
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
                for _ in range(st["step"]):
                    self.warmup.step()

    def _from_rank0(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every rank (a broadcast; the values themselves with one process)."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.broadcast(t, src=0)
        return t.tolist()

    def _stop_now(self, stop_step: int, deadline: float | None) -> bool:
        """Whether training stops now (step budget reached or wall-clock ``deadline`` passed), decided
        by rank 0 and shared with every rank so that all stop after the same step."""
        stop = self.state["step"] >= stop_step or (deadline is not None and time.time() >= deadline)
        return bool(self._from_rank0([float(stop)])[0])

    def _val_batches(self) -> list[dict]:
        if self._val is None:
            n, b = self.cfg.val_mixtures, self.cfg.batch
            self._val = [self.val_sampler.sample_batch(min(b, n - s), start=s) for s in range(0, n, b)]
        return self._val

    def _prov(self) -> dict:
        """The checkpoint's provenance in the one schema (:class:`models.provenance.Provenance`)."""
        p = Provenance.from_dict(self.provenance)
        p.trainer, p.train_config = dict(self.state), dataclasses.asdict(self.cfg)
        p.room, p.parameters = _room_dict(self.room), count_parameters(self.net)
        return p.to_dict()

    def save(self, metrics: dict | None = None, best: bool = False) -> None:
        if self.rank != 0:
            return
        prov = self._prov()
        if metrics:
            prov["val_metrics"] = metrics
        save_checkpoint(self.out / "last.safetensors", self.net,
                        {**prov, "optimizer": _optim_groups(self.opt, self.net)}, _optim_tensors(self.opt, self.net))
        if best:
            save_checkpoint(self.out / "best.safetensors", self.net, prov)

    def _log(self, row: dict) -> None:
        if self.rank != 0:
            return
        p = self.out / "log.csv"
        rows, fields = [], list(row)
        if p.exists():
            with open(p, newline="") as f:
                r = csv.DictReader(f)
                old = list(r.fieldnames or [])
                if old != fields:  # a resumed run logging new columns: rewrite under the union
                    rows = list(r)
                    fields = old + [k for k in fields if k not in old]
                else:
                    fields = None
        if fields is None:
            with open(p, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=list(row)).writerow(row)
            return
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, restval="")
            w.writeheader()
            w.writerows(rows + [row])

    def _apply_lr_schedule(self) -> None:
        """Set the optimiser to ``TrainConfig.lr_at`` of the current step, where one is fixed (after
        warm-up); the fixed rates override the plateau schedule and are kept in ``state["lr"]``."""
        fixed = self.cfg.lr_at(self.state["step"])
        if fixed is not None and self.warmup is None:
            self.state["lr"] = fixed
            for g in self.opt.param_groups:
                g["lr"] = fixed

    def train_step(self, batch: dict) -> tuple[float, float]:
        """One optimiser step; returns (loss, gradient norm before clipping)."""
        cfg, st = self.cfg, self.state
        self._apply_lr_schedule()
        mix, tgt = batch["mix"].to(self.device), batch["target"].to(self.device)
        w, d_q, only = cfg.pit_weight_at(st["step"]), batch["d_q"], None
        if w > 0 and cfg.pit_queries:   # uPIT through two fixed query tokens, on a share w of the pairs
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + st["step"])
            d_q, only = fixed_query_pairs(d_q, batch["kind"], cfg.pit_queries, w, gen)
            w = 1.0
            if 0 <= cfg.token_order_from <= st["step"]:   # token q_a answers with the nearer talker
                tgt = nearer_first(tgt, batch["d_q"], only)
                w = cfg.token_order_pit                    # PIT's share: separating still pays
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            est = self.model(mix, d_q.to(self.device))
        loss = batch_loss(est.float(), dict(batch, mix=mix, target=tgt), cfg.loss_at(st["step"]),
                          pit_pairs=w > 0, pit_weight=w, pit_only=only)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = float(torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.clip_norm))
        self.opt.step()
        st["step"] += 1
        self._advance_warmup()
        return float(loss.detach()), gn

    def _advance_warmup(self) -> None:
        """After an optimiser step: the warm-up rate of the next step, or, once warm-up is over, the
        schedule's rate (``state["lr"]``). Called after ``self.opt.step()`` (torch's order)."""
        if self.warmup is None:
            return
        if self.state["step"] < self.cfg.warmup_steps:
            self.warmup.step()
        else:  # warm-up over: train at the schedule's rate from here on
            self.warmup = None
            for g in self.opt.param_groups:
                g["lr"] = self.state["lr"]

    def run(self, minutes: float | None = None, steps: int | None = None, progress: bool = True,
            started_at: float | None = None) -> dict:
        """Train until the time budget (wall-clock minutes), the step budget or the configured epochs
        end, validating and saving at each epoch end (and at the end). Returns the last metrics
        (empty when the budget was spent before the first step).

        ``started_at`` (``time.time()`` seconds, default now) is when the budget began: a command
        passes its own start so that data preparation (RIR simulation) counts against ``minutes``.
        The progress bar (rank 0) shows the budget given: seconds for ``minutes``, else steps.
        """
        from train.progress import BudgetProgress

        cfg, st = self.cfg, self.state
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            (self.out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
        t0 = time.time() if started_at is None else float(started_at)
        start_step = st["step"]
        stop_step = cfg.total_steps if steps is None else min(cfg.total_steps, start_step + steps)
        deadline = None if minutes is None else t0 + 60 * minutes
        bar = BudgetProgress(start_step, stop_step, deadline, started_at=t0, enabled=progress and self.rank == 0)
        # Ctrl-C, SIGINT or SIGTERM (a cluster's time limit, `kill`): keep what was trained since the
        # last epoch end. Background jobs of a non-interactive shell ignore SIGINT; SIGTERM works.
        old = None
        if threading.current_thread() is threading.main_thread():
            old = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            metrics = self._loop(stop_step, deadline, bar)
        except KeyboardInterrupt:
            metrics = self._end_epoch(self._losses, self._gnorms, False)
        finally:
            if old is not None:
                signal.signal(signal.SIGTERM, old)
        bar.close()
        return metrics

    def _loop(self, stop_step: int, deadline, bar) -> dict:
        cfg, st = self.cfg, self.state
        self._losses, self._gnorms = losses, gnorms = [], []
        metrics = {}
        self.model.train()
        stop = self._stop_now(stop_step, deadline)
        # example i of the run = train_sampler.sample_at(i), built in worker processes (train.data)
        data = batches(self.train_sampler, cfg.batch, st["step"], cfg.sampler_settings,
                       cfg.workers, cfg.paired_queries, cfg.swap_voices) if not stop else None
        while not stop:
            batch = next(data)
            t_step = time.time()
            loss, gn = self.train_step(batch)
            st["train_seconds"] += time.time() - t_step
            losses.append(loss)
            gnorms.append(gn)
            bar.update(st["step"], float(np.mean(losses[-20:])))
            end_of_epoch = st["step"] % cfg.steps_per_epoch == 0
            stop = self._stop_now(stop_step, deadline)   # one decision for all ranks
            if end_of_epoch or stop:
                metrics = self._end_epoch(losses, gnorms, end_of_epoch)
                losses.clear()
                gnorms.clear()
        return metrics

    def _end_epoch(self, losses, gnorms, full_epoch: bool) -> dict:
        cfg, st = self.cfg, self.state
        metrics = validate(self.net, self._val_batches(), self.device, self.cfg.pit_queries) if self.rank == 0 else {}
        if self.rank == 0 and cfg.val_swap_pairs:
            from .swaptest import swap_test
            sw = swap_test(self.net, self.val_sampler, cfg.val_swap_pairs, device=self.device)
            metrics.update({"swap_right_in_both": sw["right_in_both"], "swap_leans_right": sw["leans_right"],
                            "swap_same_voice": sw["same_voice_wins"], "swap_contrast_db": sw["mean_contrast_db"]})
        best = False
        if self.rank == 0:
            if full_epoch:
                st["epoch"] += 1
            if metrics["val_loss"] < st["best_val"]:
                st["best_val"] = metrics["val_loss"]
            key = selection_key(metrics)
            if key > tuple(st.get("best_key", (-1.0, -math.inf))):
                st["best_key"], best = list(key), True
            if full_epoch:  # the learning-rate schedule counts full epochs only
                before = self.opt.param_groups[0]["lr"]
                self.plateau.step(metrics["val_loss"])
                st["lr"] *= self.opt.param_groups[0]["lr"] / before   # (during warm-up: its target)
                st["plateau"] = self.plateau.state_dict()
            row = {"step": st["step"], "epoch": st["epoch"], "train_seconds": round(st["train_seconds"], 1),
                   "train_loss": round(float(np.mean(losses)), 4) if losses else "",
                   "grad_norm": round(float(np.mean(gnorms)), 3) if gnorms else "",
                   "lr": st["lr"], "p_presence": cfg.presence_at(st["step"]), "min_gap_m": cfg.gap_at(st["step"]),
                   **{k: round(v, 3) for k, v in metrics.items()}}
            self._log(row)
            self.save(metrics, best=best)
        # every rank trains on at rank 0's learning rate (only rank 0 validates and steps the schedule)
        lr, st["lr"] = self._from_rank0([self.opt.param_groups[0]["lr"], st["lr"]])
        for g in self.opt.param_groups:
            g["lr"] = lr
        return metrics


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _room_range(room) -> float:
    from train.rooms import distance_range
    return distance_range(room)


def _room_dict(room) -> dict:
    try:
        return room.to_dict()
    except AttributeError:
        return {"name": str(room)}
