"""Simulated RIR banks: build once (in parallel, shardable), cache on disk, load for mixing.

Each RIR is simulated by :func:`realtime_tse.train.rir_simulation.simulate_rir` (paper III-A: the randomised
image method, its determinism, the direct path, the truncation and the splits are described
there). RIR ``i`` depends only on ``(spec.seed, i)``, so any index range gives identical RIRs and a
cluster job array can build disjoint shards. soxr resamples when a model runs at another rate
(fast, high quality, a small binary wheel).

On disk (``out_dir``)
---------------------
* ``bank.json``: the RoomSpec, the sample rate, the direct-path offset and the format version.
  Building into a folder holding another spec raises ValueError.
* ``rirs_{start:06d}_{stop:06d}.npz``: ``index`` int64 [n], ``length`` int32 [n], ``rir`` float32
  [n, max_length] (zero padded).
* ``rirs_{start:06d}_{stop:06d}.csv``: one row per RIR, columns ``META_COLUMNS`` (metres, seconds).
  Written last: a shard with both files is complete and is skipped by later builds (cache).
  Files are written under temporary names and renamed, so builders running at once into one
  folder (job arrays, torchrun ranks) never leave a half-written shard.
Shards are aligned to multiples of ``shard_size`` (default 1000), so ranges built by different jobs
line up.

CLI::

    python -m realtime_tse.train.rirbank --preset d1 --out cache/rirs/d1 --start 0 --stop 1000 --workers 2
    python -m realtime_tse.train.rirbank --room my_room.toml --out cache/rirs/my_room
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from realtime_tse.models.acoustics import SPEED_OF_SOUND
from realtime_tse.train.rir_simulation import DIRECT_PATH_OFFSET, META_COLUMNS, SPLITS, simulate_rir
from realtime_tse.train.rooms import RoomSpec, load_room_toml, room_preset

__all__ = ["RIRBank", "build_bank", "shard_ranges", "main"]

FORMAT_VERSION = 1
_INT_COLS = {"index", "group", "room_id", "mic_id", "max_order", "length", "sample_rate"}
_STR_COLS = {"split"}


# --------------------------------------------------------------------------- building

def shard_ranges(start: int, stop: int, shard_size: int) -> list[tuple[int, int]]:
    """Cut ``[start, stop)`` at multiples of ``shard_size``: ``[(a, b), ...]``."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    out, a = [], start
    while a < stop:
        b = min(stop, (a // shard_size + 1) * shard_size)
        out.append((a, b))
        a = b
    return out


def _shard_stem(a: int, b: int) -> str:
    return f"rirs_{a:06d}_{b:06d}"


_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


@contextmanager
def _single_thread_env():
    """Children inherit one-thread BLAS/OpenMP settings (spawned workers read them at import)."""
    old = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _worker_init() -> None:
    os.environ.update({k: "1" for k in _THREAD_VARS})


def _simulate_chunk(spec: RoomSpec, indices: list[int]) -> list[tuple[np.ndarray, dict]]:
    return [simulate_rir(spec, i) for i in indices]


def _write_shard(out: Path, a: int, b: int, results: list[tuple[np.ndarray, dict]]) -> Path:
    results = sorted(results, key=lambda r: r[1]["index"])
    lengths = np.array([len(h) for h, _ in results], dtype=np.int32)
    arr = np.zeros((len(results), int(lengths.max())), dtype=np.float32)
    for k, (h, _) in enumerate(results):
        arr[k, :len(h)] = h
    index = np.array([m["index"] for _, m in results], dtype=np.int64)
    stem = _shard_stem(a, b)
    tmp_npz = out / f".{stem}.{os.getpid()}.tmp.npz"  # unique: parallel builders
    np.savez(tmp_npz, index=index, length=lengths, rir=arr)
    os.replace(tmp_npz, out / f"{stem}.npz")
    tmp_csv = out / f".{stem}.{os.getpid()}.tmp.csv"
    with open(tmp_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(META_COLUMNS))
        w.writeheader()
        for _, m in results:
            w.writerow({k: (f"{m[k]:.6f}" if isinstance(m[k], float) else m[k]) for k in META_COLUMNS})
    os.replace(tmp_csv, out / f"{stem}.csv")
    return out / f"{stem}.npz"


def _check_bank_json(out: Path, spec: RoomSpec) -> None:
    info = {"format_version": FORMAT_VERSION, "spec": spec.to_dict(),
            "sample_rate": spec.sample_rate, "direct_path_offset": DIRECT_PATH_OFFSET,
            "speed_of_sound": SPEED_OF_SOUND, "truncation_db": 60.0}
    p = out / "bank.json"
    if p.exists():
        old = json.loads(p.read_text())
        if RoomSpec.from_dict(old["spec"]) != spec:
            raise ValueError(f"{out} already holds a bank of another room spec "
                             f"({old['spec'].get('name')!r}, seed {old['spec'].get('seed')}); "
                             "use another --out folder")
        return
    tmp = out / f".bank.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, p)


def build_bank(spec: RoomSpec, out_dir: str | Path, start: int = 0, stop: int | None = None,
               workers: int = 2, progress: bool = True, shard_size: int = 1000,
               chunk: int | None = None) -> list[Path]:
    """Simulate RIRs ``[start, stop)`` of ``spec`` into ``out_dir`` (see module doc for the files).

    Args:
        spec: the scenario (``room_preset`` or ``load_room_toml``).
        out_dir: bank folder, created if needed.
        start, stop: RIR index range; ``stop=None`` means ``spec.n_rirs``.
        workers: worker processes (spawned, one BLAS/OpenMP thread each); ``<= 1`` runs in-process.
        progress: show a tqdm bar (RIRs).
        shard_size: shards are cut at multiples of this.
        chunk: RIRs per task sent to a worker (default: a balance of overhead and load).
    Returns the paths of the shard ``.npz`` files covering the range (built or already cached).
    Raises ValueError for a bad range or when ``out_dir`` holds a bank of another spec.
    """
    from tqdm import tqdm

    stop = spec.n_rirs if stop is None else int(stop)
    start = int(start)
    if not 0 <= start <= stop <= spec.n_rirs:
        raise ValueError(f"bad RIR range [{start}, {stop}) for a bank of {spec.n_rirs} RIRs")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_bank_json(out, spec)
    shards = shard_ranges(start, stop, shard_size)
    todo = [(a, b) for a, b in shards if not ((out / f"{_shard_stem(a, b)}.npz").exists()
                                               and (out / f"{_shard_stem(a, b)}.csv").exists())]
    paths = [out / f"{_shard_stem(a, b)}.npz" for a, b in shards]
    n_todo = sum(b - a for a, b in todo)
    if not todo:
        return paths
    bar = tqdm(total=n_todo, desc=f"RIRs {spec.name}", unit="rir", disable=not progress,
               dynamic_ncols=True)
    try:
        if workers <= 1:
            for a, b in todo:
                res = []
                for i in range(a, b):
                    res.append(simulate_rir(spec, i))
                    bar.update(1)
                _write_shard(out, a, b, res)
        else:
            import multiprocessing as mp
            if chunk is None:
                chunk = max(1, min(50, n_todo // (8 * workers) or 1))
            pending: dict[tuple[int, int], list] = {s: [] for s in todo}
            remaining = {s: b - a for s, (a, b) in zip(todo, todo)}
            with _single_thread_env(), ProcessPoolExecutor(
                    max_workers=workers, mp_context=mp.get_context("spawn"),
                    initializer=_worker_init) as ex:
                futs = {}
                for s in todo:
                    a, b = s
                    for c in range(a, b, chunk):
                        idx = list(range(c, min(b, c + chunk)))
                        futs[ex.submit(_simulate_chunk, spec, idx)] = s
                for fut in as_completed(futs):
                    s = futs[fut]
                    res = fut.result()
                    pending[s].extend(res)
                    remaining[s] -= len(res)
                    bar.update(len(res))
                    if remaining[s] == 0:
                        _write_shard(out, s[0], s[1], pending.pop(s))
    finally:
        bar.close()
    return paths


# --------------------------------------------------------------------------- loading

def _parse_meta_row(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if k in _STR_COLS:
            out[k] = v
        elif k in _INT_COLS:
            out[k] = int(v)
        else:
            out[k] = float(v)
    return out


class RIRBank:
    """A built RIR bank loaded from its folder (all shards found there).

    ``bank.rir(i, sample_rate)`` takes the *global* RIR index ``i`` (the ``index`` column), so a
    bank holding only a range of the full bank keeps its indices. For a full bank they are
    ``0 .. len-1``.

    Attributes:
        root: the folder. spec: the RoomSpec from ``bank.json``. sample_rate: simulation rate (Hz).
        meta: list of dicts (``META_COLUMNS``), sorted by index.
    Raises FileNotFoundError when the folder has no ``bank.json`` or no complete shard.
    """

    def __init__(self, root: str | Path, cache_size: int = 8192):
        self.root = Path(root)
        info_p = self.root / "bank.json"
        if not info_p.is_file():
            raise FileNotFoundError(f"{self.root}: not an RIR bank (no bank.json); build one with "
                                    "python -m realtime_tse.train.rirbank --preset d1 --out DIR")
        info = json.loads(info_p.read_text())
        self.spec = RoomSpec.from_dict(info["spec"])
        self.sample_rate = int(info["sample_rate"])
        self.direct_path_offset = int(info.get("direct_path_offset", DIRECT_PATH_OFFSET))
        rows: dict[int, dict] = {}
        self._where: dict[int, tuple[Path, int]] = {}
        for csv_p in sorted(self.root.glob("rirs_*.csv")):
            npz_p = csv_p.with_suffix(".npz")
            if not npz_p.exists():
                continue
            with open(csv_p, newline="") as f:
                for row_i, row in enumerate(csv.DictReader(f)):
                    m = _parse_meta_row(row)
                    if m["index"] not in rows:  # overlapping shards hold identical RIRs
                        rows[m["index"]] = m
                        self._where[m["index"]] = (npz_p, row_i)
        if not rows:
            raise FileNotFoundError(f"{self.root}: no complete shard (rirs_*.npz + .csv)")
        self.meta: list[dict] = [rows[k] for k in sorted(rows)]
        self._by_index = rows
        self._index = np.array([m["index"] for m in self.meta], dtype=np.int64)
        self._shards: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        self._cache_size = cache_size

    def __len__(self) -> int:
        return len(self.meta)

    def __repr__(self) -> str:
        return f"RIRBank({str(self.root)!r}, {len(self)} RIRs, spec {self.spec.name!r})"

    def meta_of(self, i: int) -> dict:
        """Metadata dict of RIR ``i`` (KeyError if the bank does not hold it)."""
        return self._by_index[int(i)]

    def indices(self, split: str | None = None) -> np.ndarray:
        """Global indices of the RIRs held, optionally of one split ("train", "val", "test")."""
        if split is None:
            return self._index.copy()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.array([m["index"] for m in self.meta if m["split"] == split], dtype=np.int64)

    def groups(self, indices=None) -> dict[int, np.ndarray]:
        """``{group: indices}`` for the given indices (default: all held)."""
        idx = self._index if indices is None else np.asarray(indices, dtype=np.int64)
        out: dict[int, list[int]] = {}
        for i in idx:
            out.setdefault(self._by_index[int(i)]["group"], []).append(int(i))
        return {g: np.array(v, dtype=np.int64) for g, v in out.items()}

    def distance(self, i: int) -> float:
        """Talker distance of RIR ``i`` in metres."""
        return self._by_index[int(i)]["distance"]

    def _load_shard(self, p: Path) -> tuple[np.ndarray, np.ndarray]:
        if p not in self._shards:
            with np.load(p) as z:
                rir, length = z["rir"], z["length"]
            rir.setflags(write=False)
            self._shards[p] = (rir, length)
        return self._shards[p]

    def rir(self, i: int, sample_rate: int | None = None) -> np.ndarray:
        """RIR ``i`` as float32 [L] (read-only), resampled with soxr if ``sample_rate`` differs.

        Raises KeyError if the bank does not hold RIR ``i``.
        """
        i = int(i)
        if i not in self._where:
            raise KeyError(f"RIR {i} is not in bank {self.root}")
        p, row = self._where[i]
        rir, length = self._load_shard(p)
        h = rir[row, :int(length[row])]
        if sample_rate is None or int(sample_rate) == self.sample_rate:
            return h
        key = (i, int(sample_rate))
        out = self._cache.get(key)
        if out is None:
            import soxr
            out = soxr.resample(h, self.sample_rate, int(sample_rate), quality="HQ").astype(np.float32)
            out.setflags(write=False)
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = out
        return out


# --------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m realtime_tse.train.rirbank",
                                 description="Simulate an RIR bank (paper III-A) into a folder.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", choices=["d1", "d2", "d3"], help="the paper's scenario")
    src.add_argument("--room", help="a TOML file describing your own room (see train/rooms.py)")
    ap.add_argument("--out", required=True, help="bank folder")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--stop", type=int, default=None, help="default: all RIRs of the spec")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--n-rirs", type=int, default=None, help="override the bank size of the spec")
    ap.add_argument("--seed", type=int, default=None, help="override the seed of the spec")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    try:
        spec = room_preset(a.preset) if a.preset else load_room_toml(a.room)
        changes = {k: v for k, v in (("n_rirs", a.n_rirs), ("seed", a.seed)) if v is not None}
        if changes:
            spec = spec.replace(**changes)
        paths = build_bank(spec, a.out, a.start, a.stop, workers=a.workers,
                           progress=not a.quiet, shard_size=a.shard_size)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    bank = RIRBank(a.out)
    d = np.array([m["distance"] for m in bank.meta])
    rt = np.array([m["rt60_measured"] for m in bank.meta])
    print(f"{a.out}: {len(paths)} shard(s) for [{a.start}, {a.stop if a.stop is not None else spec.n_rirs}); "
          f"bank holds {len(bank)} RIRs, distance {d.min():.2f}..{d.max():.2f} m, "
          f"measured RT60 {rt.mean():.3f} s (target {spec.rt60_min}..{spec.rt60_max} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
