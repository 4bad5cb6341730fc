"""Write ``benchmarks/results/latest.json``: the few figures the README quotes, each copied from the
result file that measured it (named inside), with the machine and the date of the measurement.

    .venv/bin/python benchmarks/make_latest.py [--check]

``--check`` rewrites nothing and exits 1 when ``latest.json`` differs from what its sources say.
The position-swap row comes from the shipped model's swap test (``scripts/swap_test.py --json``,
``SWAP``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parents[1]
SHIPPED = "assets/models/lite-lstm-d1.safetensors"
QUALITY = "eval_d1_test_lite-lstm-d1_6569841d.json"
UNSEEN = "eval_tts_voices_lite-lstm-d1_6569841d.json"
LIVE = "realtime.json"
SPEED = "models_live_presets.json"
SWAP = "swap_test_lite-lstm-d1_6569841d.json"
PATHS = "audio_path_delay.json"
# dates of the files that record none (the commit that added their figures)
QUALITY_DATE = "2026-12-07"
SPEED_DATE = "2026-11-30"
MACHINE = "2 shared x86_64 cores (a VM), torch 2.13.0+cpu, other jobs running unless noted"
QUALITY_KEYS = ["si_sdri_single", "sdri_single", "sdr", "pesq", "absence_level_db", "mae_m",
                "two_peak_err_m", "const_2p5_mae_m", "det_found"]


def swap_test() -> dict:
    """The shipped model's position-swap figures: shares of queries leaning right and of (pair,
    position) right in both renderings, per speech set, and the demo's contrast both ways (dB)."""
    d = _load(SWAP)
    (m,) = d["models"].values()
    sets = {("heldout_speakers" if name.startswith("test split") else "unseen_voices"): r
            for name, r in m["sets"].items()}
    out = {"source": SWAP, "date": d.get("date"), "pairs": d["pairs"]}
    for k, r in sets.items():
        out[k] = {"leans_right": round(r["leans_right"], 3), "right_in_both": round(r["right_in_both"], 3),
                  "same_voice_wins": round(r["same_voice_wins"], 3),
                  "mean_contrast_db": round(r["mean_contrast_db"], 2)}
    out["demo_contrast_db"] = {name: [row["1m"], row["3m"]] for name, row in m["demo"].items()}
    return out


def audio_paths() -> dict:
    """Delay per audio path at 16 ms blocks (the JACK path's goal), measured and shown (ms), and
    the long runs with one more core busy, keyed "PATH, BLOCK ms" (median, 1st..99th percentile,
    drift, xruns)."""
    d = _load(PATHS)
    rows = [r for r in d["summary"] if r["block_ms"] == 16.0 and not r["busy_core"]]
    long_rows = [r for r in d["summary"] if r["busy_core"]]
    return {"source": PATHS, "date": d["date"][:10], "block_ms": 16.0,
            "rows": {r["path"]: {"measured_ms": round(r["delay_ms"], 1),
                                 "shown_ms": round(r.get("shown_ms", r["reported_total_ms"]), 1),
                                 "xruns_after_2s": r["xruns_after_2s"],
                                 "seconds": r["seconds"],
                                 "load_average": round(r["load_average"], 1)} for r in rows},
            "long_busy_core": {f"{r['path']}, {r['block_ms']:g} ms": _long_row(r)
                               for r in long_rows if r.get("delay_p1_p99_ms")}}


def _long_row(r: dict) -> dict:
    """One long run's figures for latest.json (ms, minutes)."""
    return {"measured_ms": round(r["delay_ms"], 1),
            "shown_ms": round(r.get("shown_ms", r["reported_total_ms"]), 1),
            "p1_p99_ms": [round(x, 1) for x in r["delay_p1_p99_ms"]],
            "drift_ms": round(r["drift_end_minus_start_ms"], 1),
            "xruns_after_2s": r["xruns_after_2s"], "minutes": round(r["seconds"] / 60.0, 1),
            "load_average": round(r["load_average"], 1)}


def _load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def build() -> dict:
    q = _load(QUALITY)
    shipped = q["checkpoints"]["lite-lstm-d1"]
    m = q["models"]["lite-lstm-d1"]
    u = _load(UNSEEN)["models"]["lite-lstm-d1"]
    live = _load(LIVE)
    l32 = live["end_to_end_long_busy_core"]["long_pulseaudio_32ms_busy_default"]
    l64 = live["end_to_end_jitter_shrink"]["long_pulseaudio_64ms"]
    (row,) = [r for r in _load(SPEED)["rows"] if r["preset"] == "lite-lstm" and r["threads"] == 1]

    def delay(key, name, r):
        return {"source": f"{LIVE}: {key}.{name}", "date": r["date"][:10], "block_ms": r["block_ms"],
                "median_ms": round(r["delay_ms"], 1),
                "p1_p99_ms": [round(x, 1) for x in r["delay_p1_p99_ms"]],
                "drift_ms": round(r["drift_end_minus_start_ms"], 1),
                "xruns_after_2s": r["xruns_after_2s"], "algorithmic_ms": r["algorithmic_ms"],
                "one_more_core_busy": r["busy_core"],
                "load_average": [round(r["load_average_start"], 1), round(r["load_average"], 1)]}

    return {
        "model": {"file": SHIPPED, "sha256": shipped["sha256"], "step": shipped["step"]},
        "machine": MACHINE,
        "quality": {"source": QUALITY, "date": QUALITY_DATE, "split": "D1 test split: unseen speakers and RIRs, "
                    f"{q['repeats']} x {q['mixtures_per_repeat']} mixtures of {q['clip_s']:g} s",
                    "mean": {k: round(m["mean"][k], 3) for k in QUALITY_KEYS},
                    "std": {k: round(m["std"][k], 3) for k in QUALITY_KEYS},
                    "unseen_voices": {"source": UNSEEN,
                                      "si_sdri_single": round(u["mean"]["si_sdri_single"], 3),
                                      "sdri_single": round(u["mean"]["sdri_single"], 3)},
                    "swap_test": swap_test()},
        "latency": [delay("end_to_end_long_busy_core", "long_pulseaudio_32ms_busy_default", l32),
                    delay("end_to_end_jitter_shrink", "long_pulseaudio_64ms", l64)],
        "latency_paths": audio_paths(),
        "speed": {"source": f"{SPEED} (lite-lstm, 1 torch thread, {row['sample_rate']} Hz)",
                  "date": SPEED_DATE,
                  "parameters": row["parameters"], "offline_rtf": round(row["offline_rtf"], 4),
                  "stream_rtf_blocks_1_4_8_hops": [round(row[f"stream_rtf_block{k}"], 3)
                                                   for k in (1, 4, 8)]},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    text = json.dumps(build(), indent=2) + "\n"
    out = RESULTS / "latest.json"
    if a.check:
        same = out.is_file() and out.read_text() == text
        print("latest.json matches its sources" if same else "latest.json is out of date")
        return 0 if same else 1
    out.write_text(text)
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
