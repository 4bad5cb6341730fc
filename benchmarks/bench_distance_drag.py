"""What moving the distance slider costs the live path.

    .venv/bin/python benchmarks/bench_distance_drag.py [--seconds 20] [--model CKPT]
        [--no-pulse] [--out benchmarks/results/distance_drag.json]

1. The cost of one distance change (a re-prime: the model re-runs its last ``reprime_frames``
   frames under the new distance) per block size: ``Streamer.process`` per block at a fixed
   distance and with a new distance every block (median ms over 200 blocks), the re-prime's cost
   (the difference) and the real-time factor of a block that re-primes (its share of the block's
   duration).
2. A drag: the live engine on the demo file (paced in real time, no device), 32 ms blocks, scan and
   recording on, a new distance every 10 ms for ``--seconds``; beside it the same run at a fixed
   distance. Xruns, the engine's RTF, blocks, re-primes, the distance changes the recording noted,
   the recorded length against the wall time.
3. The same drag through real audio devices: a private PulseAudio daemon (``scripts/pulse.sh``);
   the demo plays in a loop (paplay) into a second null sink whose monitor is the microphone,
   the extraction plays into the daemon's null sink (PortAudio's "pulse" device, separate input
   and output streams). Skipped with ``--no-pulse`` or where PulseAudio is missing (the JSON
   says why).

The model runs on one CPU thread, as live. Prints the figures and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from realtime_tse.file_write import write_json_atomic  # noqa: E402

DEMO = REPO / "assets" / "demo" / "demo_mix.wav"
PULSE_SH = REPO / "scripts" / "pulse.sh"


def reprime_cost(model, block_ms_list=(16, 32, 64, 128), blocks: int = 200) -> list[dict]:
    """Per block size: ms per ``Streamer.process`` block at a fixed distance and with a new
    distance every block (medians), their difference (one re-prime) and the RTF of a block that
    re-primes."""
    x, sr = sf.read(DEMO, dtype="float32")
    from realtime_tse.model import resample
    x = resample(x, sr, model.sample_rate)
    rows = []
    for bms in block_ms_list:
        fixed, moving = model.stream(block_ms=bms, aligned=True), model.stream(block_ms=bms,
                                                                                aligned=True)
        B = fixed.block_samples
        t_fix, t_mov = [], []
        for i in range(blocks):
            k = (i * B) % (len(x) - B)
            blk = x[k:k + B]
            t = time.perf_counter()
            fixed.process(blk, 1.0)
            t_fix.append(time.perf_counter() - t)
            t = time.perf_counter()
            moving.process(blk, 1.0 + 0.01 * (i % 200))
            t_mov.append(time.perf_counter() - t)
        block_s = B / model.sample_rate
        f, m = 1e3 * float(np.median(t_fix[10:])), 1e3 * float(np.median(t_mov[10:]))
        rows.append({"block_ms": 1e3 * block_s, "fixed_ms": round(f, 3), "moving_ms": round(m, 3),
                     "reprime_ms": round(m - f, 3), "reprimes": moving.reprimes,
                     "rtf_fixed": round(f / (1e3 * block_s), 3),
                     "rtf_reprime_every_block": round(m / (1e3 * block_s), 3),
                     "moving_p95_ms": round(1e3 * float(np.percentile(t_mov[10:], 95)), 3)})
    return rows


def drag_run(model, seconds: float, drag: bool, **live) -> dict:
    """The live engine for ``seconds`` with a new distance every 10 ms (``drag``) or a fixed one;
    recording and scan on. ``live``: LiveConfig settings (default: the demo file, no device)."""
    from realtime_tse.live.engine import LiveEngine
    settings = dict(input_file=str(DEMO), loop=True, output_device="null")
    settings.update(live)
    eng = LiveEngine(model, block_ms=32, distance_m=1.5, torch_threads=1, **settings)
    folder = Path(tempfile.mkdtemp(prefix="rtse-drag-"))
    try:
        rec = eng.start_recording(folder / "drag.wav")
        eng.start()
        t0, moves = time.monotonic(), 0
        try:
            while (now := time.monotonic()) - t0 < seconds:
                if drag:
                    eng.distance_m = 1.5 + math.sin(2 * math.pi * 0.4 * (now - t0))
                    moves += 1
                time.sleep(0.01)
            st = eng.stats()
            blocks = eng.stream.blocks_processed
        finally:
            eng.stop()
        wall = time.monotonic() - t0
        doc = json.loads(rec.sidecar_path.read_text())
        return {"drag": drag, "seconds": round(wall, 2), "distance_moves": moves,
                "mode": st.stream.get("mode"), "xruns": st.xruns, "rtf": round(st.rtf, 3),
                "mean_process_ms": round(1e3 * st.stream.get("mean_process_s", 0.0), 3),
                "max_process_ms": round(1e3 * st.stream.get("max_process_s", 0.0), 2),
                "blocks": blocks, "reprimes": eng.streamer.reprimes,
                "recorded_changes": len(doc["distance_changes"]),
                "recorded_s": round(sf.info(str(rec.path)).duration, 3),
                "stall_restarts": st.stream.get("stall_restarts", 0),
                "late_underflows": st.stream.get("late_underflows", 0),
                "output_underflows": st.stream.get("output_underflows", 0),
                "error": st.error or eng.recording_error}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def with_pulse(fn):
    """Run ``fn()`` with a private PulseAudio daemon (null sink; its monitor as the source);
    returns (result, None) or (None, why it could not run)."""
    if not shutil.which("pulseaudio"):
        return None, "pulseaudio is not installed"
    d = tempfile.mkdtemp(prefix="rtse-drag-pulse-")
    env = {**os.environ, "RTSE_PULSE_DIR": d}
    saved = {k: os.environ.get(k) for k in ("PULSE_SERVER", "PULSE_RUNTIME_PATH",
                                             "PULSE_STATE_PATH", "PULSE_SOURCE", "PULSE_SINK")}
    try:
        r = subprocess.run(["bash", str(PULSE_SH), "start"], env=env, capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            return None, f"scripts/pulse.sh start failed: {r.stderr.strip()[-300:]}"
        for line in r.stdout.splitlines():
            if line.startswith("export "):
                k, v = line[len("export "):].split("=", 1)
                os.environ[k] = v
        pa_env = {**os.environ}
        subprocess.run(["pactl", "load-module", "module-null-sink", "sink_name=talkers",
                        "rate=16000", "channels=1"], env=pa_env, check=True, capture_output=True,
                       timeout=30)
        player = subprocess.Popen(["bash", "-c", f"while true; do paplay --device=talkers "
                                   f"'{DEMO}' || exit 1; done"], env=pa_env,
                                  start_new_session=True)
        try:
            time.sleep(0.5)
            os.environ["PULSE_SOURCE"] = "talkers.monitor"
            os.environ["PULSE_SINK"] = "vsink"
            return fn(), None
        finally:
            os.killpg(player.pid, 15)
            player.wait(10)
    except Exception as e:  # noqa: BLE001  (no PortAudio, device errors: said in the JSON)
        return None, f"{type(e).__name__}: {e}"
    finally:
        subprocess.run(["bash", str(PULSE_SH), "stop"], env=env, capture_output=True, timeout=60)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(d, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each drag run (s)")
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--no-pulse", action="store_true", help="skip the real-audio run")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "distance_drag.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from realtime_tse.model import load_model
    model = load_model(args.model, device="cpu")
    res = {"model": model.name, "preset": model.config.preset, "sample_rate": model.sample_rate,
           "hop": model.config.hop, "reprime_frames": model.config.reprime_frames,
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "load_1min": round(os.getloadavg()[0], 2)},
           "torch_threads": 1}
    res["reprime_cost"] = reprime_cost(model)
    print(f"one distance change (re-prime of {model.config.reprime_frames} frames), "
          f"{model.name} ({model.config.preset}, {model.sample_rate} Hz):")
    for r in res["reprime_cost"]:
        print(f"  {r['block_ms']:5.0f} ms blocks: {r['fixed_ms']:.2f} ms a block at a fixed "
              f"distance, {r['moving_ms']:.2f} ms with a new distance (re-prime "
              f"{r['reprime_ms']:.2f} ms); RTF {r['rtf_fixed']:.3f} -> "
              f"{r['rtf_reprime_every_block']:.3f}")
    runs = []
    for drag in (True, False):
        r = drag_run(model, args.seconds, drag)
        runs.append(r)
        print(f"{'drag (new distance every 10 ms)' if drag else 'fixed distance':32s} file -> "
              f"no device: {r['seconds']:.1f} s, xruns {r['xruns']}, RTF {r['rtf']:.3f}, "
              f"blocks {r['blocks']}, re-primes {r['reprimes']}, changes noted "
              f"{r['recorded_changes']}, recorded {r['recorded_s']:.2f} s")
    res["drag_file"] = runs
    if args.no_pulse:
        res["drag_pulse"], why = None, "skipped (--no-pulse)"
    else:
        res["drag_pulse"], why = with_pulse(lambda: [drag_run(
            model, args.seconds, drag, input_file=None, loop=False, input_device="pulse",
            output_device="pulse") for drag in (True, False)])
    if why:
        res["drag_pulse_skipped"] = why
        print(f"drag through PulseAudio: not run ({why})")
    else:
        for r in res["drag_pulse"]:
            print(f"{'drag' if r['drag'] else 'fixed distance'} through PulseAudio (null sinks, "
                  f"{r['mode']}): {r['seconds']:.1f} s, xruns {r['xruns']}, RTF {r['rtf']:.3f}, "
                  f"blocks {r['blocks']}, re-primes {r['reprimes']}, recorded "
                  f"{r['recorded_s']:.2f} s, stall restarts {r['stall_restarts']}"
                  + (f", error {r['error']}" if r["error"] else ""))
    out = write_json_atomic(args.out, res)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
