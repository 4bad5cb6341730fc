"""One simulated RIR (paper III-A): the group geometry, the talker position, the randomised image
method, the truncation and the split of each RIR of a bank (:mod:`realtime_tse.train.rirbank` builds banks of
them on disk).

RIRs come from the randomised image method (ref. [16], pyroomacoustics). We use pyroomacoustics
because it is the simulator the paper cites: ``ShoeBox`` rooms with ``use_rand_ism=True,
max_rand_disp=0.08`` and wall materials from ``pra.inverse_sabine(rt60, size)`` (Sabine's formula,
which also returns the image-source order), one microphone and one source per RIR.

Determinism
-----------
RIR ``i`` depends only on ``(spec.seed, i)``: its group geometry (room size, RT60, microphone) comes
from ``numpy.random.default_rng([seed, 0, group])``, its talker position from ``[seed, 1, i]`` and
pyroomacoustics' own random state (the image displacements) is seeded from ``[seed, 2, i]``. Any
index range therefore gives identical RIRs, so a cluster job array can build disjoint shards.
(Building in-process reseeds pyroomacoustics' global RNG: ``pra.random.seed``.)

Choices written down
--------------------
* Direct path not displaced: the randomised ISM displaces every image source by up to 8 cm per axis,
  the order-0 "image" (the talker itself) included, which would move the direct path by up to
  ~14 cm (6 samples at 16 kHz) off the distance label. We put the order-0 image back at the talker,
  so the stored distance is exact; reflections keep their random displacement.
* Onset: pyroomacoustics centres an 81-tap fractional-delay filter on each arrival, so the direct
  path arrives at ``distance / c * fs + 40`` samples (``DIRECT_PATH_OFFSET``; c = 343 m/s). We keep
  this constant offset (it is the same for every RIR, so the reverberant target is unaffected).
* Truncation: each RIR is cut where its Schroeder backward energy has fallen 60 dB below the total
  (the discarded tail holds < 1e-6 of the energy, below the 16-bit floor of speech). Measured: the
  kept length is about 0.94x the measured RT60 (the RT60 fit starts at -5 dB), a third to a half of
  pyroomacoustics' raw length (D1: 0.19 s kept of 0.57 s).
* The measured RT60 (``room.measure_rt60()``, 60 dB Schroeder fit) is taken on the untruncated RIR.
* Splits: the full bank of ``spec.n_rirs`` RIRs is permuted with ``default_rng([seed, 3])`` and cut
  by ``spec.split``; by RIR (D1, D2) or by group = room (D3). A partial bank keeps the full bank's
  assignment, so shards agree.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from realtime_tse.models.acoustics import shoebox_room, truncate_rir
from realtime_tse.train.rooms import RoomSpec, group_distance_range, group_size, talker_box

__all__ = ["simulate_rir", "group_geometry", "split_assignment", "META_COLUMNS", "SPLITS",
           "DIRECT_PATH_OFFSET"]

SPLITS = ("train", "val", "test")
DIRECT_PATH_OFFSET = 40  # samples: (frac_delay_length 81 - 1) / 2
META_COLUMNS = ("index", "group", "room_id", "mic_id", "split",
                "room_x", "room_y", "room_z", "mic_x", "mic_y", "mic_z",
                "talker_x", "talker_y", "talker_z", "distance", "d_range",
                "rt60_target", "rt60_measured", "max_order", "length", "sample_rate")


# --------------------------------------------------------------------------- geometry

def group_geometry(spec: RoomSpec, g: int) -> dict:
    """Room size (m), RT60 target (s) and microphone position (m) of group ``g``.

    Deterministic from ``(spec.seed, g)``. Returns ``{"size": (x,y,z), "rt60": float, "mic": (x,y,z)}``.
    """
    rng = np.random.default_rng([spec.seed, 0, int(g)])
    size = tuple(float(rng.uniform(a, b)) if a != b else float(a)
                 for a, b in zip(spec.room_min, spec.room_max))
    rt60 = float(rng.uniform(spec.rt60_min, spec.rt60_max)) if spec.rt60_max > spec.rt60_min \
        else float(spec.rt60_min)
    if spec.mic is not None:
        mic = tuple(float(v) for v in spec.mic)
    else:
        m = spec.wall_margin
        mic = (float(rng.uniform(m, size[0] - m)), float(rng.uniform(m, size[1] - m)),
               float(rng.uniform(*spec.mic_height)))
    return {"size": size, "rt60": rt60, "mic": mic}


def _talker_position(spec: RoomSpec, i: int, size, mic) -> tuple[np.ndarray, np.random.Generator]:
    rng = np.random.default_rng([spec.seed, 1, int(i)])
    lo, hi = talker_box(size, spec)
    mic = np.asarray(mic)
    for _ in range(10_000):
        pos = rng.uniform(lo, hi)
        d = float(np.linalg.norm(pos - mic))
        if d >= spec.min_distance and (spec.d_max is None or d <= spec.d_max):
            return pos, rng
    raise ValueError(f"room spec {spec.name!r}: RIR {i}: no talker position satisfies "
                     f"min_distance={spec.min_distance} m / d_max={spec.d_max} m")


def _derive_seed(*key: int) -> int:
    return int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0])


def simulate_rir(spec: RoomSpec, i: int) -> tuple[np.ndarray, dict]:
    """Simulate RIR ``i`` of ``spec``.

    Returns ``(rir, meta)``: ``rir`` float32 [L] at ``spec.sample_rate``, truncated at -60 dB (see
    module doc), and ``meta`` with the ``META_COLUMNS`` keys (``split`` included).
    Raises IndexError when ``i`` is outside ``[0, spec.n_rirs)``.
    """
    import pyroomacoustics as pra

    if not 0 <= i < spec.n_rirs:
        raise IndexError(f"RIR index {i} outside [0, {spec.n_rirs}) of spec {spec.name!r}")
    g = i // group_size(spec)
    geo = group_geometry(spec, g)
    size, mic = geo["size"], geo["mic"]
    pos, trng = _talker_position(spec, i, size, mic)
    rt60 = float(trng.uniform(spec.rt60_min, spec.rt60_max)) if spec.rt60_per_rir else geo["rt60"]
    pra.random.seed(numpy=np.random.SeedSequence([spec.seed, 2, int(i)]),
                    libroom=_derive_seed(spec.seed, 2, int(i)))
    room, max_order = shoebox_room(size, rt60, spec.sample_rate)
    room.add_source(pos)
    room.add_microphone(np.asarray(mic))
    room.image_source_model()
    src = room.sources[0]
    direct = src.orders == 0
    src.images[:, direct] = np.asarray(pos, dtype=src.images.dtype)[:, None]  # exact direct path
    room.compute_rir()
    h_full = np.asarray(room.rir[0][0], dtype=np.float64)
    rt60_meas = float(room.measure_rt60()[0, 0])
    h = truncate_rir(h_full).astype(np.float32)
    meta = {
        "index": int(i), "group": int(g),
        "room_id": 0 if spec.fixed_room else int(g),
        "mic_id": 0 if spec.mic is not None else int(g),
        "split": SPLITS[int(split_assignment(spec)[i])],
        "room_x": size[0], "room_y": size[1], "room_z": size[2],
        "mic_x": mic[0], "mic_y": mic[1], "mic_z": mic[2],
        "talker_x": float(pos[0]), "talker_y": float(pos[1]), "talker_z": float(pos[2]),
        "distance": float(np.linalg.norm(np.asarray(pos) - np.asarray(mic))),
        "d_range": group_distance_range(size, mic, spec),
        "rt60_target": rt60, "rt60_measured": rt60_meas, "max_order": int(max_order),
        "length": int(len(h)), "sample_rate": int(spec.sample_rate),
    }
    return h, meta


# --------------------------------------------------------------------------- splits

def _cuts(n: int, ratios) -> tuple[int, int]:
    r = np.asarray(ratios, dtype=float)
    c = np.cumsum(r / r.sum())
    return int(round(n * c[0])), int(round(n * c[1]))


@functools.lru_cache(maxsize=8)
def _split_cached(seed: int, n_rirs: int, gsize: int, by_room: bool, ratios) -> np.ndarray:
    n_units = int(math.ceil(n_rirs / gsize)) if by_room else n_rirs
    perm = np.random.default_rng([seed, 3]).permutation(n_units)
    c1, c2 = _cuts(n_units, ratios)
    unit_split = np.empty(n_units, dtype=np.int8)
    unit_split[perm[:c1]] = 0
    unit_split[perm[c1:c2]] = 1
    unit_split[perm[c2:]] = 2
    if by_room:
        out = unit_split[np.arange(n_rirs) // gsize]
    else:
        out = unit_split
    out.setflags(write=False)
    return out


def split_assignment(spec: RoomSpec) -> np.ndarray:
    """Split of every RIR of the full bank: int8 [n_rirs], 0 train, 1 val, 2 test (see ``SPLITS``)."""
    return _split_cached(spec.seed, spec.n_rirs, group_size(spec), spec.split_by == "room",
                         tuple(float(r) for r in spec.split))
