"""Measured RIRs (a folder of WAV files + a CSV of distances) for fine-tuning, like the paper's D4.

Paper III-A, D4: real RIRs of three rooms of BUT ReverbDB (distances 0.266 to 10.521 m), 624 for
fine-tuning and 182 for testing, ``r_spk`` = 0.1 m (III-B), fine-tuned from a D3 model.

Layout::

    my_rirs/
      rirs.csv          file,distance_m[,room][,split]
      q301/rir_000.wav  ...

* ``file``: path of a WAV (any soundfile format) relative to the CSV's folder.
* ``distance_m``: talker-to-microphone distance in metres (> 0).
* ``room`` (optional): any label; RIRs with the same label form one group (two talkers of a mixture
  are drawn from one room). Without it all RIRs form one group.
* ``split`` (optional): train / val / test per RIR. Without it, RIRs are split at random per room
  by ``ratios`` (default 0.7:0.07:0.23, close to D4's 624:182 with a validation share), from ``seed``.

The interface matches :class:`realtime_tse.train.rirbank.RIRBank`: ``len``, ``meta`` (list of dicts with
``index``, ``file``, ``distance``, ``room``, ``group``, ``split``, ``d_range`` (the room's largest listed
distance), ``length``, ``sample_rate``), ``meta_of(i)``, ``indices(split)``, ``groups()``,
``rir(i, sample_rate)`` (float32, soxr-resampled when the rate differs). Multi-channel files: the
``channel`` given (default 0). Onsets are kept as recorded (the network sees the true direct-path delay
and level of the measurement). All files are read at construction so a missing or broken file fails
early: ``MeasuredRIRError`` (a ValueError) names the CSV line and the file.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MeasuredRIRs", "MeasuredRIRError", "MeasuredRoom"]

SPLITS = ("train", "val", "test")


class MeasuredRIRError(ValueError):
    """Bad CSV, missing file, unreadable audio or a bad distance."""


@dataclass(frozen=True)
class MeasuredRoom:
    """What the trainer needs to know of measured RIRs when no room TOML is given (the room of a
    :class:`realtime_tse.train.trainer.Trainer`): ``name``, ``r_spk`` (m, eq. 3), ``d_max`` (m, the query range:
    the largest measured distance) and the CSV (provenance)."""

    name: str
    r_spk: float
    d_max: float
    csv: str

    def to_dict(self) -> dict:
        return {"name": self.name, "measured": self.csv, "r_spk": self.r_spk, "d_max": self.d_max}


class MeasuredRIRs:
    """Measured RIRs listed in a CSV (see module doc).

    Args:
        csv_path: the CSV (``file,distance_m[,room][,split]``).
        ratios: train / val / test ratios when the CSV has no ``split`` column.
        seed: seed of that split.
        channel: channel of multi-channel files.
    """

    def __init__(self, csv_path: str | Path, ratios=(0.7, 0.07, 0.23), seed: int = 0,
                 channel: int = 0):
        import soundfile as sf

        self.csv_path = Path(csv_path)
        if self.csv_path.is_dir():
            found = sorted(self.csv_path.glob("*.csv"))
            if len(found) != 1:
                raise MeasuredRIRError(f"{self.csv_path}: expected one CSV in the folder, found "
                                       f"{len(found)}")
            self.csv_path = found[0]
        if not self.csv_path.is_file():
            raise MeasuredRIRError(f"measured RIR list not found: {self.csv_path}")
        root = self.csv_path.parent
        with open(self.csv_path, newline="") as f:
            reader = csv.DictReader(f)
            cols = [c.strip() for c in (reader.fieldnames or [])]
            if not {"file", "distance_m"} <= set(cols):
                raise MeasuredRIRError(f"{self.csv_path}: needs columns 'file' and 'distance_m' "
                                       f"(optional 'room', 'split'); has {cols}")
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
        if not rows:
            raise MeasuredRIRError(f"{self.csv_path}: no rows")
        self.meta: list[dict] = []
        self._rirs: list[np.ndarray] = []
        rooms: dict[str, int] = {}
        for n, row in enumerate(rows):
            line = n + 2
            fp = Path(row["file"])
            fp = fp if fp.is_absolute() else root / fp
            if not row["file"] or not fp.is_file():
                raise MeasuredRIRError(f"{self.csv_path}: line {line}: file not found: {fp}")
            try:
                dist = float(row["distance_m"])
            except ValueError:
                raise MeasuredRIRError(f"{self.csv_path}: line {line}: distance_m "
                                       f"{row['distance_m']!r} is not a number") from None
            if not dist > 0 or not np.isfinite(dist):
                raise MeasuredRIRError(f"{self.csv_path}: line {line}: distance_m must be > 0, "
                                       f"got {dist}")
            try:
                x, sr = sf.read(str(fp), dtype="float32", always_2d=True)
            except Exception as e:
                raise MeasuredRIRError(f"{self.csv_path}: line {line}: cannot read {fp}: {e}") from e
            if x.shape[0] == 0:
                raise MeasuredRIRError(f"{self.csv_path}: line {line}: {fp} is empty")
            if channel >= x.shape[1]:
                raise MeasuredRIRError(f"{self.csv_path}: line {line}: {fp} has {x.shape[1]} "
                                       f"channel(s), channel {channel} asked")
            h = np.ascontiguousarray(x[:, channel])
            h.setflags(write=False)
            room = row.get("room", "") or ""
            g = rooms.setdefault(room, len(rooms))
            split = row.get("split", "") or ""
            if split and split not in SPLITS:
                raise MeasuredRIRError(f"{self.csv_path}: line {line}: split must be one of "
                                       f"{SPLITS}, got {split!r}")
            self._rirs.append(h)
            self.meta.append({"index": n, "file": str(fp), "distance": dist, "room": room,
                              "group": g, "room_id": g, "mic_id": g, "split": split,
                              "length": int(len(h)), "sample_rate": int(sr)})
        self.rooms = list(rooms)
        for g in range(len(rooms)):
            members = [m for m in self.meta if m["group"] == g]
            far = max(m["distance"] for m in members)
            for m in members:
                m["d_range"] = far
            free = [m for m in members if not m["split"]]
            if free:
                r = np.asarray(ratios, dtype=float)
                c = np.cumsum(r / r.sum())
                perm = np.random.default_rng([seed, g]).permutation(len(free))
                c1, c2 = int(round(len(free) * c[0])), int(round(len(free) * c[1]))
                for k, p in enumerate(perm):
                    free[p]["split"] = SPLITS[0 if k < c1 else (1 if k < c2 else 2)]
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.meta)

    def __repr__(self) -> str:
        return f"MeasuredRIRs({str(self.csv_path)!r}, {len(self)} RIRs, {len(self.rooms)} room(s))"

    def meta_of(self, i: int) -> dict:
        return self.meta[int(i)]

    def distance(self, i: int) -> float:
        return self.meta[int(i)]["distance"]

    def indices(self, split: str | None = None) -> np.ndarray:
        """Indices of all RIRs, or of one split ("train", "val", "test")."""
        if split is None:
            return np.arange(len(self.meta), dtype=np.int64)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.array([m["index"] for m in self.meta if m["split"] == split], dtype=np.int64)

    def groups(self, indices=None) -> dict[int, np.ndarray]:
        idx = self.indices() if indices is None else np.asarray(indices, dtype=np.int64)
        out: dict[int, list[int]] = {}
        for i in idx:
            out.setdefault(self.meta[int(i)]["group"], []).append(int(i))
        return {g: np.array(v, dtype=np.int64) for g, v in out.items()}

    def rir(self, i: int, sample_rate: int | None = None) -> np.ndarray:
        """RIR ``i`` as float32 [L] (read-only), resampled with soxr if ``sample_rate`` differs."""
        h = self._rirs[int(i)]
        sr = self.meta[int(i)]["sample_rate"]
        if sample_rate is None or int(sample_rate) == sr:
            return h
        key = (int(i), int(sample_rate))
        if key not in self._cache:
            import soxr
            out = soxr.resample(h, sr, int(sample_rate), quality="HQ").astype(np.float32)
            out.setflags(write=False)
            self._cache[key] = out
        return self._cache[key]
