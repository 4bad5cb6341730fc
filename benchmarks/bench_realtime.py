"""Live engine figures: streaming RTF per block size and thread count, a long run through a
PulseAudio loopback (xruns, measured input-to-output delay, algorithmic latency), and the rate of
the distance scan while streaming.

    .venv/bin/python benchmarks/bench_realtime.py [--model CKPT] [--servers pulseaudio,pipewire]
                                                  [--e2e-seconds 12] [--long-seconds 120]
                                                  [--out benchmarks/results/realtime.json]

Model: the shipped checkpoint when present (or --model), else a randomly initialised lite-causal
net (speed does not depend on the weights); the JSON says which. Sections:

1. ``streaming``: ``Streamer.process`` (the engine's real block path: numpy in, model step,
   numpy out) on 8 s of the demo, blocks of 16/32/64/128 ms, 1 and 2 torch threads: RTF = compute
   time / audio time, and per-block mean / 95th percentile / max in ms.
2. ``end_to_end``: ``LiveEngine`` (shipped model, distance scan on) between the measuring sinks of
   ``realtime_tse/testing/loopback.py`` on a private PulseAudio and on PipeWire-Pulse (under
   ``dbus-run-session``), demo speech played in: the microphone-to-speaker delay per 1 s window by
   cross-correlation of two channels recorded in one stream (no harness delay to subtract), its
   drift, xruns after the first 2 s, drops and stall restarts, and the delay the engine itself
   reports (``total_latency_ms``). The stream options (duplex vs separate streams, PortAudio
   latency, device period, jitter buffer, device rate) are compared at 64 and 32 ms blocks; the
   default settings then run ``--long-seconds`` as they are and with one more core kept busy.
3. ``scan_file``: the same engine fed from the demo file (no devices) for 20 s with 2 torch
   threads (and 1, ``scan_file_1_thread``), for the scan rate without PulseAudio: updates per
   second of wall time, the scan's compute per audio second (``scan_rtf``), skip-aheads, and the
   audio worker's RTF while scanning. Causal models use the incremental streaming scan
   (``realtime_tse.scan.live_scan.StreamingScanWorker``), bidirectional ones the window scan.
   ``--only scan`` runs this section alone and updates it in an existing JSON.
4. ``end_to_end_scan_modes`` (``--only scan-modes``, PulseAudio): the default settings for
   ``--long-seconds`` at 64 and 32 ms blocks with the distance scan off, in its own process (the
   default, ``realtime_tse.scan.process``) and in a thread of the audio process
   (``RTSE_SCAN_PROCESS=0``, the fallback when no child process can start), interleaved per block size;
   ``--busy-core`` adds the same with one more core kept busy. Merged into an existing JSON.
5. ``gil_probe`` (``--only gil``): what the scan costs the audio process itself, without sound
   server noise: a file-fed engine (no devices) per scan mode, and beside it a probe thread that
   wakes every 8 ms like a PortAudio callback (nice -10 where allowed, as the stream's threads) and
   records how late it runs (scheduling + waiting for the GIL), with the audio worker's time per
   block. The scan child is ready before measuring (its start-up is not in it); rounds interleave
   the modes. Merged into an existing JSON.
6. ``end_to_end_sched`` (``--only sched [--servers pulseaudio|pipewire] [--seconds 30]
   [--rounds 1] [--busy busy|idle|both]``): the default stream per block size (64, 32 ms) x scan
   off / on (child process) x audio-thread scheduling (``SCHED_FIFO`` vs nice -10, through
   ``RTSE_RT_SCHED``, ``realtime_tse/threads.py``), by default with one more core kept busy;
   rows per server (``server`` field), merged into an existing JSON. ``--variants`` compares
   stream settings (``STREAM_VARIANTS``: device periods in ms for output and input, jitter
   buffer, PortAudio latency, device rate, ``PULSE_LATENCY_MSEC``), ``--sink-rate 48000`` runs
   the measuring null sink at a typical sound server's rate, ``--key`` names the JSON key by what
   it compares (e.g. ``end_to_end_periods_jitter_rate``: device periods, jitter buffer and device
   rate; ``end_to_end_jitter_shrink``: the jitter buffer that steps back; ``end_to_end_long_busy_core``:
   10-minute runs with one more core busy) and ``--name`` the entry under it. Variants with ``pw_settings`` set PipeWire graph settings
   (``pw-metadata -n settings``, e.g. a forced quantum) for their row only.
7. ``end_to_end_long`` (``--only long --minutes 10``): one long run (64 ms blocks, scan on,
   SCHED_FIFO by default; ``--long-block-ms``, ``--long-busy``, ``--long-variant`` (a label of
   ``STREAM_VARIANTS``)): delay at start and at end
   (median of the first / last minute), their difference (drift), range and xruns after 2 s;
   per server (or ``--name``), merged into ``--key`` (default ``end_to_end_long``) of an
   existing JSON.

Every end-to-end row keeps a ``trace`` of what the stream reported while it ran (every second,
every 5 s in runs over a minute): the reported total delay, the jitter buffer, the output queued
at the last write, the device's output delay, the captured audio's age and the xruns so far.

The machine is recorded with its load average: on a shared CPU every figure is noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch


from realtime_common import DEMO, REPO, demo, get_model  # noqa: E402 (puts the repository on the path)
from realtime_tse.file_write import write_json_atomic  # noqa: E402
from realtime_tse.live.engine import LiveEngine  # noqa: E402
from realtime_tse.model import TSEModel  # noqa: E402
from realtime_e2e import OPTIONS, bench_scan_modes, bench_servers  # noqa: E402
from realtime_sched import SCAN_ONOFF, SCHED_MODES, bench_gil, bench_long, bench_sched  # noqa: E402


# ------------------------------------------------------------------------------------ 1. RTF
def bench_streaming(model: TSEModel, seconds: float = 8.0) -> list[dict]:
    x = demo(model.sample_rate, seconds)
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for block_ms in (16, 32, 64, 128):
            s = model.stream(block_ms=block_ms, aligned=True)
            B = s.block_samples
            for i in range(0, 4 * B, B):  # warm-up
                s.process(x[i:i + B], 1.0)
            s.reset()
            times = []
            for i in range(0, len(x) - len(x) % B, B):
                t = time.perf_counter()
                s.process(x[i:i + B], 1.0)
                times.append(time.perf_counter() - t)
            t_ms = 1e3 * np.asarray(times)
            blk_ms = 1e3 * B / model.sample_rate
            rows.append({"threads": threads, "block_ms": blk_ms, "block_samples": B,
                         "rtf": float(t_ms.sum() / (len(times) * blk_ms)),
                         "mean_ms": float(t_ms.mean()), "p95_ms": float(np.percentile(t_ms, 95)),
                         "max_ms": float(t_ms.max()),
                         "algorithmic_latency_ms": 1e3 * s.latency_s})
            r = rows[-1]
            print(f"  threads {threads}  block {blk_ms:5.0f} ms  RTF {r['rtf']:.3f}  "
                  f"mean {r['mean_ms']:6.2f} ms  p95 {r['p95_ms']:6.2f} ms  max {r['max_ms']:6.2f} ms"
                  f"  latency {r['algorithmic_latency_ms']:.0f} ms", flush=True)
    torch.set_num_threads(1)
    return rows


# ------------------------------------------------------------------------------------ 3. scan, file
def bench_scan_file(model: TSEModel, seconds: float = 20.0, threads: int = 2) -> dict:
    eng = LiveEngine(model, block_ms=64, input_file=DEMO, output_device="null", loop=True,
                     distance_m=1.0, scan_seconds=3.0, torch_threads=threads)
    eng.start()
    time.sleep(seconds)
    sc = eng._scanner
    st = eng.stats()
    res = {"seconds": seconds, "torch_threads": threads, "scan_kind": type(sc).__name__,
           "scans": eng.scan_count, "updates_per_s": eng.scan_count / seconds,
           "seconds_per_scan": (sc.busy_s / sc.count) if sc.count else None,
           "core_share": sc.duty_measured, "queries": len(eng.scan_distances_m),
           "audio_s": eng.scan_seconds, "rtf": eng.rtf, "xruns": eng.xruns,
           "max_block_ms": 1e3 * st.get("max_process_s", float("nan")),
           "last_peaks_m": eng.latest_scan.peaks_m if eng.latest_scan else None}
    if hasattr(sc, "skips"):  # streaming scan
        res.update(update_s=eng.scan_update_s, skips=sc.skips, scan_audio_s=sc.audio_s,
                   scan_rtf=sc.busy_s / sc.audio_s if sc.audio_s else None)
    eng.stop()
    torch.set_num_threads(1)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--servers", default="pulseaudio,pipewire",
                    help="sound servers for the end-to-end section, comma-separated")
    ap.add_argument("--e2e-seconds", type=float, default=12.0,
                    help="seconds of speech per option in the end-to-end comparison")
    ap.add_argument("--long-seconds", type=float, default=120.0,
                    help="the long run of the default settings (drift), 0 = none")
    ap.add_argument("--options", default=";".join(OPTIONS),
                    help="labels of OPTIONS to compare, separated by ';'")
    ap.add_argument("--stream-seconds", type=float, default=8.0)
    ap.add_argument("--scan-seconds", type=float, default=20.0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "realtime.json"))
    ap.add_argument("--busy-core", action="store_true",
                    help="scan-modes: also run every mode with one more core kept busy")
    ap.add_argument("--gil-seconds", type=float, default=15.0,
                    help="gil: seconds measured per scan mode and round")
    ap.add_argument("--only", choices=["scan", "e2e", "scan-modes", "gil", "sched", "long"],
                    default=None, help="run only one section; update it in an existing --out")
    ap.add_argument("--seconds", type=float, default=30.0,
                    help="sched: seconds of speech per row")
    ap.add_argument("--rounds", type=int, default=1, help="sched: rounds of all rows")
    ap.add_argument("--blocks", default="64,32", help="sched: block sizes (ms), comma-separated")
    ap.add_argument("--busy", default="busy",
                    help="sched: 'busy' (one more core spinning), 'idle' or 'both'")
    ap.add_argument("--sched", default="fifo,nice",
                    help="sched: audio-thread scheduling modes compared (fifo, nice)")
    ap.add_argument("--variants", default="default",
                    help="sched: stream settings compared, labels of STREAM_VARIANTS separated "
                         "by ';'")
    ap.add_argument("--scans", default=";".join(SCAN_ONOFF),
                    help="sched: scan modes, labels of SCAN_ONOFF separated by ';'")
    ap.add_argument("--sink-rate", type=int, default=16000,
                    help="sched: Hz of the measuring null sink (48000: a typical sound server)")
    ap.add_argument("--key", default=None,
                    help="sched / long: JSON key of the rows (default end_to_end_sched / "
                         "end_to_end_long)")
    ap.add_argument("--name", default=None,
                    help="sched / long: name of the entry under --key (default: the server)")
    ap.add_argument("--long-busy", action="store_true",
                    help="long: one more process spinning on a core throughout")
    ap.add_argument("--long-variant", default="default",
                    help="long: stream settings, a label of STREAM_VARIANTS")
    ap.add_argument("--minutes", type=float, default=10.0, help="long: minutes of the run")
    ap.add_argument("--long-block-ms", type=float, default=64.0, help="long: block (ms)")
    ap.add_argument("--long-scan", choices=["on", "off"], default="on", help="long: the scan")
    ap.add_argument("--long-sched", choices=list(SCHED_MODES), default="fifo",
                    help="long: audio-thread scheduling")
    a = ap.parse_args(argv)
    # `kill PID` (SIGTERM) unwinds like Ctrl-C: the private sound server and the busy-core
    # process are stopped by their finally blocks instead of being left running
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    model, which = get_model(a.model)
    if a.only == "scan":
        return _main_scan_only(model, which, a)
    if a.only in ("sched", "long"):
        return _main_sched(model, which, a)
    if a.only in ("scan-modes", "gil"):
        if a.only == "gil":
            print(f"5. the scan's cost to the audio process, {a.gil_seconds:g} s per mode",
                  flush=True)
            key, res = "gil_probe", {"model": which, **bench_gil(model, a.gil_seconds)}
        else:
            key, res = "end_to_end_scan_modes", {
                "model": which, **bench_scan_modes(model, a.long_seconds, busy_core=a.busy_core)}
        out = Path(a.out)
        doc = json.loads(out.read_text()) if out.is_file() else {}  # merge: read at the end
        doc[key] = res
        write_json_atomic(out, doc)
        print(f"wrote {out}")
        return 0
    out = Path(a.out)
    doc = json.loads(out.read_text()) if out.is_file() else {}
    load0 = os.getloadavg()
    print(f"model: {which} ({model.config.preset}, {model.sample_rate} Hz); load average "
          f"{load0[0]:.1f} on {os.cpu_count()} cores", flush=True)
    if a.only is None:
        print("1. streaming RTF (Streamer.process, aligned blocks)")
        doc["streaming"] = bench_streaming(model, a.stream_seconds)
    options = [o for o in a.options.split(";") if o]
    e2e = bench_servers(model, [s for s in a.servers.split(",") if s], a.e2e_seconds,
                        a.long_seconds, options)
    doc["end_to_end"] = {
        "method": "one stereo null sink 'meas': its left channel is the engine's microphone "
                  "(remap source dut_mic), the engine plays into its right channel (remap sink "
                  "meas_r); both recorded in one stream from meas.monitor; delay = lag of right "
                  "behind left per 1 s window (realtime_tse/testing/loopback.py). Engine in bypass "
                  "(model running, dry path delayed like the extraction) except the 'wet' row.",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average_start": load0,
        "load_average_end": os.getloadavg(), **e2e}
    doc.pop("loopback", None)  # the old piecewise measurement (superseded)
    if a.only is None:
        print(f"3. distance scan beside a file-fed engine, {a.scan_seconds:g} s")
        doc["scan_file"] = bench_scan_file(model, a.scan_seconds)
        for k, v in doc["scan_file"].items():
            print(f"  {k}: {v}")
    doc.update({
        "model": which, "preset": model.config.preset, "sample_rate": model.sample_rate,
        "machine": {"processor": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(),
                    "note": "2 shared cores; training runs and other jobs used the CPU at the "
                            "same time (load averages recorded per row), so figures are noisy"},
        "torch": torch.__version__})
    write_json_atomic(out, doc)
    print(f"wrote {out}")
    return 0


def _main_sched(model, which, a) -> int:
    """``--only sched`` / ``--only long``: rows per server into ``end_to_end_sched[server]`` /
    ``end_to_end_long[server]`` of an existing ``--out`` (read and merged at the end)."""
    servers = [s for s in a.servers.split(",") if s]
    results = {}
    for kind in servers:
        try:
            if a.only == "sched":
                busy = {"busy": (True,), "idle": (False,), "both": (False, True)}[a.busy]
                res = bench_sched(model, kind, a.seconds, rounds=a.rounds,
                                  blocks=tuple(float(b) for b in a.blocks.split(",")),
                                  busy_modes=busy,
                                  sched_modes=tuple(m for m in a.sched.split(",") if m),
                                  variants=tuple(v for v in a.variants.split(";") if v),
                                  scans=tuple(v for v in a.scans.split(";") if v),
                                  sink_rate=a.sink_rate)
            else:
                res = bench_long(model, kind, a.minutes, block_ms=a.long_block_ms,
                                 scan=a.long_scan == "on", sched=a.long_sched,
                                 busy=a.long_busy, variant=a.long_variant)
        except RuntimeError as e:
            print(f"  {kind} cannot run here: {e}", flush=True)
            res = {"skipped": str(e)}
        name = kind if a.only != "sched" or a.sink_rate == 16000 else f"{kind}_sink{a.sink_rate}"
        name = a.name or name
        results[name] = {"model": which, "command": " ".join(sys.argv[1:]), **res}
    key = a.key or ("end_to_end_sched" if a.only == "sched" else "end_to_end_long")
    out = Path(a.out)
    doc = json.loads(out.read_text()) if out.is_file() else {}
    doc.setdefault(key, {}).update(results)
    write_json_atomic(out, doc)
    print(f"wrote {out}")
    return 0


def _main_scan_only(model, which, a) -> int:
    load0 = os.getloadavg()
    print(f"model: {which} ({model.config.preset}); load average {load0[0]:.1f} on "
          f"{os.cpu_count()} cores", flush=True)
    out = Path(a.out)
    doc = json.loads(out.read_text()) if out.is_file() else {}
    for threads, key in ((2, "scan_file"), (1, "scan_file_1_thread")):
        print(f"3. distance scan beside a file-fed engine, {a.scan_seconds:g} s, "
              f"{threads} torch threads")
        r = bench_scan_file(model, a.scan_seconds, threads=threads)
        r.update(date=time.strftime("%Y-%m-%d %H:%M:%S"), model=which,
                 load_average_start=load0, load_average_end=os.getloadavg())
        for k, v in r.items():
            print(f"  {k}: {v}")
        doc[key] = r
    write_json_atomic(out, doc)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
