"""The training settings (:class:`TrainConfig`, defaults = the paper's Sec. III-B) and their step
schedules (loss, learning rate, presence share, PIT weight, sampler, talker-gap curriculum)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


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
    presence_loss: str = "sdr"                     # realtime_tse.train.losses.PRESENCE_LOSSES; "sdr" = eq. 8
    loss_schedule: list = field(default_factory=list)  # [[step, presence loss], ...] overrides
    lr_schedule: list = field(default_factory=list)    # [[step, lr], ...]: fixed rates from these steps
    workers: int = 1                               # DataLoader worker processes building mixtures
    paired_queries: bool = False                   # each mixture twice per batch, one query per talker
    pit_steps: int = 0                             # steps scored with PIT over each pair (needs paired_queries)
    pit_blend_steps: int = 0                       # then PIT's weight falls linearly to 0 over these steps
    pit_queries: list = field(default_factory=list)  # [q_a, q_b] m: PIT pairs queried at two fixed tokens
    swap_voices: bool = False                      # swap-consistent groups of 4 (realtime_tse.train.data)
    val_swap_pairs: int = 0                        # voice pairs of the position-swap test per validation
    augment_pitch_st: float = 0.0                  # dry-speech pitch/formant shift range, semitones
    augment_tilt: float = 0.0                      # dry-speech spectral tilt range (realtime_tse.train.augment)
    distance_loss: float = 0.0                     # weight of the distance head's loss (needs a model
                                                   # with ModelConfig.distance_bins; realtime_tse.train.losses)
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
        """Weight of the PIT score at ``step`` (realtime_tse.train.losses.batch_loss): 1 before ``pit_steps``,
        then falling linearly to 0 over ``pit_blend_steps`` (0 = a hard switch); 0 without
        ``paired_queries``."""
        if not self.paired_queries or step >= self.pit_steps + self.pit_blend_steps:
            return 0.0
        if step < self.pit_steps:
            return 1.0
        return 1.0 - (step - self.pit_steps) / self.pit_blend_steps

    def sampler_settings(self, step: int) -> dict:
        """Mixture-sampler attributes for the examples of ``step`` (realtime_tse.train.data)."""
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
        if float(d.get("distance_loss", 0.0)) < 0:
            raise ValueError(f"distance_loss must be >= 0, got {d.get('distance_loss')!r}")
        if not 0.0 <= float(d.get("single_talker", 0.0)) < 1.0:
            raise ValueError(f"single_talker must be in [0, 1), got {d.get('single_talker')!r}")
        sched = d.get("lr_schedule") or []
        if any(len(e) != 2 or float(e[1]) <= 0 for e in sched) or \
                [e[0] for e in sched] != sorted(e[0] for e in sched):
            raise ValueError(f"lr_schedule must be [[step, lr > 0], ...] in ascending steps, got {sched!r}")
        return cls(**d)
