"""The scheduling sections of bench_realtime.py (5, 6 and 7): the GIL probe, audio-thread
scheduling x scan x block size (``SCHED_MODES``, ``SCAN_ONOFF``), the stream variants
(``STREAM_VARIANTS``) and the long runs. See bench_realtime.py's docstring."""
from __future__ import annotations

import os
import threading
import time

import numpy as np


from realtime_common import DEMO  # noqa: E402 (puts the repository on the path)
from realtime_tse.audio.pulse_env import restore_env, save_env  # noqa: E402
from realtime_tse.live.engine import LiveEngine  # noqa: E402
from realtime_tse.threads import AUDIO_RT_PRIORITY, RT_ENV  # noqa: E402
from realtime_e2e import SCAN_MODES, SoundServer, print_e2e, bench_e2e  # noqa: E402


SCHED_MODES = {  # label -> environment of section 6 (realtime_tse/threads.py reads RTSE_RT_SCHED)
    "fifo": {RT_ENV: str(AUDIO_RT_PRIORITY)},
    "nice": {RT_ENV: "0"},
}
STREAM_VARIANTS = {  # label -> LiveConfig stream settings of section 6 (--variants)
    "default": {},
    "jitter 16": dict(jitter_ms=16),
    # device_blocksize is in device samples: 64 = 4 ms at 16 kHz, but 8 ms at the shipped
    # model's 8 kHz (these two labels were measured so, at 8 kHz, in end_to_end_sched_variants)
    "4 ms periods, jitter 12": dict(device_blocksize=64, jitter_ms=12),
    "4 ms periods, jitter 16": dict(device_blocksize=64, jitter_ms=16),
    # period_ms: the device period in ms at whatever rate the devices run (bench_e2e converts)
    "8 ms periods": dict(period_ms=8, input_period_ms=8),
    "8 ms periods, jitter 16": dict(period_ms=8, input_period_ms=8, jitter_ms=16),
    "8 ms periods, jitter 12 ms": dict(period_ms=8, input_period_ms=8, jitter_ms=12),
    "8 ms out, 4 ms in, jitter 16 ms": dict(period_ms=8, input_period_ms=4, jitter_ms=16),
    "8 ms out, 2 ms in, jitter 16 ms": dict(period_ms=8, input_period_ms=2, jitter_ms=16),
    "8 ms out, 4 ms in, jitter 12 ms": dict(period_ms=8, input_period_ms=4, jitter_ms=12),
    "4 ms periods": dict(period_ms=4, input_period_ms=4),
    "4 ms periods, jitter 16 ms": dict(period_ms=4, input_period_ms=4, jitter_ms=16),
    "4 ms periods, jitter 12 ms": dict(period_ms=4, input_period_ms=4, jitter_ms=12),
    "4 ms periods, latency 16 ms, jitter 12 ms": dict(period_ms=4, input_period_ms=4,
                                                      latency=0.016, jitter_ms=12),
    "2 ms periods, jitter 12 ms": dict(period_ms=2, input_period_ms=2, jitter_ms=12),
    # small output periods in a deeper device buffer (PortAudio latency), duplex
    "4 ms periods, latency 24 ms, jitter 12 ms": dict(period_ms=4, input_period_ms=4,
                                                      latency=0.024, jitter_ms=12),
    "4 ms periods, latency 24 ms, jitter 8 ms": dict(period_ms=4, input_period_ms=4,
                                                     latency=0.024, jitter_ms=8),
    "4 ms periods, latency 32 ms, jitter 8 ms": dict(period_ms=4, input_period_ms=4,
                                                     latency=0.032, jitter_ms=8),
    "8 ms out, 4 ms in, latency 32 ms, jitter 8 ms": dict(period_ms=8, input_period_ms=4,
                                                          latency=0.032, jitter_ms=8),
    "6 ms out, 4 ms in, jitter 12 ms": dict(period_ms=6, input_period_ms=4, jitter_ms=12),
    "6 ms out, 3 ms in, jitter 12 ms": dict(period_ms=6, input_period_ms=3, jitter_ms=12),
    "6 ms out, 3 ms in, jitter 9 ms": dict(period_ms=6, input_period_ms=3, jitter_ms=9),
    # 6 ms output periods (an 18 ms device buffer) with the 16 ms jitter buffer
    "6 ms out, 4 ms in, jitter 16 ms": dict(period_ms=6, input_period_ms=4, jitter_ms=16),
    # PipeWire: the graph's quantum forced small (5.3 ms at 48 kHz is what our streams get)
    "PipeWire quantum 128": dict(pw_settings={"clock.force-quantum": 128}),
    "PipeWire quantum 64": dict(pw_settings={"clock.force-quantum": 64}),
    "duplex, 8 ms periods, jitter 16 ms": dict(streams="duplex", latency="low", period_ms=8,
                                               jitter_ms=16),
    "duplex, 4 ms periods, jitter 16 ms": dict(streams="duplex", latency="low", period_ms=4,
                                               jitter_ms=16),
    "PULSE_LATENCY_MSEC=10": dict(env={"PULSE_LATENCY_MSEC": "10"}),
    "devices at 16 kHz": dict(device_rate=16000),
    "devices at 48 kHz": dict(device_rate=48000),
    "devices at 48 kHz, 8 ms periods, jitter 16": dict(device_rate=48000, period_ms=8,
                                                        input_period_ms=8, jitter_ms=16),
    "devices at 48 kHz, 8 ms out, 4 ms in, jitter 16 ms": dict(device_rate=48000, period_ms=8,
                                                                input_period_ms=4, jitter_ms=16),
}
SCAN_ONOFF = {"scan off": dict(scan=False, env={}),
              "scan on (process)": dict(scan=True, env={"RTSE_SCAN_PROCESS": "1"})}


