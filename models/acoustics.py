"""Room acoustics shared by training and the product: figures of a room impulse response (RIR),
the Schroeder backward energy, the room TOML file's table and the simulated shoebox room.

Training builds its RIR banks with these (:mod:`realtime_tse.train.rir_simulation`,
:mod:`realtime_tse.train.rirbank`, :mod:`realtime_tse.train.rooms`) and the product measures and
plots a calibrated room with the same ones (:mod:`realtime_tse.calibration`), so a measured room and
its simulated twin are described alike.
Nothing here imports torch; scipy and pyroomacoustics load on first use.

Units: samples, seconds (s), Hz, dB, metres; ``h`` is a float RIR [L]. c = 343 m/s
(pyroomacoustics' ``constants.get("c")``). References: ISO 3382-1 (T30, the Schroeder integral, the
direct-sound window), A. Lundeby et al., "Uncertainties of measurements in room acoustics" (Acustica
1995) for the noise-crossing point.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np

__all__ = ["SPEED_OF_SOUND", "DIRECT_HALF_WINDOW_S", "RAND_ISM_DISPLACEMENT_M", "power_db",
           "direct_path_index", "decay_end", "rt60_s", "drr_db", "schroeder_energy",
           "energy_decay_db", "truncate_rir", "read_room_table", "room_vector", "shoebox_room"]

SPEED_OF_SOUND = 343.0     # m/s (pyroomacoustics.constants.get("c"))
DIRECT_HALF_WINDOW_S = 0.0025  # s either side of the direct path counted as direct sound (DRR)


def power_db(power: float, floor: float = 1e-20) -> float:
    """10 log10 of a power (dB), floored at ``floor`` (silence: -200 dB)."""
    return float(10.0 * np.log10(max(float(power), floor)))


def direct_path_index(h: np.ndarray, rel: float = 0.5) -> float:
    """Position (samples, sub-sample by a parabola through the peak) of the direct path in ``h``:
    the first sample whose magnitude reaches ``rel`` of the largest, then the magnitude's peak
    within the next 8 samples. The first arrival, not the strongest, since a reflection
    can outweigh the direct sound far from the loudspeaker. Raises ValueError for an all-zero h."""
    a = np.abs(np.asarray(h, dtype=np.float64))
    m = float(a.max()) if len(a) else 0.0
    if not m > 0:
        raise ValueError("the RIR is all zeros")
    i0 = int(np.argmax(a >= rel * m))
    i = i0 + int(np.argmax(a[i0:i0 + 8]))
    if 0 < i < len(a) - 1:
        y0, y1, y2 = a[i - 1], a[i], a[i + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            return float(i + 0.5 * (y0 - y2) / den)
    return float(i)


def _envelope(h: np.ndarray, n: int) -> np.ndarray:
    """Moving mean of h**2 over ``n`` samples (same length, centred)."""
    from scipy.ndimage import uniform_filter1d
    return uniform_filter1d(np.asarray(h, np.float64) ** 2, size=max(int(n), 1), mode="nearest")


def decay_end(h: np.ndarray, fs: int, onset: float) -> tuple[int, float]:
    """Where the decay of ``h`` (float [G], its last 10% noise only) meets its noise floor: the
    crossing of the noise level with a straight line fitted (in dB) to the 10 ms energy envelope
    from 5 dB below its peak down to 10 dB above the noise (one pass of Lundeby's method, ISO 3382
    annex). When less than 20 ms of decay lies in that range (a dry room, a short loop): the first
    time the envelope falls below the noise + 3 dB. Returns (end sample in h, noise power)."""
    h = np.asarray(h, dtype=np.float64)
    g = len(h)
    tail = h[int(0.9 * g):]
    noise = float(np.mean(tail ** 2)) if len(tail) else 0.0
    if not noise > 0:
        nz = np.flatnonzero(h)
        return (int(nz[-1]) + 1 if len(nz) else g), 0.0
    win = max(int(0.010 * fs), 1)
    env_db = 10.0 * np.log10(np.maximum(_envelope(h, win), 1e-30))
    i0 = int(onset)
    e = env_db[i0:int(0.9 * g)]
    n_db = 10.0 * np.log10(noise)
    top = int(np.argmax(e))
    below5 = np.flatnonzero(e[top:] <= e[top] - 5.0)
    above10 = np.flatnonzero(e[top:] <= n_db + 10.0)
    a = top + (int(below5[0]) if len(below5) else 0)
    b = top + (int(above10[0]) if len(above10) else len(e) - top)
    if b - a >= int(0.020 * fs):
        t = np.arange(a, b, dtype=np.float64)
        slope, icpt = np.polyfit(t, e[a:b], 1)
        if slope < 0:
            return i0 + int(min((n_db - icpt) / slope, len(e))), noise
    low = np.flatnonzero(e[top:] <= n_db + 3.0)
    return i0 + top + (int(low[0]) if len(low) else len(e) - top), noise


def rt60_s(h: np.ndarray, fs: int, decay_db: float = 30.0) -> float:
    """RT60 (s) of ``h`` by pyroomacoustics ``experimental.rt60.measure_rt60``: the Schroeder
    backward-integrated energy fitted from -5 dB over ``decay_db`` dB (30: T30) and extrapolated to
    60 dB (fewer dB when the decay's range is smaller)."""
    from pyroomacoustics.experimental.rt60 import measure_rt60
    return float(measure_rt60(np.asarray(h, np.float64), fs=fs, decay_db=decay_db))


def drr_db(h: np.ndarray, fs: int, onset: float, half_window_s: float = DIRECT_HALF_WINDOW_S
           ) -> float:
    """Direct-to-reverberant ratio (dB): energy of ``h`` within ``half_window_s`` (2.5 ms) of the
    direct path at sample ``onset`` over the energy after that window."""
    h = np.asarray(h, dtype=np.float64)
    w = int(round(half_window_s * fs))
    i = int(round(onset))
    direct = float(np.sum(h[max(i - w, 0):i + w + 1] ** 2))
    rev = float(np.sum(h[i + w + 1:] ** 2))
    return power_db(direct) - power_db(rev)


def energy_decay_db(h: np.ndarray, fs: int, onset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Schroeder energy decay curve from the direct path on: (t [K] s after ``onset``,
    EDC [K] dB re the total energy)."""
    h = np.asarray(h, dtype=np.float64)[int(onset):]
    e = schroeder_energy(h)
    e = np.maximum(e / max(e[0], 1e-30), 1e-12) if len(e) else e
    return np.arange(len(h)) / fs, 10.0 * np.log10(e)


def schroeder_energy(h: np.ndarray) -> np.ndarray:
    """Schroeder backward-integrated energy of ``h``: float64 [L], sample n holds the energy of
    ``h[n:]`` (sample 0 the total)."""
    return np.cumsum((np.asarray(h, dtype=np.float64) ** 2)[::-1])[::-1]


def truncate_rir(h: np.ndarray, decay_db: float = 60.0) -> np.ndarray:
    """Cut ``h`` where its Schroeder backward energy is ``decay_db`` below the total energy.

    Returns a prefix of ``h`` (at least one sample).
    """
    e = schroeder_energy(h)
    if e[0] <= 0:
        return h[:1]
    below = np.nonzero(e < e[0] * 10.0 ** (-decay_db / 10.0))[0]
    n = int(below[0]) if below.size else len(h)
    return h[:max(n, 1)]


def read_room_table(path) -> dict:
    """The table of a room TOML file (``size``, ``mic``, ``rt60``, ...: the keys each reader checks
    are its own, :func:`realtime_tse.train.rooms.load_room_toml` and
    :func:`realtime_tse.calibration.folder.read_room_toml`). Raises FileNotFoundError for a missing
    file, ValueError naming the file for text that is not TOML."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"room file not found: {p}")
    try:
        return tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{p}: not valid TOML: {e}") from e


def room_vector(table: dict, key: str, n: int, where, unit: str = "") -> tuple[float, ...]:
    """``table[key]`` as a tuple of ``n`` floats; ValueError ``"{where}: {key}: must be a list of n
    numbers{unit}, got ..."`` otherwise (``unit`` e.g. ``" (metres)"``)."""
    v = table.get(key)
    if not isinstance(v, list) or len(v) != n or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        raise ValueError(f"{where}: {key}: must be a list of {n} numbers{unit}, got {v!r}")
    return tuple(float(x) for x in v)


RAND_ISM_DISPLACEMENT_M = 0.08  # m: the randomised image method's displacement (paper ref. [16])


def shoebox_room(size, rt60: float, fs: int):
    """The simulated room of the paper's data (Sec. III-A): a pyroomacoustics ``ShoeBox`` of
    ``size`` (m) whose walls give ``rt60`` (s) by ``inverse_sabine``, randomised image method with
    8 cm displacement, at ``fs`` Hz. Seed pyroomacoustics (``pra.random.seed``) before calling it.
    Returns ``(room, max_order)``; raises ValueError when ``inverse_sabine`` cannot make this RT60
    in this room (too short for its size)."""
    import pyroomacoustics as pra  # noqa: PLC0415 (slow to import; only the simulators need it)
    e_abs, max_order = pra.inverse_sabine(float(rt60), list(size))
    room = pra.ShoeBox(list(size), fs=fs, materials=pra.Material(e_abs), max_order=max_order,
                       use_rand_ism=True, max_rand_disp=RAND_ISM_DISPLACEMENT_M)
    return room, max_order
