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
provenance: resumable) and ``best.safetensors`` (lowest validation loss; weights only).

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import load_checkpoint, load_training_state, read_metadata, save_checkpoint
from models.config import ModelConfig
from models.metrics import loss_active, loss_inactive, relative_level, sdr, si_sdr
from models.net import build_model, count_parameters


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
    val_mixtures: int = 64
    seed: int = 0
    threads: int = 0                               # torch CPU threads (0 = torch's default)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def presence_at(self, step: int) -> float:
        switch = self.presence_switch_step if self.presence_switch_step is not None else self.total_steps // 2
        return self.presence_first if step < switch else self.presence_second

    def gap_at(self, step: int) -> float:
        gap = 0.0
        for s, g in self.curriculum:
            if step >= s:
                gap = float(g)
        return gap

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown [train] keys {sorted(unknown)}; allowed: {sorted(names)}")
        return cls(**d)


def batch_loss(est: torch.Tensor, batch: dict) -> torch.Tensor:
    """Mean loss of a batch mixing presence and absence queries.

    est, batch["target"], batch["mix"]: [B, N]; batch["kind"]: list of "single"/"both"/"absence".
    Presence examples use eq. 8 (negated), absence examples eq. 9.
    """
    absent = torch.tensor([k == "absence" for k in batch["kind"]], device=est.device)
    la = loss_active(est, batch["target"])
    li = loss_inactive(est, batch["mix"])
    return torch.where(absent, li, la).mean()


def validate(net, val_batches: list[dict], device) -> dict:
    """Validation loss and quick quality figures on fixed mixtures.

    Returns dict: val_loss, sdri_single (dB, mean SDR improvement on single-talker queries),
    si_sdri_single (dB), absence_level_db (output level relative to the input on absence queries).
    """
    net.eval()
    losses, sdri, sisdri, absl = [], [], [], []
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
                elif kind == "absence":
                    absl.append(float(relative_level(est[k], mix[k])))
    net.train()
    nan = float("nan")
    return {"val_loss": float(np.mean(losses)), "sdri_single": float(np.mean(sdri)) if sdri else nan,
            "si_sdri_single": float(np.mean(sisdri)) if sisdri else nan,
            "absence_level_db": float(np.mean(absl)) if absl else nan}