def bench_sched(model, kind: str, seconds: float, rounds: int = 1, blocks=(64, 32),
                busy_modes=(True,), sched_modes=tuple(SCHED_MODES), variants=("default",),
                scans=tuple(SCAN_ONOFF), sink_rate: int = 16000) -> dict:
    """Section 6 (``--only sched``): the default stream through one sound server (``kind``) per
    block size x scan off / on (child process) x audio-thread scheduling (``SCHED_FIFO`` vs nice
    -10, ``SCHED_MODES``), FIFO and nice back to back so that both see the same machine;
    ``busy_modes``: with (True) and/or without (False) one more process spinning on a core.
    ``variants``: stream settings of ``STREAM_VARIANTS`` (device period, jitter buffer), each
    row labelled with its variant. ``sink_rate``: Hz of the measuring null sink. Rounds repeat
    every row; within a round the variants of one block size run back to back. Raises
    RuntimeError when the server cannot run here."""
    srv = SoundServer(kind)
    rows = []
    load0 = os.getloadavg()
    try:
        print(f"6. scheduling through {srv.version}, {seconds:g} s each, {rounds} round(s)",
              flush=True)
        for rnd in range(rounds):
            for busy in busy_modes:
                for block in blocks:
                    for scan_label in scans:
                        skw = SCAN_ONOFF[scan_label]
                        for variant in variants:
                            for sched in sched_modes:
                                label = (f"{scan_label}, {sched}"
                                         + ("" if variant == "default" else f", {variant}")
                                         + (", busy core" if busy else ""))
                                var = dict(STREAM_VARIANTS[variant])
                                r = bench_e2e(model, seconds, block_ms=block, busy=busy,
                                              label=label, scan=skw["scan"],
                                              env={**skw["env"], **SCHED_MODES[sched],
                                                   **var.pop("env", {})},
                                              sink_rate=sink_rate, **var)
                                r.update(server=kind, server_version=srv.version, round=rnd,
                                         date=time.strftime("%Y-%m-%d %H:%M:%S"),
                                         scan_label=scan_label, scheduling_asked=sched,
                                         variant=variant)
                                print_e2e(r)
                                rows.append(r)
    finally:
        srv.stop()
    return {"server": srv.version, "seconds": seconds, "rounds": rounds,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average_start": load0,
            "load_average_end": os.getloadavg(), "rows": rows}


def bench_long(model, kind: str, minutes: float, block_ms: float = 64, scan: bool = True,
               sched: str = "fifo", busy: bool = False, variant: str = "default") -> dict:
    """Section 7 (``--only long --minutes M``): one run of the default settings (or
    ``variant``, a label of ``STREAM_VARIANTS``) for ``minutes`` (scan on in its child process
    by default): delay at start and at end (median of the first / last minute's windows), their
    difference (drift) and the range, xruns after 2 s."""
    srv = SoundServer(kind)
    try:
        print(f"7. {minutes:g}-minute run through {srv.version}, {block_ms:g} ms blocks, scan "
              f"{'on' if scan else 'off'}, {sched}", flush=True)
        var = dict(STREAM_VARIANTS[variant])
        env = {**(SCAN_ONOFF["scan on (process)"]["env"] if scan else {}), **SCHED_MODES[sched],
               **var.pop("env", {})}
        r = bench_e2e(model, 60.0 * minutes, block_ms=block_ms, busy=busy, scan=scan, env=env,
                      label=f"{minutes:g} min, scan {'on' if scan else 'off'}, {sched}"
                            + ("" if variant == "default" else f", {variant}")
                            + (", busy core" if busy else ""), **var)
        r.update(server=kind, server_version=srv.version, scheduling_asked=sched,
                 minutes=minutes, variant=variant, date=time.strftime("%Y-%m-%d %H:%M:%S"))
        print_e2e(r)
        if r.get("delay_ms") is not None:
            print(f"  delay at start {r['delay_start_ms']:.1f} ms, at end {r['delay_end_ms']:.1f}"
                  f" ms (drift {r['drift_end_minus_start_ms']:+.1f} ms; p1..p99 "
                  f"{r['delay_p1_p99_ms'][0]:.1f}..{r['delay_p1_p99_ms'][1]:.1f}, min..max "
                  f"{r['delay_min_ms']:.1f}..{r['delay_max_ms']:.1f})", flush=True)
    finally:
        srv.stop()
    return r


