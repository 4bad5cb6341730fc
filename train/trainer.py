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
from pathlib import Path

import numpy as np
import torch

from realtime_tse.models.checkpoint import load_checkpoint, load_training_state, save_checkpoint
from realtime_tse.models.config import ModelConfig
from realtime_tse.models.net import build_model, count_parameters
from realtime_tse.models.provenance import Provenance
from realtime_tse.train.augment import DryAugment
from realtime_tse.train.data import batches
from realtime_tse.train.losses import batch_loss, distance_head_loss
from realtime_tse.train.optim_state import load_optim, optim_groups, optim_tensors
from realtime_tse.train.pit import fixed_query_pairs, nearer_first
from realtime_tse.train.progress import BudgetProgress
from realtime_tse.train.rooms import distance_range
from realtime_tse.train.swaptest import swap_test
from realtime_tse.train.train_config import TrainConfig
from realtime_tse.train.validation import selection_key, validate


class Trainer:
    """Runs training for one run folder.

    Args:
        cfg: TrainConfig. room: realtime_tse.train.rooms.RoomSpec (for provenance and the distance range), or
            :class:`realtime_tse.train.measured.MeasuredRoom` for measured RIRs.
        train_sampler, val_sampler: realtime_tse.train.mixtures.MixtureSampler over the train / val splits.
        out_dir: run folder. provenance: extra JSON-able facts (speech corpus, bank, room).
        resume: continue from ``out_dir/last.safetensors`` if it exists.
        init: fine-tune: start from this checkpoint's weights (and its model config, so
            ``cfg.model_preset`` / ``cfg.model`` are not used), with a fresh optimiser at step 0,
            as the paper's D4 model starts from its D3 model. A resumable ``last.safetensors`` in
            ``out_dir`` wins over it with ``resume``.
        init_overrides: ModelConfig fields to change in the init checkpoint's config (``r_spk``:
            metadata the scan reads, not a weight).
    Raises:
        ValueError: a resumed run whose model config differs; realtime_tse.models.checkpoint.CheckpointError
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
            load_optim(self.opt, self.net, load_training_state(last), meta["provenance"].get("optimizer"))
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
        """The checkpoint's provenance in the one schema (:class:`realtime_tse.models.provenance.Provenance`)."""
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
                        {**prov, "optimizer": optim_groups(self.opt, self.net)}, optim_tensors(self.opt, self.net))
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
        aux = cfg.distance_loss > 0 and getattr(self.net, "dist_head", None) is not None
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            if aux:   # the training-only distance head (ModelConfig.distance_bins)
                est, logits = self.model(mix, d_q.to(self.device), with_distance=True)
            else:
                est = self.model(mix, d_q.to(self.device))
        loss = batch_loss(est.float(), dict(batch, mix=mix, target=tgt), cfg.loss_at(st["step"]),
                          pit_pairs=w > 0, pit_weight=w, pit_only=only)
        if aux:
            mc = self.net.cfg
            loss = loss + cfg.distance_loss * distance_head_loss(
                logits, batch["sources"].to(self.device), batch["distances"].to(self.device),
                mc.n_fft, mc.hop, mc.distance_bin_m).mean()
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
        # example i of the run = train_sampler.sample_at(i), built in worker processes (realtime_tse.train.data)
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
    return distance_range(room)


def _room_dict(room) -> dict:
    try:
        return room.to_dict()
    except AttributeError:
        return {"name": str(room)}
