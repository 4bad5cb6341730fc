"""The provenance schema of a checkpoint: what the trainer writes into its metadata and what the
app, the CLI and the scripts read back (``load_checkpoint(path)[1]["provenance"]`` is its dict).

Layout (JSON object; every key optional, unknown keys kept)::

    room          the training room, train.rooms.RoomSpec.to_dict(): name, room_min / room_max
                  [3] metres, rt60_min / rt60_max seconds, mic ([3] metres or None: random), ...
    data          the training data (speech corpus, RIR bank, counts), as train/cli.py states it
    trainer       the trainer's state: step, epoch, best validation figures, ...
    train_config  the TrainConfig as a dict
    parameters    trainable parameter count
    val_metrics   validation figures of the saved step
    (others)      e.g. optimizer (last.safetensors), credits, source_run, evaluation (publish_model.py)
"""
from __future__ import annotations

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
