"""Room scenarios for simulated RIR banks: the paper's D1 / D2 / D3 and a user's own room.

Paper: Shi, Yen, Nakadai, "Distance-based single-channel target speech extraction"
(arXiv 2412.20144), section III-A "Dataset generation".

A :class:`RoomSpec` describes *how to draw* RIR geometries; :mod:`realtime_tse.train.rir_simulation` turns it
into RIRs and :mod:`realtime_tse.train.rirbank` stores banks of them.
All lengths are metres, times seconds, rates Hz. Coordinates are ``(x, y, z)`` with ``z`` the height,
the room spanning ``[0, Lx] x [0, Ly] x [0, Lz]``.

Structure of a bank
-------------------
RIR ``i`` (``0 <= i < n_rirs``) belongs to *group* ``g = i // group_size(spec)``. A group is one
acoustic configuration: one room size, one RT60, one microphone position. Only the talker position
changes inside a group, so two talkers of one mixture are always drawn from the same group:

=====  ==========================================  =================  ======================
preset  groups                                      RIRs per group     split (train:val:test)
=====  ==========================================  =================  ======================
d1     1 (fixed 7 x 8 x 3 m room, mic (3.5,4,1.1))  10,000             0.9:0.02:0.08 by RIR
d2     100 random microphones, same room            2,000              0.9:0.01:0.09 by RIR
d3     50,000 random rooms, one random mic each     10 talkers         0.9:0.02:0.08 by room
=====  ==========================================  =================  ======================

Choices where the paper is silent (ours, written down here)
-----------------------------------------------------------
* Room sizes and RT60s are uniform between their min and max, each dimension independently (D3).
* Talkers: ``x, y`` uniform at least ``wall_margin`` (0.5 m) from the walls, height uniform in
  ``talker_height`` (1.2 to 2.0 m, also kept ``wall_margin`` below the ceiling). Positions are
  uniform in space, not in distance, so distances follow the room's geometry (D1: most talkers
  1.5 to 3.5 m away, at most 4.70 m). The paper's D3 kept 489,813 of 500,000 RIRs "since smaller
  rooms may not have longer distance samples", hinting that it drew distances; we keep all.
* Random microphones (D2, D3): ``x, y`` at least ``wall_margin`` from the walls, height uniform in
  ``mic_height`` (0.8 to 1.5 m; D1's fixed microphone is at 1.1 m, a table).
* A talker closer than ``min_distance`` (0.2 m) to the microphone, or farther than ``d_max`` when
  given, is redrawn.
* ``rt60_per_rir``: False for the presets (RT60 is a property of the room/group). A custom room
  with an RT60 range draws RT60 per group of ``talkers_per_room`` RIRs (default 10), so the two
  talkers of a mixture always share one RT60.

What RT60 the presets really produce
------------------------------------
Materials come from Sabine's formula (``pyroomacoustics.inverse_sabine``): right for D1's dead
room, too long for the livelier D3 rooms. Measured with ``room.measure_rt60()`` (Schroeder, 60 dB) on RIRs from
``benchmarks/bench_rir.py`` (pyroomacoustics 0.10.1, randomised ISM), see
``benchmarks/results/rir_build.json`` for the current figures:

* D1 / D2 (target 0.20 s): measured 0.19 to 0.21 s, mean 0.204 s (x1.02): on target.
* D3 (target uniform 0.2 to 0.5 s; one RIR in each of 40 rooms): Sabine overshoots, more for
  longer targets: targets 0.2-0.3 s measure 0.34 s on average (x1.33), 0.3-0.4 s measure 0.52 s
  (x1.51), 0.4-0.5 s measure 0.70 s (x1.53); overall 0.23 to 0.85 s (x1.08 to x1.83). So D3 really
  spans about 0.23 to 0.85 s. The same overshoot applies to a custom room's RT60: ask for about
  two thirds of the RT60 you want in a live room (or check ``rt60_measured`` in the metadata).

The target and the measured RT60 of every RIR are stored in the bank's metadata.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from realtime_tse.models.acoustics import read_room_table, room_vector

Vec3 = tuple[float, float, float]

__all__ = [
    "RoomSpec",
    "room_preset",
    "load_room_toml",
    "distance_range",
    "group_size",
    "n_groups",
    "PRESETS",
]


@dataclass(frozen=True)
class RoomSpec:
    """How to draw the RIR geometries of one scenario (paper III-A).

    Attributes:
        name: scenario name ("d1", "d2", "d3", or the TOML file's stem).
        room_min, room_max: room size range ``(Lx, Ly, Lz)`` in metres; equal for a fixed room.
        mic: fixed microphone position in metres, or None for a random microphone per group.
        rt60_min, rt60_max: target reverberation time range in seconds (equal for a fixed RT60).
        n_rirs: number of RIRs in the full bank (D1 10,000; D2 200,000; D3 500,000).
        n_mics: number of random microphone positions in a fixed room (D2: 100); groups are then
            ``ceil(n_rirs / n_mics)`` RIRs each. Ignored when ``talkers_per_room`` is set.
        talkers_per_room: RIRs per group (D3: 10 talkers per room). None: see ``n_mics``.
        wall_margin: minimum distance of talkers and random microphones from the walls (0.5 m).
        talker_height: talker height range in metres (1.2 to 2.0 m).
        mic_height: height range of random microphones in metres.
        min_distance: talkers closer than this to the microphone are redrawn (metres).
        d_max: optional largest talker distance (metres); farther talkers are redrawn. It also
            caps :func:`distance_range` (the range of absence queries).
        r_spk: speaker distance range of the target rule, eq. 3 (0.5 m for D1 to D3).
        split: train / validation / test ratios (normalised).
        split_by: "rir" (D1, D2) or "room" (split by group, D3).
        rt60_per_rir: draw the RT60 per RIR instead of per group.
        seed: master seed; RIR ``i`` depends only on ``(seed, i)``.
        sample_rate: simulation sample rate in Hz.
    """

    name: str
    room_min: Vec3
    room_max: Vec3
    mic: Vec3 | None
    rt60_min: float
    rt60_max: float
    n_rirs: int
    n_mics: int = 1
    talkers_per_room: int | None = None
    wall_margin: float = 0.5
    talker_height: tuple[float, float] = (1.2, 2.0)
    mic_height: tuple[float, float] = (0.8, 1.5)
    min_distance: float = 0.2
    d_max: float | None = None
    r_spk: float = 0.5
    split: tuple[float, float, float] = (0.9, 0.02, 0.08)
    split_by: str = "rir"
    rt60_per_rir: bool = False
    seed: int = 0
    sample_rate: int = 16000
    source: str = field(default="", compare=False)  # where the spec came from (for messages)

    def __post_init__(self) -> None:
        validate(self)

    def replace(self, **changes) -> "RoomSpec":
        """A copy with some fields changed (validated again), e.g. ``spec.replace(n_rirs=12)``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-able dict (tuples become lists); ``RoomSpec.from_dict`` inverts it."""
        d = dataclasses.asdict(self)
        d.pop("source")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RoomSpec":
        d = dict(d)
        for k in ("room_min", "room_max", "mic", "talker_height", "mic_height", "split"):
            if d.get(k) is not None:
                d[k] = tuple(float(v) for v in d[k])
        return cls(**d)

    @property
    def fixed_room(self) -> bool:
        return tuple(self.room_min) == tuple(self.room_max)


def _err(spec: RoomSpec, key: str, msg: str) -> ValueError:
    where = spec.source or f"room spec {spec.name!r}"
    return ValueError(f"{where}: {key}: {msg}")


def validate(spec: RoomSpec) -> None:
    """Raise ValueError (naming the source file and key) if the spec cannot be simulated."""
    for key in ("room_min", "room_max"):
        v = getattr(spec, key)
        if len(v) != 3 or any(not (x > 0) for x in v):
            raise _err(spec, key, f"must be three positive sizes in metres, got {v!r}")
    if any(a > b for a, b in zip(spec.room_min, spec.room_max)):
        raise _err(spec, "size", f"room_min {spec.room_min} exceeds room_max {spec.room_max}")
    m = spec.wall_margin
    if m < 0:
        raise _err(spec, "wall_margin", "must be >= 0")
    lo_x, lo_y, lo_z = spec.room_min
    if lo_x <= 2 * m or lo_y <= 2 * m:
        raise _err(spec, "size", f"room {spec.room_min} leaves no floor area {m} m from the walls")
    th = spec.talker_height
    if th[0] > th[1] or th[0] < 0:
        raise _err(spec, "talker_height", f"bad range {th}")
    if min(th[1], lo_z - m) < th[0]:
        raise _err(spec, "size", f"room height {lo_z} m cannot hold talkers at {th[0]} m with "
                   f"{m} m below the ceiling")
    if spec.mic is not None:
        if len(spec.mic) != 3:
            raise _err(spec, "mic", f"must be [x, y, z], got {spec.mic!r}")
        for axis, (p, L) in enumerate(zip(spec.mic, spec.room_min)):
            if not (0 < p < L):
                raise _err(spec, "mic", f"position {tuple(spec.mic)} is outside the room "
                           f"{spec.room_min} (axis {'xyz'[axis]})")
    else:
        mh = spec.mic_height
        if mh[0] > mh[1] or mh[0] <= 0 or mh[1] >= lo_z:
            raise _err(spec, "mic_height", f"bad range {mh} for room height {lo_z} m")
    if not (spec.rt60_min > 0 and spec.rt60_max >= spec.rt60_min):
        raise _err(spec, "rt60", f"must be > 0 (and min <= max), got "
                   f"{spec.rt60_min}..{spec.rt60_max}")
    if spec.n_rirs < 1:
        raise _err(spec, "n_rirs", f"must be >= 1, got {spec.n_rirs}")
    if spec.n_mics < 1:
        raise _err(spec, "n_mics", f"must be >= 1, got {spec.n_mics}")
    if spec.talkers_per_room is not None and spec.talkers_per_room < 1:
        raise _err(spec, "talkers_per_room", f"must be >= 1, got {spec.talkers_per_room}")
    if not spec.r_spk > 0:
        raise _err(spec, "r_spk", f"must be > 0, got {spec.r_spk}")
    if len(spec.split) != 3 or any(r < 0 for r in spec.split) or sum(spec.split) <= 0:
        raise _err(spec, "split", f"must be three ratios >= 0, got {spec.split}")
    if spec.split_by not in ("rir", "room"):
        raise _err(spec, "split_by", f"must be 'rir' or 'room', got {spec.split_by!r}")
    if spec.d_max is not None and not spec.d_max > spec.min_distance:
        raise _err(spec, "d_max", f"must be > min_distance {spec.min_distance}, got {spec.d_max}")
    if spec.sample_rate < 1000:
        raise _err(spec, "sample_rate", f"implausible rate {spec.sample_rate}")
    if spec.mic is not None and spec.fixed_room:
        # the talker box must contain a point within d_max and beyond min_distance
        dmin, dmax = _distance_bounds(spec.room_min, spec.mic, spec)
        if spec.d_max is not None and dmin > spec.d_max:
            raise _err(spec, "d_max", f"no talker position lies within {spec.d_max} m of the "
                       f"microphone (nearest is {dmin:.2f} m)")
        if dmax < spec.min_distance:
            raise _err(spec, "mic", "every talker position is too close to the microphone")


def group_size(spec: RoomSpec) -> int:
    """RIRs per group (one room size, RT60 and microphone position)."""
    if spec.talkers_per_room is not None:
        return int(spec.talkers_per_room)
    return int(math.ceil(spec.n_rirs / spec.n_mics))


def n_groups(spec: RoomSpec) -> int:
    """Number of groups in the full bank."""
    return int(math.ceil(spec.n_rirs / group_size(spec)))


def talker_box(size: Vec3, spec: RoomSpec) -> tuple[Vec3, Vec3]:
    """Lower and upper corners of the admissible talker positions in a room of ``size``."""
    m = spec.wall_margin
    lo = (m, m, spec.talker_height[0])
    hi = (size[0] - m, size[1] - m, min(spec.talker_height[1], size[2] - m))
    return lo, hi


def _distance_bounds(size: Vec3, mic: Vec3, spec: RoomSpec) -> tuple[float, float]:
    """Nearest and farthest admissible talker position from ``mic`` in a room of ``size``."""
    lo, hi = talker_box(size, spec)
    near = math.sqrt(sum(max(l - p, 0.0, p - h) ** 2 for l, h, p in zip(lo, hi, mic)))
    far = math.sqrt(sum(max(abs(p - l), abs(h - p)) ** 2 for l, h, p in zip(lo, hi, mic)))
    return near, far


def group_distance_range(size: Vec3, mic: Vec3, spec: RoomSpec) -> float:
    """Largest talker distance (m) possible for one room and microphone, capped by ``d_max``."""
    far = _distance_bounds(size, mic, spec)[1]
    return min(far, spec.d_max) if spec.d_max is not None else far


def distance_range(spec: RoomSpec) -> float:
    """Largest talker distance (metres) the spec can produce, over all its rooms and mics.

    D1: 4.70 m (mic (3.5, 4, 1.1), talker corner (6.5, 7.5, 2.0)). D2: 9.30 m (mic in a corner of the
    mic area, talker in the opposite one). D3: 11.47 m (largest room). A single group's range (stored
    per RIR in the bank's metadata as ``d_range``) is usually smaller. Capped by ``spec.d_max`` when set.
    """
    size = spec.room_max
    lo, hi = talker_box(size, spec)
    if spec.mic is not None:
        mics = [spec.mic]
    else:
        m = spec.wall_margin
        xs, ys, zs = (m, size[0] - m), (m, size[1] - m), spec.mic_height
        mics = [(x, y, z) for x in xs for y in ys for z in zs]
    far = max(_distance_bounds(size, mic, spec)[1] for mic in mics)
    return min(far, spec.d_max) if spec.d_max is not None else far


PRESETS = ("d1", "d2", "d3")


def room_preset(name: str, **overrides) -> RoomSpec:
    """The paper's scenarios (III-A). ``overrides`` replace fields, e.g. ``n_rirs=1000``.

    * ``d1``: 7 x 8 x 3 m, microphone (3.5, 4, 1.1), RT60 0.2 s, 10,000 RIRs, split 0.9:0.02:0.08.
    * ``d2``: same room, 100 random microphones x 2,000 talker positions, split 0.9:0.01:0.09.
    * ``d3``: 50,000 rooms from 4 x 5 x 2.5 to 8 x 10 x 3 m, RT60 0.2 to 0.5 s, one random microphone
      and 10 talkers per room (500,000 RIRs), split by room 0.9:0.02:0.08.

    Raises ValueError for an unknown name.
    """
    key = name.lower()
    if key == "d1":
        spec = RoomSpec(name="d1", room_min=(7.0, 8.0, 3.0), room_max=(7.0, 8.0, 3.0),
                        mic=(3.5, 4.0, 1.1), rt60_min=0.2, rt60_max=0.2, n_rirs=10_000,
                        split=(0.9, 0.02, 0.08), split_by="rir")
    elif key == "d2":
        spec = RoomSpec(name="d2", room_min=(7.0, 8.0, 3.0), room_max=(7.0, 8.0, 3.0), mic=None,
                        rt60_min=0.2, rt60_max=0.2, n_rirs=200_000, n_mics=100,
                        split=(0.9, 0.01, 0.09), split_by="rir")
    elif key == "d3":
        spec = RoomSpec(name="d3", room_min=(4.0, 5.0, 2.5), room_max=(8.0, 10.0, 3.0), mic=None,
                        rt60_min=0.2, rt60_max=0.5, n_rirs=500_000, talkers_per_room=10,
                        split=(0.9, 0.02, 0.08), split_by="room")
    else:
        raise ValueError(f"unknown room preset {name!r}; choose one of {', '.join(PRESETS)} "
                         "or give a TOML file (load_room_toml)")
    return spec.replace(**overrides) if overrides else spec


_TOML_KEYS = {"name", "size", "mic", "rt60", "n_rirs", "r_spk", "seed", "d_max", "sample_rate",
              "talkers_per_room", "split", "wall_margin", "talker_height", "min_distance"}


def load_room_toml(path: str | Path) -> RoomSpec:
    """A user's own room from a TOML file. Example::

        size = [5.0, 4.0, 2.7]     # room x, y, z in metres (required)
        mic = [2.5, 0.6, 0.9]      # microphone position in metres (required)
        rt60 = 0.4                 # seconds, or a range: rt60 = [0.3, 0.5] (required)
        n_rirs = 2000              # optional, default 2000
        r_spk = 0.5                # optional, metres
        seed = 0                   # optional
        d_max = 4.0                # optional: farthest talker distance / query range (m)
        # optional: talkers_per_room (RIRs sharing one RT60 when rt60 is a range, default 10),
        # split = [0.9, 0.02, 0.08], wall_margin, talker_height = [1.2, 2.0], min_distance,
        # sample_rate, name

    Returns a :class:`RoomSpec` split by RIR. Raises ValueError naming the file and the key for a
    missing or malformed key, a microphone outside the room, a room too small for talkers 0.5 m from
    the walls, or RT60 <= 0; FileNotFoundError when the file is missing.
    """
    path = Path(path)
    d = read_room_table(path)
    where = str(path)

    def bad(key: str, msg: str) -> ValueError:
        return ValueError(f"{where}: {key}: {msg}")

    unknown = set(d) - _TOML_KEYS
    if unknown:
        raise bad(sorted(unknown)[0], f"unknown key; allowed keys: {', '.join(sorted(_TOML_KEYS))}")
    for key in ("size", "mic", "rt60"):
        if key not in d:
            raise bad(key, "missing (required keys: size, mic, rt60)")

    def vec(key: str, n: int) -> tuple[float, ...]:
        return room_vector(d, key, n, where)

    def num(key: str, default, kind=float):
        if key not in d:
            return default
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
            raise bad(key, f"must be {'an integer' if kind is int else 'a number'}, got {v!r}")
        return kind(v)

    size = vec("size", 3)
    if any(s <= 0 for s in size):
        raise bad("size", f"sizes must be > 0, got {list(size)}")
    mic = vec("mic", 3)
    rt = d["rt60"]
    if isinstance(rt, list):
        rt_min, rt_max = vec("rt60", 2)
    else:
        rt_min = rt_max = num("rt60", None)
    if not (rt_min > 0 and rt_max > 0):
        raise bad("rt60", f"must be > 0 seconds, got {rt!r}")
    if rt_min > rt_max:
        raise bad("rt60", f"range must be [min, max], got {rt!r}")
    n_rirs = num("n_rirs", 2000, int)
    tpr = num("talkers_per_room", None, int)
    if tpr is None and rt_min != rt_max:
        tpr = 10
    kwargs = dict(
        name=str(d.get("name", path.stem)), room_min=size, room_max=size, mic=mic,
        rt60_min=rt_min, rt60_max=rt_max, n_rirs=n_rirs, talkers_per_room=tpr,
        r_spk=num("r_spk", 0.5), seed=num("seed", 0, int), d_max=num("d_max", None),
        sample_rate=num("sample_rate", 16000, int), split_by="rir", source=where,
        wall_margin=num("wall_margin", 0.5), min_distance=num("min_distance", 0.2),
    )
    if "split" in d:
        kwargs["split"] = vec("split", 3)
    if "talker_height" in d:
        kwargs["talker_height"] = vec("talker_height", 2)
    # microphone inside the room: checked here too, to name the TOML key precisely
    for axis, (p, L) in enumerate(zip(mic, size)):
        if not 0 < p < L:
            raise bad("mic", f"{list(mic)} is outside the room {list(size)} "
                      f"(axis {'xyz'[axis]}: {p} not in (0, {L}))")
    return RoomSpec(**kwargs)