def _late_probe(stop: threading.Event, period_s: float, out: list) -> None:
    """Wake every ``period_s`` like an audio callback; append how late each wake-up was (s)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
    except OSError:
        pass
    nxt = time.perf_counter()
    while not stop.is_set():
        nxt += period_s
        d = nxt - time.perf_counter()
        if d > 0:
            time.sleep(d)
        late = time.perf_counter() - nxt
        out.append(late)
        if late > period_s:
            nxt = time.perf_counter()  # a long stall: do not count every missed period


def bench_gil(model, seconds: float, rounds: int = 2, block_ms: float = 64) -> dict:
    """Section 5 (module docstring): per round and scan mode of ``SCAN_MODES``, the probe's
    lateness (p50 / p99 / max ms, share over 2 ms) and the worker's time per block (p50 / p95 /
    max ms) over ``seconds`` of a file-fed engine at ``block_ms``."""
    rows = []
    load0 = os.getloadavg()
    for rnd in range(rounds):
        for label, kw in SCAN_MODES.items():
            saved = save_env(kw.get("env", {}))
            os.environ.update(kw.get("env", {}))
            try:
                eng = LiveEngine(model, block_ms=block_ms, input_file=DEMO, output_device="null",
                                 loop=True, distance_m=1.0, scan=kw["scan"], torch_threads=1)
                times = []
                inner = eng.stream.process_block

                def timed(blk, _f=inner, _t=times):
                    t = time.perf_counter()
                    y = _f(blk)
                    _t.append(time.perf_counter() - t)
                    return y
                eng.stream.process_block = timed
                eng.start()
                sc = eng._scanner
                t0 = time.monotonic()
                while sc is not None and getattr(sc, "mode", None) == "process" and \
                        not sc.ready and time.monotonic() - t0 < 90:
                    time.sleep(0.1)
                time.sleep(1.0)
                n0, times[:] = eng.scan_count, []
                late, stop = [], threading.Event()
                th = threading.Thread(target=_late_probe, args=(stop, 0.008, late), daemon=True)
                th.start()
                time.sleep(seconds)
                stop.set()
                th.join(2)
                n1 = eng.scan_count
                mode = getattr(sc, "mode", "thread") if sc is not None else None
                eng.stop()
            finally:
                restore_env(saved)
            lt, bt = 1e3 * np.asarray(late), 1e3 * np.asarray(times)
            r = {"round": rnd, "label": label, "scan_mode": mode, "seconds": seconds,
                 "block_ms": block_ms, "probe_wakeups": int(len(lt)),
                 "late_p50_ms": float(np.median(lt)), "late_p99_ms": float(np.percentile(lt, 99)),
                 "late_max_ms": float(lt.max()), "late_over_2ms": float(np.mean(lt > 2.0)),
                 "block_p50_ms": float(np.median(bt)), "block_p95_ms": float(np.percentile(bt, 95)),
                 "block_max_ms": float(bt.max()), "blocks": int(len(bt)),
                 "scan_updates_per_s": (n1 - n0) / seconds, "load_average": os.getloadavg()[0]}
            print(f"  {label:<18} probe late p50 {r['late_p50_ms']:5.2f} p99 {r['late_p99_ms']:6.2f} "
                  f"max {r['late_max_ms']:6.1f} ms, >2 ms {100 * r['late_over_2ms']:4.1f} %;  block "
                  f"p50 {r['block_p50_ms']:5.1f} p95 {r['block_p95_ms']:5.1f} max {r['block_max_ms']:5.1f} ms;"
                  f"  scan {r['scan_updates_per_s']:.1f}/s  load {r['load_average']:.1f}", flush=True)
            rows.append(r)
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average_start": load0,
            "load_average_end": os.getloadavg(), "rows": rows}
