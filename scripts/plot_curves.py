"""Training curves: validation SI-SDRi and absence output level against CPU-hours, one line per run.

    .venv/bin/python scripts/plot_curves.py OUT.png LABEL=runs/x/log.csv [LABEL=runs/y/log.csv ...]

Each ``log.csv`` is a trainer log (train/trainer.py): ``train_seconds`` (compute seconds spent in
training steps, summed over resumes) gives the x axis in hours; ``si_sdri_single`` (dB, single-talker
queries) and ``absence_level_db`` (dB re input, absence queries) the two panels; where a log has
``sep_si_sdri_single`` (SI-SDRi towards whichever talker the output is closer to, in logs of
PIT recipes) it is drawn dotted in the run's colour, and ``pit_fixed_si_sdri`` (the two outputs
queried at two fixed tokens, better assignment; logs of token recipes) dash-dotted. Dashed lines mark the
quality floors (3 dB SI-SDRi, -10 dB absence level). Where any log has ``swap_right_in_both`` (the
position-swap test on validation voice pairs, ``train/swaptest.py``) a third panel shows that
share against the same hours, with the 80 % floor and the 25 % of a model that ignores both
voice and distance.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path


def read_log(path: str | Path) -> dict[str, list[float]]:
    """Columns of a trainer log as float lists (blank cells become NaN).

    Raises:
        FileNotFoundError: no such file. KeyError: the log lacks a needed column.
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols = ("step", "train_seconds", "si_sdri_single", "absence_level_db")
    out = {c: [float(r[c]) if r.get(c) not in ("", None) else float("nan") for r in rows] for c in cols}
    for c in ("sep_si_sdri_single", "pit_fixed_si_sdri", "swap_right_in_both"):
        if rows and c in rows[0]:
            out[c] = [float(r[c]) if r.get(c) not in ("", None) else float("nan") for r in rows]
    return out


def plot(out: str | Path, runs: dict[str, str | Path]) -> None:
    """Write the PNG ``out`` for ``runs`` (label -> log.csv): two panels, three with swap-test logs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = {label: read_log(path) for label, path in runs.items()}
    swap = any("swap_right_in_both" in log for log in logs.values())
    fig, axes = plt.subplots(3 if swap else 2, 1, figsize=(7, 8.5 if swap else 6), sharex=True)
    a1, a2 = axes[0], axes[1]
    for label, log in logs.items():
        hours = [s / 3600 for s in log["train_seconds"]]
        line, = a1.plot(hours, log["si_sdri_single"], label=label)
        if "pit_fixed_si_sdri" in log:
            a1.plot(hours, log["pit_fixed_si_sdri"], ls="-.", c=line.get_color(),
                    label=f"{label}: separation through the two tokens")
        elif "sep_si_sdri_single" in log:
            a1.plot(hours, log["sep_si_sdri_single"], ls=":", c=line.get_color(),
                    label=f"{label}: separation (either talker)")
        a2.plot(hours, log["absence_level_db"], label=label)
        if swap:
            axes[2].plot(hours, [100 * v for v in log.get("swap_right_in_both", [float("nan")] * len(hours))],
                         label=label, c=line.get_color())
    if swap:
        axes[2].axhline(80.0, ls="--", c="grey", lw=0.8)
        axes[2].axhline(25.0, ls=":", c="grey", lw=0.8)
        axes[2].set_ylabel("swap test: right in both (%)")
        axes[2].set_ylim(0, 100)
        axes[2].grid(alpha=0.3)
    a1.axhline(3.0, ls="--", c="grey", lw=0.8)
    a2.axhline(-10.0, ls="--", c="grey", lw=0.8)
    a1.set_ylabel("val. SI-SDRi, single (dB)")
    a2.set_ylabel("absence output re input (dB)")
    axes[-1].set_xlabel("hours spent in training steps (wall clock, 1 thread, on 2 shared cores)")
    a1.legend(fontsize=8)
    a1.grid(alpha=0.3)
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or any("=" not in a for a in args[1:]):
        print(__doc__, file=sys.stderr)
        return 2
    plot(args[0], dict(a.split("=", 1) for a in args[1:]))
    print(f"wrote {args[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
