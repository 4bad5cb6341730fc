"""The calibration's picture: the measured RIRs' energy decay and DRR against distance, beside the
same room as the simulator makes it (what a bank built from ``room.toml`` would hold).

The simulated reference is the room ``train/rir_simulation.py`` simulates
(:func:`realtime_tse.models.acoustics.shoebox_room`: a ``ShoeBox`` with wall materials from
``inverse_sabine(rt60, size)``, randomised image method with 8 cm displacement), one talker per
distance at talking height (1.6 m, else 1.2 to 2.0 m) in the first direction from the microphone
that stays 0.3 m from the walls.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime_tse.models.acoustics import direct_path_index, drr_db, energy_decay_db, rt60_s, shoebox_room

from ..file_write import atomic_path

__all__ = ["simulate_reference", "load_rirs", "plot_calibration", "talker_position"]

REF_RATE = 16000  # Hz of the simulated reference (the models' rate)


def talker_position(size, mic, d: float, margin: float = 0.3):
    """A point ``d`` m from ``mic`` inside the room ``size`` (m), ``margin`` m from the walls, at
    talking height (1.6 m first, then 1.4, 1.8, 1.2, 2.0 m) in the first of 72 directions that fits;
    None if there is none."""
    mic = np.asarray(mic, float)
    for z in (1.6, 1.4, 1.8, 1.2, 2.0):
        dz = z - mic[2]
        if abs(dz) > d or not margin <= z <= size[2] - margin:
            continue
        r = np.sqrt(d * d - dz * dz)
        for a in np.linspace(0, 2 * np.pi, 72, endpoint=False):
            p = mic + np.array([r * np.cos(a), r * np.sin(a), dz])
            if all(margin <= p[k] <= size[k] - margin for k in range(3)):
                return p
    return None


def simulate_reference(setup, rt60: float, distances, fs: int = REF_RATE, seed: int = 0
                       ) -> dict | None:
    """The room as simulated: ``{"rt60_target_s", "rt60_s" (median measured on the simulated
    RIRs, T30), "distances_m" [K], "drr_db" [K], "rt60s_s" [K], "rirs" [K arrays at fs],
    "onsets" [K samples], "sample_rate"}``, for the distances that fit in the room.

    ``setup``: :class:`realtime_tse.calibration.folder.RoomSetup`; ``rt60`` s. Returns None when
    the simulator cannot make this RT60 in this room (pyroomacoustics' ``inverse_sabine`` raises
    for an RT60 too short for the room) or no distance fits.
    """
    import pyroomacoustics as pra
    size = [float(s) for s in setup.size_m]
    try:
        shoebox_room(size, rt60, fs)  # the simulator cannot make every RT60 in every room
    except ValueError:
        return None
    out = {"rt60_target_s": float(rt60), "distances_m": [], "drr_db": [], "rt60s_s": [],
           "rirs": [], "onsets": [], "sample_rate": int(fs)}
    for k, d in enumerate(distances):
        src = talker_position(size, setup.mic_m, float(d))
        if src is None:
            continue
        pra.random.seed(seed * 1000 + k)
        room, _ = shoebox_room(size, rt60, fs)
        room.add_source(list(src))
        room.add_microphone(list(setup.mic_m))
        room.compute_rir()
        h = np.asarray(room.rir[0][0], dtype=np.float64)
        on = direct_path_index(h)
        out["distances_m"].append(float(d))
        out["rirs"].append(h)
        out["onsets"].append(on)
        out["drr_db"].append(drr_db(h, fs, on))
        out["rt60s_s"].append(rt60_s(h[int(on):], fs))
    if not out["rirs"]:
        return None
    out["rt60_s"] = float(np.median(out["rt60s_s"]))
    return out


def load_rirs(folder, takes: list[dict]) -> list[dict]:
    """The measured RIRs for :func:`plot_calibration`: each take's JSON figures plus ``rir``
    (float [L]) read from ``folder / take["file"]``."""
    import soundfile as sf
    out = []
    for t in takes:
        h, fs = sf.read(str(Path(folder) / t["file"]), dtype="float64")
        out.append({**t, "rir": h, "sample_rate": int(fs)})
    return out


def plot_calibration(measured: list[dict], reference: dict | None, path, title: str = "") -> Path:
    """Two panels as a PNG (matplotlib, Agg): left, the Schroeder energy decay (dB) of each
    measured RIR from its direct path (solid) and of the simulated one at the same distance
    (dashed); right, DRR (dB) against distance (m), measured (dots) and simulated (crosses).

    ``measured``: dicts with ``rir``, ``sample_rate``, ``distance_m``, ``direct_s``, ``drr_db``,
    ``rt60_s`` (:func:`load_rirs`). Returns the path. Raises OSError when it cannot be written.
    """
    # matplotlib's object API with the Agg canvas, not pyplot: this runs on the calibration
    # dialog's helper thread in a Qt process, where pyplot's global state (its backend, which
    # matplotlib.use(..., force=True) would switch for the whole process, closing every pyplot
    # figure from this thread) must not be touched
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    p = Path(path)
    fig = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    dists = sorted({m["distance_m"] for m in measured})
    cmap = matplotlib.colormaps["viridis"]
    color = {d: cmap(i / max(len(dists) - 1, 1)) for i, d in enumerate(dists)}
    seen = set()
    for m in measured:
        fs = m["sample_rate"]
        t, edc = energy_decay_db(m["rir"], fs, m["direct_s"] * fs)
        d = m["distance_m"]
        ax1.plot(t, edc, "-", color=color[d], lw=1.2,
                 label=None if d in seen else f"{d:g} m measured")
        seen.add(d)
    if reference:
        fs = reference["sample_rate"]
        for d, h, on in zip(reference["distances_m"], reference["rirs"], reference["onsets"]):
            t, edc = energy_decay_db(h, fs, on)
            ax1.plot(t, edc, "--", color=color.get(d, "grey"), lw=1.0, alpha=0.8)
        ax1.plot([], [], "--", color="grey", label="simulated")
    ax1.set_ylim(-65, 2)
    ax1.set_xlabel("time after the direct path (s)")
    ax1.set_ylabel("energy decay (dB)")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7, ncol=2)
    rt_meas = float(np.median([m["rt60_s"] for m in measured]))
    ax1.set_title(f"energy decay (Schroeder): RT60 measured {rt_meas:.2f} s"
                  + (f", simulated {reference['rt60_s']:.2f} s" if reference else ""), fontsize=9)
    ax2.plot([m["distance_m"] for m in measured], [m["drr_db"] for m in measured], "o",
             color="tab:blue", label="measured")
    if reference:
        ax2.plot(reference["distances_m"], reference["drr_db"], "x--", color="tab:orange",
                 label="simulated")
    ax2.axhline(0.0, color="k", lw=0.6, alpha=0.5)
    ax2.set_xlabel("distance (m)")
    ax2.set_ylabel("DRR (dB)")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    ax2.set_title("direct-to-reverberant ratio against distance", fontsize=9)
    fig.suptitle(f"room calibration {title}".strip(), fontsize=10)
    fig.tight_layout()
    with atomic_path(p) as tmp:  # whole or not at all
        fig.savefig(tmp, format=p.suffix.lstrip(".").lower() or "png")
    return p

