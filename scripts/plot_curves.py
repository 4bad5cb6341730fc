"""Training curves: validation SI-SDRi and absence output level against CPU-hours, one line per run.

    .venv/bin/python scripts/plot_curves.py OUT.png LABEL=runs/x/log.csv [LABEL=runs/y/log.csv ...]

Each ``log.csv`` is a trainer log (train/trainer.py): ``train_seconds`` (compute seconds spent in
training steps, summed over resumes) gives the x axis in hours; ``si_sdri_single`` (dB, single-talker
queries) and ``absence_level_db`` (dB re input, absence queries) the two panels; where a log has
``sep_si_sdri_single`` (SI-SDRi towards whichever talker the output is closer to, in logs of
PIT recipes) it is drawn dotted in the run's colour, and ``pit_fixed_si_sdri`` (the two outputs
queried at two fixed tokens, better assignment; logs of token recipes) dash-dotted. Dashed lines mark the
quality floors (3 dB SI-SDRi, -10 dB absence level).
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
    for c in ("sep_si_sdri_single", "pit_fixed_si_sdri"):
        if rows and c in rows[0]:
            out[c] = [float(r[c]) if r.get(c) not in ("", None) else float("nan") for r in rows]
    return out


def plot(out: str | Path, runs: dict[str, str | Path]) -> None:
    """Write the two-panel PNG ``out`` for ``runs`` (label -> log.csv)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for label, path in runs.items():
        log = read_log(path)
        hours = [s / 3600 for s in log["train_seconds"]]
        line, = a1.plot(hours, log["si_sdri_single"], label=label)
        if "pit_fixed_si_sdri" in log:
            a1.plot(hours, log["pit_fixed_si_sdri"], ls="-.", c=line.get_color(),
                    label=f"{label}: separation through the two tokens")
        elif "sep_si_sdri_single" in log:
            a1.plot(hours, log["sep_si_sdri_single"], ls=":", c=line.get_color(),
                    label=f"{label}: separation (either talker)")
        a2.plot(hours, log["absence_level_db"], label=label)
    a1.axhline(3.0, ls="--", c="grey", lw=0.8)
    a2.axhline(-10.0, ls="--", c="grey", lw=0.8)
    a1.set_ylabel("val. SI-SDRi, single (dB)")
    a2.set_ylabel("absence output re input (dB)")
    a2.set_xlabel("hours spent in training steps (wall clock, 1 thread, on 2 shared cores)")
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
