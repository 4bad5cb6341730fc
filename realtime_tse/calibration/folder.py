"""The room calibration's folder: the room set-up, a resumable work folder, and the finished folder
that ``tse-train --measured`` reads.

Finished folder (``OUT``)::

    OUT/rirs/d1.50m_p1.wav   one trimmed RIR per take (float WAV at the measuring rate)
    OUT/rirs.csv             file,distance_m,room,split,position,rt60_s,drr_db,path_m
                             (the columns train/measured.py reads, plus the figures)
    OUT/room.toml            the room for a matched simulated bank (train/rooms.py load_room_toml):
                             size, mic, rt60 = the median measured RT60, the user's other keys
    OUT/calibration.json     settings, loop latency, every take's figures, the simulated reference
    OUT/plot.png             energy decay and DRR against distance, measured beside simulated

Nothing is half-written: takes go into a work folder beside ``OUT`` (``.OUT.partial``), each WAV and
its JSON written under a temporary name and renamed; :meth:`Session.finish` writes the CSV, TOML,
JSON and plot there and renames the whole folder to ``OUT`` last. A rerun of the same command finds
the work folder and measures only the takes still missing (``restart=True`` discards it).

Splits written into ``rirs.csv`` (train/measured.py would otherwise split at random, which can leave
a split with fewer than the two RIRs a mixture needs): with six or more RIRs, every third one in
order of distance (the 2nd, 5th, 8th, ...) is ``test``, the rest ``train``, so both splits cover the
whole range of distances; with fewer, all are ``train`` (``tse-eval --measured`` then has no test
split and says so). There is no ``val`` split: ``tse-train --measured`` validates on the training
RIRs with the validation speakers.

Plain TOML is written by hand (the standard library reads TOML but does not write it); this module
does not import ``train`` (``realtime_tse`` never does), the tests check that ``train`` reads it.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from realtime_tse.models.acoustics import read_room_table, room_vector

from ..audio_file import soundfile_name
from ..file_write import atomic_path, write_bytes_atomic
from .measure import RIRMeasurement, SweepConfig
from .plot import load_rirs, plot_calibration, simulate_reference

__all__ = ["RoomSetup", "Session", "read_room_toml", "room_toml_text", "parse_distances",
           "assign_splits", "take_key", "work_dir_for", "SESSION_VERSION", "MIN_RT60_S"]

SESSION_VERSION = 1
MIN_RT60_S = 0.05   # s: the shortest RT60 written to room.toml (a loopback measures about 0)
Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class RoomSetup:
    """The room being measured. Lengths in metres, ``(x, y, z)`` with z the height, the room
    spanning ``[0, Lx] x [0, Ly] x [0, Lz]``.

    Attributes:
        name: a label (the room column of rirs.csv, the TOML's name).
        size_m: room size. mic_m: microphone position (inside the room).
        rt60_guess_s: an RT60 known beforehand (a room TOML's rt60), to check the sweep before
            playing; None if unknown.
        extra: other keys of the user's room TOML (n_rirs, r_spk, d_max, ...), written back.
    Raises ValueError (naming the field) for sizes <= 0 or a microphone outside the room.
    """

    name: str
    size_m: Vec3
    mic_m: Vec3
    rt60_guess_s: float | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if len(self.size_m) != 3 or any(not (s > 0 and math.isfinite(s)) for s in self.size_m):
            raise ValueError(f"room size must be three lengths > 0 m, got {list(self.size_m)}")
        if len(self.mic_m) != 3:
            raise ValueError(f"microphone position must be [x, y, z] in metres, got {self.mic_m}")
        for axis, (p, s) in enumerate(zip(self.mic_m, self.size_m)):
            if not 0 < p < s:
                raise ValueError(f"microphone {list(self.mic_m)} is outside the room "
                                 f"{list(self.size_m)} (axis {'xyz'[axis]}: {p:g} not in "
                                 f"(0, {s:g}) m)")
        if self.rt60_guess_s is not None and not self.rt60_guess_s > 0:
            raise ValueError(f"rt60 must be > 0 s, got {self.rt60_guess_s}")

    def farthest_m(self) -> float:
        """Distance (m) from the microphone to the farthest corner of the room."""
        return float(math.sqrt(sum(max(p, s - p) ** 2 for p, s in zip(self.mic_m, self.size_m))))

    def check_distance(self, d: float) -> None:
        """Raise ValueError when ``d`` (m) is not > 0 or lies outside the room."""
        if not (d > 0 and math.isfinite(d)):
            raise ValueError(f"distance {d} m: distances must be > 0 m")
        far = self.farthest_m()
        if d > far:
            raise ValueError(f"distance {d:g} m is outside the room: its farthest corner is "
                             f"{far:.2f} m from the microphone at {list(self.mic_m)} in a "
                             f"{' x '.join(f'{s:g}' for s in self.size_m)} m room")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size_m"], d["mic_m"] = list(self.size_m), list(self.mic_m)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RoomSetup":
        return cls(name=str(d["name"]), size_m=tuple(float(v) for v in d["size_m"]),
                   mic_m=tuple(float(v) for v in d["mic_m"]), rt60_guess_s=d.get("rt60_guess_s"),
                   extra=dict(d.get("extra") or {}))


def read_room_toml(path) -> RoomSetup:
    """A :class:`RoomSetup` from a room TOML (the format of ``train/rooms.py``): ``size`` and
    ``mic`` required, ``rt60`` (a number or [min, max]: the max is used) optional, ``name`` (default
    the file's stem); other keys are kept. Raises FileNotFoundError, ValueError naming the key."""
    p = Path(path)
    d = read_room_table(p)

    def vec(key):
        return room_vector(d, key, 3, p, unit=" (metres)")

    rt = d.get("rt60")
    if isinstance(rt, list) and rt:
        rt = max(rt)
    if rt is not None and (isinstance(rt, bool) or not isinstance(rt, (int, float))):
        raise ValueError(f"{p}: rt60: must be a number of seconds, got {rt!r}")
    extra = {k: v for k, v in d.items() if k not in ("size", "mic", "rt60", "name")}
    try:
        return RoomSetup(name=str(d.get("name", p.stem)), size_m=vec("size"), mic_m=vec("mic"),
                         rt60_guess_s=float(rt) if rt is not None else None, extra=extra)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if isinstance(v, int) else f"{float(v):.6g}"
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ValueError(f"cannot write {v!r} to TOML")


def room_toml_text(setup: RoomSetup, rt60_s: float, comments=()) -> str:
    """room.toml text: ``name``, ``size``, ``mic``, ``rt60`` (s, at least ``MIN_RT60_S``) and the
    set-up's extra keys, after ``# comments``."""
    lines = [f"# {c}" for c in comments]
    items = {"name": setup.name, "size": list(setup.size_m), "mic": list(setup.mic_m),
             "rt60": round(max(float(rt60_s), MIN_RT60_S), 3), **setup.extra}
    lines += [f"{k} = {_toml_value(v)}" for k, v in items.items()]
    return "\n".join(lines) + "\n"


def parse_distances(text: str) -> list[float]:
    """"0.5, 1, 1.5" (commas or spaces) -> [0.5, 1.0, 1.5] metres. Raises ValueError."""
    parts = [t for t in text.replace(",", " ").split() if t]
    if not parts:
        raise ValueError("no distances given (e.g. 0.5,1,1.5,2)")
    try:
        out = [float(t) for t in parts]
    except ValueError:
        raise ValueError(f"distances must be numbers in metres, got {text!r}") from None
    if len(set(out)) != len(out):
        raise ValueError(f"a distance is listed twice in {text!r} (use --positions for several "
                         "loudspeaker positions per distance)")
    return out


def assign_splits(distances) -> list[str]:
    """train / test per RIR (module docstring): with six or more, every third in order of
    distance is test."""
    d = np.asarray(distances, dtype=float)
    out = ["train"] * len(d)
    if len(d) >= 6:
        for i in np.argsort(d, kind="stable")[1::3]:
            out[int(i)] = "test"
    return out


def take_key(distance_m: float, position: int) -> str:
    """File stem of one take: ``d1.50m_p1``."""
    return f"d{distance_m:.2f}m_p{position}"


def work_dir_for(out) -> Path:
    """The work folder beside ``out``: ``.<name>.partial``."""
    out = Path(out).expanduser().absolute()
    return out.parent / f".{out.name}.partial"


def _write_atomic(path: Path, data: bytes) -> None:
    """``data`` to ``path`` whole or not at all (:mod:`realtime_tse.file_write`)."""
    write_bytes_atomic(path, data)


def _is_calibration(p: Path) -> bool:
    return p.is_dir() and (not any(p.iterdir()) or (p / "calibration.json").is_file())


class Session:
    """One calibration run into ``out``, resumable through its work folder (module docstring).

    Args:
        out: the finished folder. setup: :class:`RoomSetup` (None: the work folder's, to resume).
        cfg: :class:`realtime_tse.calibration.measure.SweepConfig` (None: the work folder's).
        distances: tape distances (m) in the order measured. positions: loudspeaker positions
            per distance.
        restart: discard an existing work folder. force: replace an existing finished ``out``
            (only a calibration folder or an empty one; never another folder).
    Raises:
        FileExistsError: ``out`` exists (without ``force``, or not a calibration folder).
        ValueError: a distance outside the room, no set-up to resume from, or a work folder made
            with other sweep settings or another room (``restart`` discards it).
    """

    def __init__(self, out, setup: RoomSetup | None, cfg: SweepConfig | None,
                 distances=None, positions: int = 1, restart: bool = False, force: bool = False):
        self.out = Path(out).expanduser().absolute()
        self.work = work_dir_for(self.out)
        self.force = bool(force)
        if self.out.exists() and not (force and _is_calibration(self.out)):
            why = ("add --force to replace it" if _is_calibration(self.out) else
                   "it is not a calibration folder: choose another --out")
            raise FileExistsError(f"{self.out} already exists ({why})")
        if restart and self.work.exists():
            shutil.rmtree(self.work)
        old = self._load_session()
        if old is not None:
            o_setup = RoomSetup.from_dict(old["room"])
            o_cfg = SweepConfig.from_dict(old["sweep"])
            if setup is not None and setup != o_setup:
                raise ValueError(f"{self.work} holds a calibration of another room set-up "
                                 f"({o_setup.size_m} m, mic {o_setup.mic_m}): give the same room, "
                                 "or --restart to discard it")
            if cfg is not None and cfg != o_cfg:
                raise ValueError(f"{self.work} holds takes made with other sweep settings "
                                 f"({o_cfg}); give the same settings, or --restart to discard them")
            setup, cfg = setup or o_setup, cfg or o_cfg
            distances = distances if distances is not None else old["distances"]
            positions = positions if positions else old["positions"]
        if setup is None or cfg is None or not distances:
            raise ValueError("the room, the sweep settings and the distances are needed (nothing "
                             f"to resume in {self.work})")
        self.setup, self.cfg = setup, cfg
        self.distances = [float(d) for d in distances]
        self.positions = max(int(positions), 1)
        for d in self.distances:
            setup.check_distance(d)
        self.latency_s = old.get("latency_s") if old else None
        self.latency_source = old.get("latency_source") if old else None
        self.resumed = old is not None
        (self.work / "rirs").mkdir(parents=True, exist_ok=True)
        (self.work / "takes").mkdir(exist_ok=True)
        self._save_session()

    # ------------------------------------------------------------------ state
    def _load_session(self) -> dict | None:
        p = self.work / "session.json"
        if not p.is_file():
            return None
        try:
            d = json.loads(p.read_text())
        except ValueError as e:
            raise ValueError(f"{p}: unreadable ({e}); --restart discards the work folder") from e
        if d.get("version") != SESSION_VERSION:
            raise ValueError(f"{p}: written by another version; --restart discards it")
        return d

    def _save_session(self) -> None:
        d = {"version": SESSION_VERSION, "room": self.setup.to_dict(), "sweep": self.cfg.to_dict(),
             "distances": self.distances, "positions": self.positions,
             "latency_s": self.latency_s, "latency_source": self.latency_source}
        _write_atomic(self.work / "session.json", json.dumps(d, indent=2).encode())

    def set_latency(self, latency_s: float | None, source: str | None) -> None:
        """Remember the loop latency (s) and where it came from ("measured", "given")."""
        self.latency_s = None if latency_s is None else float(latency_s)
        self.latency_source = source
        self._save_session()

    def plan(self) -> list[tuple[float, int]]:
        """Every (distance m, position 1..N) of the run, in order."""
        return [(d, p) for d in self.distances for p in range(1, self.positions + 1)]

    def done(self) -> dict[str, dict]:
        """Finished takes of this plan: key -> their JSON (figures, file)."""
        out = {}
        for d, p in self.plan():
            k = take_key(d, p)
            j = self.work / "takes" / f"{k}.json"
            if j.is_file() and (self.work / "rirs" / f"{k}.wav").is_file():
                out[k] = json.loads(j.read_text())
        return out

    def pending(self) -> list[tuple[float, int]]:
        done = self.done()
        return [(d, p) for d, p in self.plan() if take_key(d, p) not in done]

    def save_take(self, m: RIRMeasurement, position: int) -> Path:
        """Write one take's RIR (float WAV) and figures; returns the WAV's path."""
        import soundfile as sf
        k = take_key(m.distance_m, position)
        wav = self.work / "rirs" / f"{k}.wav"
        with atomic_path(wav) as tmp:
            sf.write(soundfile_name(tmp), np.asarray(m.rir, np.float32), m.sample_rate,
                     format="WAV", subtype="FLOAT")
        rec = {**m.summary(), "position": int(position), "file": f"rirs/{k}.wav",
               "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}
        _write_atomic(self.work / "takes" / f"{k}.json", json.dumps(rec, indent=2).encode())
        return wav

    # ------------------------------------------------------------------ finish
    def finish(self, reference=None, plot: bool = True) -> Path:
        """Write rirs.csv, room.toml, calibration.json (and plot.png) into the work folder and move
        it to ``out``. ``reference``: the simulated room (:func:`realtime_tse.calibration.plot.
        simulate_reference`; computed here when None and ``plot``). Returns ``out``.

        Raises ValueError when takes are missing or fewer than two RIRs were measured (a mixture
        needs two).
        """
        missing = self.pending()
        if missing:
            raise ValueError(f"{len(missing)} take(s) not measured yet: "
                             + ", ".join(f"{d:g} m (position {p})" for d, p in missing[:5]))
        takes = [self.done()[take_key(d, p)] for d, p in self.plan()]
        if len(takes) < 2:
            raise ValueError("at least two RIRs are needed (two talkers per training mixture): "
                             "give two or more distances, or --positions 2")
        planned = {f"{take_key(d, p)}.wav" for d, p in self.plan()}
        for f in (self.work / "rirs").glob("*.wav"):
            if f.name not in planned:  # takes of distances no longer asked for
                f.unlink()
        for f in (self.work / "takes").glob("*.json"):
            if f"{f.stem}.wav" not in planned:
                f.unlink()
        rt60s = np.array([t["rt60_s"] for t in takes], dtype=float)
        rt60 = float(np.median(rt60s))
        splits = assign_splits([t["distance_m"] for t in takes])
        rows = [{"file": t["file"], "distance_m": f"{t['distance_m']:g}", "room": self.setup.name,
                 "split": s, "position": t["position"], "rt60_s": f"{t['rt60_s']:.3f}",
                 "drr_db": f"{t['drr_db']:.2f}",
                 "path_m": "" if t["path_m"] is None else f"{t['path_m']:.3f}"}
                for t, s in zip(takes, splits)]
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        _write_atomic(self.work / "rirs.csv", buf.getvalue().encode())
        if reference is None and plot:
            reference = simulate_reference(self.setup, rt60, sorted(set(self.distances)))
        comments = [f"written by realtime-tse calibrate on {time.strftime('%Y-%m-%d')}: rt60 is the "
                    f"median measured RT60 (T30) of {len(takes)} RIRs, "
                    f"{rt60s.min():.2f} to {rt60s.max():.2f} s"]
        if rt60 < MIN_RT60_S:
            comments.append(f"the measured {rt60:.3f} s is implausibly short for a room (an "
                            f"electrical loopback?): written as {MIN_RT60_S} s")
        if reference and reference.get("rt60_s") and rt60 >= MIN_RT60_S:
            sim = reference["rt60_s"]
            if abs(sim / rt60 - 1) > 0.1:
                comments.append(f"the simulator makes {sim:.2f} s of this rt60 (Sabine's formula, "
                                f"see train/rooms.py); rt60 = {rt60 * rt60 / sim:.3f} would "
                                f"measure about {rt60:.2f} s")
        _write_atomic(self.work / "room.toml", room_toml_text(self.setup, rt60, comments).encode())
        report = {"version": SESSION_VERSION, "room": self.setup.to_dict(),
                  "sweep": self.cfg.to_dict(), "latency_s": self.latency_s,
                  "latency_source": self.latency_source, "rt60_median_s": rt60,
                  "takes": [{**t, "split": s} for t, s in zip(takes, splits)],
                  "simulated": None if not reference else
                  {k: v for k, v in reference.items() if k != "rirs"}}
        _write_atomic(self.work / "calibration.json", json.dumps(report, indent=2).encode())
        if plot:
            plot_calibration(load_rirs(self.work, takes), reference, self.work / "plot.png",
                             title=self.setup.name)
        shutil.rmtree(self.work / "takes")
        (self.work / "session.json").unlink()
        return self._move_into_place()

    def _move_into_place(self) -> Path:
        old = None
        if self.out.exists():  # allowed by force (checked in __init__): a calibration or empty
            if not (self.force and _is_calibration(self.out)):
                raise FileExistsError(f"{self.out} appeared meanwhile; the result stays in "
                                      f"{self.work}")
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            os.replace(self.out, old)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.work, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out
