"""The provenance schema of a checkpoint: what the trainer writes into its metadata and what the
app, the CLI and the scripts read back (``load_checkpoint(path)[1]["provenance"]`` is its dict).

Layout (JSON object; every key optional, unknown keys kept)::

    room          the training room, realtime_tse.train.rooms.RoomSpec.to_dict(): name, room_min / room_max
                  [3] metres, rt60_min / rt60_max seconds, mic ([3] metres or None: random), ...
    data          the training data (speech corpus, RIR bank, counts), as train/cli.py states it
    trainer       the trainer's state: step, epoch, best validation figures, ...
    train_config  the TrainConfig as a dict
    parameters    trainable parameter count
    val_metrics   validation figures of the saved step
    evaluation    the test figures the app shows (scripts/publish_model.py --eval): ``tse-eval
                  --json``'s report, ``{"scenario", "mixtures_per_repeat", "repeats", "clip_s",
                  "models": {name: {"mean": {"si_sdri_single": dB, "absence_level_db": dB, ...},
                  "swap": {"right_in_both": share 0..1, ...}}}}``, plus ``"model"``: the entry that
                  is this checkpoint (absent: the first entry). Read by :func:`measured_figures`.
    (others)      e.g. optimizer (last.safetensors), credits, source_run
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

_KEYS = ("data", "trainer", "train_config", "room", "parameters", "val_metrics")


@dataclass
class Provenance:
    """A checkpoint's provenance (see the module docstring for each field's content).

    Attributes:
        room: the training room as a dict (a bare name is read as ``{"name": name}``), or None.
        data, trainer, train_config: dicts (empty when not recorded).
        parameters: trainable parameter count, or None.
        val_metrics: validation figures, or None.
        extra: every other key, kept as it was.
    """

    room: dict | None = None
    data: dict = field(default_factory=dict)
    trainer: dict = field(default_factory=dict)
    train_config: dict = field(default_factory=dict)
    parameters: int | None = None
    val_metrics: dict | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Provenance":
        """Read a provenance dict (None or a non-dict: an empty Provenance; never raises)."""
        if not isinstance(d, dict):
            return cls()
        room = d.get("room")
        if room is not None and not isinstance(room, dict):
            room = {"name": str(room)}
        as_dict = lambda v: dict(v) if isinstance(v, dict) else {}  # noqa: E731
        return cls(room=room, data=as_dict(d.get("data")), trainer=as_dict(d.get("trainer")),
                   train_config=as_dict(d.get("train_config")), parameters=d.get("parameters"),
                   val_metrics=d.get("val_metrics") if isinstance(d.get("val_metrics"), dict) else None,
                   extra={k: v for k, v in d.items() if k not in _KEYS})

    def to_dict(self) -> dict:
        """The JSON-able dict stored in a checkpoint (None and empty fields left out)."""
        out = {"data": self.data, "trainer": self.trainer, "train_config": self.train_config,
               "room": self.room, "parameters": self.parameters, "val_metrics": self.val_metrics}
        out = {k: v for k, v in out.items() if v is not None and v != {}}
        out.update(self.extra)
        return out


@dataclass
class MeasuredFigures:
    """A checkpoint's measured test figures (``provenance["evaluation"]``; None: not measured).

    Attributes:
        si_sdri_db: SI-SDR improvement on single-talker queries (dB, mean over repeats).
        absence_db: output level re input on queries where no talker is (dB).
        right_in_both: share (0..1) of position-swap pairs where the asked talker wins in both
            positions (``realtime_tse.train.swaptest``).
        scenario: the test room (e.g. "d1"); mixtures: test mixtures in all; clip_s: their length.
    """

    si_sdri_db: float | None = None
    absence_db: float | None = None
    right_in_both: float | None = None
    scenario: str = ""
    mixtures: int = 0
    clip_s: float = 0.0


def _finite(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def measured_figures(prov: dict | None) -> MeasuredFigures | None:
    """The test figures stored under ``prov["evaluation"]`` (layout in the module docstring), or
    None when the checkpoint holds no evaluation. A figure the evaluation lacks is None. Never
    raises (a checkpoint's metadata is read as it is)."""
    ev = prov.get("evaluation") if isinstance(prov, dict) else None
    models = ev.get("models") if isinstance(ev, dict) else None
    if not isinstance(models, dict) or not models:
        return None
    entry = models.get(ev.get("model")) if ev.get("model") in models else next(iter(models.values()))
    if not isinstance(entry, dict):
        return None
    mean = entry.get("mean") if isinstance(entry.get("mean"), dict) else {}
    swap = entry.get("swap") if isinstance(entry.get("swap"), dict) else {}
    try:
        n = int(ev.get("mixtures_per_repeat") or 0) * int(ev.get("repeats") or 1)
    except (TypeError, ValueError):
        n = 0
    return MeasuredFigures(si_sdri_db=_finite(mean.get("si_sdri_single")),
                       absence_db=_finite(mean.get("absence_level_db")),
                       right_in_both=_finite(swap.get("right_in_both")),
                       scenario=str(ev.get("scenario") or ""), mixtures=n,
                       clip_s=_finite(ev.get("clip_s")) or 0.0)