def _optim_tensors(opt: torch.optim.Optimizer, net) -> dict:
    out = {}
    names = {id(p): n for n, p in net.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if not st:
                continue
            n = names[id(p)]
            out[f"optim/{n}/exp_avg"] = st["exp_avg"]
            out[f"optim/{n}/exp_avg_sq"] = st["exp_avg_sq"]
            out[f"optim/{n}/step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1)
    return out


def _load_optim(opt: torch.optim.Optimizer, net, tensors: dict) -> None:
    for n, p in net.named_parameters():
        key = f"optim/{n}/exp_avg"
        if key in tensors:
            opt.state[p] = {"exp_avg": tensors[key].to(p.device).clone(),
                            "exp_avg_sq": tensors[f"optim/{n}/exp_avg_sq"].to(p.device).clone(),
                            "step": tensors[f"optim/{n}/step"].reshape(()).clone()}


class Trainer:
    """Runs training for one run folder.

    Args:
        cfg: TrainConfig. room: train.rooms.RoomSpec (for provenance and the distance range).
        train_sampler, val_sampler: train.mixtures.MixtureSampler over the train / val splits.
        out_dir: run folder. provenance: extra JSON-able facts (speech corpus, bank, room).
        resume: continue from ``out_dir/last.safetensors`` if it exists.
    """

    def __init__(self, cfg: TrainConfig, room, train_sampler, val_sampler, out_dir, provenance=None,
                 resume: bool = False, device: str | None = None):
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
        d_max = math.ceil(2 * float(getattr(room, "d_max", None) or _room_range(room))) / 2
        mcfg = ModelConfig.preset(cfg.model_preset, **{"r_spk": float(room.r_spk), "d_max": d_max,
                                                         **cfg.model})
        torch.manual_seed(cfg.seed)
        self.net = build_model(mcfg).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.state = {"step": 0, "epoch": 0, "best_val": math.inf, "bad_epochs": 0, "lr": cfg.lr,
                      "train_seconds": 0.0}
        self.provenance = dict(provenance or {})
        last = self.out / "last.safetensors"
        if resume and last.exists():
            net, meta = load_checkpoint(last, device=self.device)
            if meta["config"] != mcfg:
                raise ValueError(f"{last}: its model config differs from this run's; start a new run folder")
            self.net.load_state_dict(net.state_dict())
            _load_optim(self.opt, self.net, load_training_state(last))
            self.state.update(meta["provenance"].get("trainer", {}))
            old = meta["provenance"].get("train_config", {})
            if (old.get("clip_s"), old.get("val_mixtures")) != (cfg.clip_s, cfg.val_mixtures):
                self.state["best_val"] = math.inf  # a different validation set: losses not comparable
            for g in self.opt.param_groups:
                g["lr"] = self.state["lr"]
        self.model = self.net
        if self.world > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.train_sampler.seed = cfg.seed + 1000 * self.rank + self.state["step"]
        self.train_sampler.rng = np.random.default_rng([self.train_sampler.seed])
        self._val = None

    # ------------------------------------------------------------------------------------------
    def _val_batches(self) -> list[dict]:
        if self._val is None:
            n, b = self.cfg.val_mixtures, self.cfg.batch
            self._val = [self.val_sampler.sample_batch(min(b, n - s), start=s) for s in range(0, n, b)]
        return self._val

    def _prov(self) -> dict:
        return {**self.provenance, "trainer": dict(self.state), "train_config": dataclasses.asdict(self.cfg),
                "room": _room_dict(self.room), "parameters": count_parameters(self.net)}

    def save(self, metrics: dict | None = None, best: bool = False) -> None:
        if self.rank != 0:
            return
        prov = self._prov()
        if metrics:
            prov["val_metrics"] = metrics
        save_checkpoint(self.out / "last.safetensors", self.net, prov, _optim_tensors(self.opt, self.net))
        if best:
            save_checkpoint(self.out / "best.safetensors", self.net, prov)

    def _log(self, row: dict) -> None:
        if self.rank != 0:
            return
        p = self.out / "log.csv"
        new = not p.exists()
        with open(p, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)

    def train_step(self, batch: dict) -> tuple[float, float]:
        """One optimiser step; returns (loss, gradient norm before clipping)."""
        cfg, st = self.cfg, self.state
        if cfg.warmup_steps and st["step"] < cfg.warmup_steps:
            for g in self.opt.param_groups:
                g["lr"] = st["lr"] * (st["step"] + 1) / cfg.warmup_steps
        mix, tgt = batch["mix"].to(self.device), batch["target"].to(self.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            est = self.model(mix, batch["d_q"].to(self.device))
        loss = batch_loss(est.float(), dict(batch, mix=mix, target=tgt))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = float(torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.clip_norm))
        self.opt.step()
        if cfg.warmup_steps and st["step"] < cfg.warmup_steps:
            for g in self.opt.param_groups:
                g["lr"] = st["lr"]
        st["step"] += 1
        return float(loss.detach()), gn

    def run(self, minutes: float | None = None, steps: int | None = None, progress: bool = True) -> dict:
        """Train until the time budget (wall-clock minutes), the step budget or the configured epochs
        end, validating and saving at each epoch end (and at the end). Returns the last metrics."""
        from tqdm import tqdm

        cfg, st = self.cfg, self.state
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            (self.out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
        t0 = time.time()
        start_step = st["step"]
        stop_step = cfg.total_steps if steps is None else min(cfg.total_steps, start_step + steps)
        deadline = None if minutes is None else t0 + 60 * minutes
        bar = tqdm(total=stop_step - start_step, disable=not progress or self.rank != 0, unit="step")
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
        while st["step"] < stop_step and (deadline is None or time.time() < deadline):
            self.train_sampler.p_presence = cfg.presence_at(st["step"])
            self.train_sampler.min_gap_m = cfg.gap_at(st["step"])
            t_step = time.time()
            loss, gn = self.train_step(self.train_sampler.sample_batch(cfg.batch))
            st["train_seconds"] += time.time() - t_step
            losses.append(loss)
            gnorms.append(gn)
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.2f}")
            end_of_epoch = st["step"] % cfg.steps_per_epoch == 0
            out_of_budget = st["step"] >= stop_step or (deadline is not None and time.time() >= deadline)
            if end_of_epoch or out_of_budget:
                metrics = self._end_epoch(losses, gnorms, end_of_epoch)
                losses.clear()
                gnorms.clear()
        return metrics

    def _end_epoch(self, losses, gnorms, full_epoch: bool) -> dict:
        cfg, st = self.cfg, self.state
        metrics = validate(self.net, self._val_batches(), self.device) if self.rank == 0 else {}
        best = False
        if self.rank == 0:
            if full_epoch:
                st["epoch"] += 1
            if metrics["val_loss"] < st["best_val"]:
                st["best_val"], st["bad_epochs"], best = metrics["val_loss"], 0, True
            elif full_epoch:
                st["bad_epochs"] += 1
                if st["bad_epochs"] >= cfg.lr_patience:
                    st["lr"] *= cfg.lr_factor
                    st["bad_epochs"] = 0
                    for g in self.opt.param_groups:
                        g["lr"] = st["lr"]
            row = {"step": st["step"], "epoch": st["epoch"], "train_seconds": round(st["train_seconds"], 1),
                   "train_loss": round(float(np.mean(losses)), 4) if losses else "",
                   "grad_norm": round(float(np.mean(gnorms)), 3) if gnorms else "",
                   "lr": st["lr"], "p_presence": cfg.presence_at(st["step"]), "min_gap_m": cfg.gap_at(st["step"]),
                   **{k: round(v, 3) for k, v in metrics.items()}}
            self._log(row)
            self.save(metrics, best=best)
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
