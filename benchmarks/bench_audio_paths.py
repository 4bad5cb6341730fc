"""End-to-end delay per audio path and block size, with the delay the app shows beside it.

    .venv/bin/python benchmarks/bench_audio_paths.py [--paths pulseaudio,pipewire-pulse,pipewire-jack]
        [--blocks 16,32,64] [--seconds 20] [--long-minutes 0] [--busy] [--long-paths PATHS]
        [--long-blocks 16] [--jitter-ms 8,5.33] [--merge]
        [--out benchmarks/results/audio_path_delay.json]

Paths: ``pulseaudio`` (a private PulseAudio, PortAudio's ALSA ``pulse`` device), ``pipewire-pulse``
(a private PipeWire + WirePlumber + pipewire-pulse under ``dbus-run-session``, the same ALSA
device) and ``pipewire-jack`` (the same PipeWire, PortAudio's JACK host API on PipeWire's libjack:
the app's low-latency path, ``realtime_tse.audio.host_path``). Each path runs in its own child
process (PortAudio, and which libjack it uses, is chosen once per process). The engine (shipped
model, scan on, defaults for everything else) runs between the measuring sinks of
``realtime_tse/testing/loopback.py`` (the same pactl topology on PulseAudio and on pipewire-pulse;
on the JACK path the engine opens the topology's ``dut_mic`` and ``meas_r`` nodes as JACK
devices): delay per 1 s window by cross-correlation, its drift, xruns after 2 s, and the delay
the engine reports (``total_latency_ms``, the median of the estimates at its latest block writes):
read every second while the harness plays (the row's ``trace``, whose median is the summary's
``shown_ms``, compared with the measured median) and once at the end (``reported_total_ms``, with
the parts of that estimate). ``--long-minutes`` adds one run of that length per
path and long block size (``--long-blocks``, 16 ms unless told; with ``--busy``: one more core kept
busy; ``--long-paths``: only on these paths); ``--blocks ''`` runs no short rows. ``--jitter-ms`` runs every row
once per jitter buffer start value given (``LiveConfig.jitter_ms``; default: the path's own). The
machine's load average is recorded with every row. ``--merge`` keeps the rows of the existing
``--out`` file that this run does not measure again (same path, block, length, busy core and
jitter start value), each marked ``kept_from`` with the date and command that measured it, so a
short re-run does not drop a long run's row; without it the file is replaced.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PATHS = ("pulseaudio", "pipewire-pulse", "pipewire-jack")


def run_path(path: str, blocks: list[float], seconds: float, long_minutes: float,
             busy: bool, jitters: list[float | None] = (None,),
             long_blocks: list[float] = (16.0,)) -> dict:
    """All rows of one path (this process: PortAudio is loaded here once): ``seconds`` long at
    each of ``blocks`` (ms), then ``long_minutes`` long at each of ``long_blocks`` (ms; with one
    more core busy where ``busy``), each once per jitter buffer start value in ``jitters`` (ms;
    None = the path's default)."""
    if path == "pipewire-pulse":
        os.environ["RTSE_AUDIO_PATH"] = "alsa"  # no JACK host API at all: the plain ALSA path
    from realtime_common import get_model  # noqa: PLC0415
    from realtime_e2e import SoundServer, bench_e2e, print_e2e  # noqa: PLC0415
    model, what = get_model(None)
    try:
        srv = SoundServer("pulseaudio" if path == "pulseaudio" else "pipewire")
    except Exception as e:  # noqa: BLE001
        return {"path": path, "skipped": str(e)}
    devices = ("dut_mic", "meas_r") if path == "pipewire-jack" else ("pulse", "pulse")
    rows = []
    try:
        from realtime_tse.audio import host_path  # noqa: PLC0415
        print(f"{path}: {srv.version}", flush=True)
        runs = [(b, seconds, False) for b in blocks]
        if long_minutes > 0:
            runs += [(b, 60.0 * long_minutes, busy) for b in long_blocks]
        for block, secs, b in runs:
            for jit in jitters:
                extra = {} if jit is None else {"jitter_ms": jit}
                r = bench_e2e(model, secs, block_ms=block, busy=b, devices=devices,
                              label=f"{path}, {block:g} ms" + (", busy core" if b else "")
                              + ("" if jit is None else f", jitter {jit:g} ms"), **extra)
                print_e2e(r)
                r["path"] = path
                r["jitter_ms_asked"] = jit
                rows.append(r)
        st = host_path.state()
        jack = {"libjack": st.libjack, "quantum": st.quantum, "why_not": st.why_not}
    finally:
        srv.stop()
    return {"path": path, "server": srv.version, "model": what, "jack": jack, "rows": rows}


def shown_while_measured(r: dict) -> float:
    """The delay the app showed while the measured audio played (ms): the median of the row's
    trace (the shown delay read every second, every 5 s in long runs, while the harness played),
    the same span the measured delay is the median over; the row's reading after the harness
    stopped (``reported_total_ms``) where it has no trace. That one reading has no measured
    window beside it: on pipewire-pulse one was 44 ms above the run's measured median while the
    readings during the run were 4 ms above."""
    shown = [t[1] for t in r.get("trace") or [] if t[1] is not None]
    return float(statistics.median(shown)) if shown else float(r["reported_total_ms"])


def _row_key(path: str, r: dict) -> tuple:
    """What makes two rows the same measurement: path, block, length, busy core, jitter asked."""
    return (path, r.get("block_ms"), r.get("seconds"), r.get("busy_core"), r.get("jitter_ms_asked"))


def merge_rows(results: list[dict], out: str) -> list[dict]:
    """Add to ``results`` (this run's paths) the rows of the file ``out`` that this run did not
    measure again (:func:`_row_key`), each with ``kept_from`` (the date and command of the run
    that measured it); a path this run skipped keeps its old entry. Returns what was kept (date,
    command, row count per earlier run) for the file's ``kept_rows``; [] when ``out`` does not
    exist or is not a results file."""
    try:
        old = json.loads(Path(out).read_text())
    except (OSError, ValueError):
        return []
    fresh = {_row_key(res["path"], r) for res in results for r in res.get("rows", [])}
    by_path = {res["path"]: res for res in results}
    kept: dict[tuple, int] = {}
    for res in old.get("paths", []):
        for r in res.get("rows", []):
            if _row_key(res["path"], r) in fresh:
                continue
            origin = r.get("kept_from") or {"date": old.get("date"), "command": old.get("command")}
            r = {**r, "kept_from": origin}
            now = by_path.get(res["path"])
            if now is None or "rows" not in now:  # a path this run did not measure at all
                entry = {**res, "rows": []}
                if now is not None:  # skipped this time: say why beside the rows kept
                    entry["skipped_now"] = now.get("skipped")
                    results.remove(now)
                results.append(entry)
                by_path[res["path"]] = now = entry
            now["rows"].append(r)
            k = (origin["date"], origin["command"])
            kept[k] = kept.get(k, 0) + 1
    return [{"date": d, "command": c, "rows": n} for (d, c), n in kept.items()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--blocks", default="16,32,64")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--long-minutes", type=float, default=0.0)
    ap.add_argument("--busy", action="store_true", help="one more core busy in the long runs")
    ap.add_argument("--long-paths", default=",".join(PATHS), help="the paths the long run is on")
    ap.add_argument("--long-blocks", default="16", help="block sizes of the long runs (ms)")
    ap.add_argument("--jitter-ms", default="", help="jitter buffer start values to run each row "
                    "with (ms, comma-separated; default: the path's own)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "audio_path_delay.json"))
    ap.add_argument("--merge", action="store_true", help="keep the rows of the existing --out "
                    "file that this run does not measure again")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child: one path -> --out
    a = ap.parse_args(argv)
    blocks = [float(b) for b in a.blocks.split(",") if b]
    long_blocks = [float(b) for b in a.long_blocks.split(",") if b]
    jitters = [float(j) for j in a.jitter_ms.split(",") if j] or [None]
    from realtime_tse.file_write import write_json_atomic  # noqa: PLC0415
    if a.one:
        write_json_atomic(a.out, run_path(a.one, blocks, a.seconds, a.long_minutes, a.busy,
                                          jitters, long_blocks))
        return 0
    load0 = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="rtse-paths-") as td:
        for path in a.paths.split(","):
            if path not in PATHS:
                raise SystemExit(f"unknown path {path!r} (one of {', '.join(PATHS)})")
            out = Path(td) / f"{path}.json"
            long_minutes = a.long_minutes if path in a.long_paths.split(",") else 0.0
            cmd = [sys.executable, __file__, "--one", path, "--blocks", a.blocks, "--seconds",
                   str(a.seconds), "--long-minutes", str(long_minutes), "--out", str(out),
                   "--jitter-ms", a.jitter_ms, "--long-blocks", a.long_blocks]
            if a.busy:
                cmd.append("--busy")
            rc = subprocess.run(cmd).returncode
            results.append(json.loads(out.read_text()) if out.exists()
                           else {"path": path, "skipped": f"child exited {rc}"})
    kept = merge_rows(results, a.out) if a.merge else []
    summary = []
    for res in results:
        for r in res.get("rows", []):
            if r.get("delay_ms") is None:
                continue
            summary.append({k: r.get(k) for k in (
                "path", "audio_path", "block_ms", "seconds", "busy_core", "delay_ms", "reported_total_ms",
                "drift_end_minus_start_ms", "drift_ms", "xruns_after_2s", "device_rate",
                "device_blocksize", "jitter_ms_asked", "jitter_ms", "output_rebuffers",
                "jitter_shrinks", "delay_p1_p99_ms", "load_average_start", "load_average")})
            if "kept_from" in r:
                summary[-1]["kept_from"] = r["kept_from"]
            s = summary[-1]
            s["shown_ms"] = shown_while_measured(r)
            s["shown_minus_measured_ms"] = s["shown_ms"] - s["delay_ms"]
    print("\npath            block  measured  shown  shown-meas  at end  drift  xruns>2s  run    load"
          "  jitter")
    for s in summary:
        print(f"{s['path']:<15} {s['block_ms']:4.0f}  {s['delay_ms']:7.1f}  {s['shown_ms']:6.1f}"
              f"  {s['shown_minus_measured_ms']:+8.1f}  {s['reported_total_ms']:6.1f}"
              f"  {s['drift_end_minus_start_ms']:+5.1f}"
              f"  {s['xruns_after_2s']:6d}  {s['seconds']:5.0f} s  {s['load_average']:.1f}"
              f"  {s['jitter_ms_asked'] or '-'}"
              + (f"  (kept, {s['kept_from']['date']})" if "kept_from" in s else ""))
    write_json_atomic(a.out, {
        "what": "end-to-end delay per audio path and block size, shown vs measured",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(),
        "cpus": os.cpu_count(), "load_average_start": load0, "load_average_end": os.getloadavg(),
        "summary": summary, "paths": results, **({"kept_rows": kept} if kept else {})})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
