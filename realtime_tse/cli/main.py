"""The ``realtime-tse`` command line.

::

    realtime-tse                      the desktop app; with no display, the headless demo job
    realtime-tse extract IN --distance D -o OUT [--model CKPT] [--streaming --block-ms 64]
    realtime-tse scan IN [--json OUT.json] [--plot OUT.png] [--model CKPT]
    realtime-tse stream [--input-device X --output-device Y | --input-file F] --distance D
                        [--record OUT.wav] [--seconds S] [--block-ms 64] [--model CKPT]
    realtime-tse devices
    realtime-tse calibrate --out my_room/ [--room my_room.toml] [--distances 0.5,1,2]   (cli/calibrate.py)

Input files: anything soundfile reads, any sample rate (resampled to the model's with soxr and the
output back to the input's rate), integer or float samples; several channels are averaged to mono
(a note says so). Every user error (missing, empty, unreadable or too short input, a distance
outside the model's range, an unknown audio device, a bad checkpoint) ends with one line
``realtime-tse: error: ...`` on stderr and exit status 1 (argparse usage errors: 2), never a
traceback; ``RTSE_DEBUG=1`` shows tracebacks of unexpected errors.

Headless job (no ``DISPLAY`` / ``WAYLAND_DISPLAY`` and ``QT_QPA_PLATFORM`` unset, or Qt cannot
start): the demo input streams through the live engine in real time for its length (or
``--seconds``), detected talker distances are printed as the scan updates, and the extracted audio
is written under the recordings directory.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ..audio.virtual_mic import DEFAULT_NAME as VIRTUAL_MIC_NAME
from ..app_options import APP_DESCRIPTION, add_app_options, add_model_options
from ..audio_file import display_path, is_stream
from ..file_write import FileWriteError, atomic_path, write_json_atomic
from ..live_config import DEFAULT_BLOCK_MS
from ..modes import MODES
from .common import (PROG, CLIError, _check_distance, _fmt_talkers, _load, _note,
                     check_output_audio_path, check_output_path, exit_status,
                     read_audio, restore_signals, stop_signals_like_ctrl_c, write_audio)
from .live import cmd_default, cmd_stream

# ------------------------------------------------------------------------------------ commands
def cmd_extract(args) -> int:
    import numpy as np  # noqa: PLC0415
    from ..model import resample  # noqa: PLC0415
    check_output_audio_path(args.output)   # before reading, loading and extracting
    x, sr, info = read_audio(args.input)
    out_path = args.output if args.output == "-" else Path(args.output)
    model = _load(args)
    d = _check_distance(model, args.distance)
    t0 = time.perf_counter()
    xm = resample(x, sr, model.sample_rate)
    if args.streaming:
        from ..progress import progress_bar as _bar  # noqa: PLC0415
        s = model.stream(block_ms=args.block_ms, aligned=True)  # whole blocks, as live
        B = s.block_samples
        pad = s.delay_samples + (-(len(xm) + s.delay_samples)) % B  # flush, then whole blocks
        xp = np.concatenate([xm, np.zeros(pad, np.float32)])
        ys = []
        with _bar(len(xp) / model.sample_rate, None if len(xp) >= 10 * model.sample_rate
                  else False, "extract") as bar:
            for i in range(0, len(xp), B):
                ys.append(s.process(xp[i:i + B], d))
                bar.update(len(ys[-1]) / model.sample_rate)
        y = np.concatenate(ys)
        y = y[s.delay_samples:s.delay_samples + len(xm)]
        how = (f"streaming, {s.block_ms:g} ms blocks, algorithmic latency "
               f"{1e3 * s.latency_s:.0f} ms (output re-aligned to the input)")
    else:
        y = model.extract(xm, d)
        how = "offline"
    if sr != model.sample_rate:
        y = resample(y, model.sample_rate, sr)
        _note(f"the model runs at {model.sample_rate} Hz: the input was resampled to it and the "
              f"output back to {sr} Hz (content above {model.sample_rate // 2} Hz is not kept)")
    y = np.asarray(y[:len(x)], dtype=np.float32)
    if len(y) < len(x):
        y = np.pad(y, (0, len(x) - len(y)))
    what = f"talkers within {model.config.r_spk:g} m of {d:g} m"
    if args.mode == "suppress":   # everyone else: the input (mixed down) minus the extraction
        xin = np.asarray(x, dtype=np.float32)
        y = (xin if xin.ndim == 1 else xin.mean(axis=1)) - y
        what = f"everyone but the {what}"
    dt = time.perf_counter() - t0
    p = write_audio(out_path, y, sr, info["subtype"])
    # with ``-o -`` (or a stream such as /dev/stdout) the audio may be standard output: the
    # summary goes to standard error
    print(f"wrote {'WAV to standard output' if p == '-' else display_path(p)} ({len(y) / sr:.2f} s, {sr} Hz): {what}, "
          f"{how}; model {model.name} on {model.device.type}, {dt:.1f} s "
          f"(RTF {dt / (len(x) / sr):.2f})", file=sys.stderr if is_stream(p) else sys.stdout)
    return 0


def cmd_scan(args) -> int:
    from ..scan.file_scan import SCAN_MAX_S  # noqa: PLC0415
    from ..scan.result import MIN_SCAN_S  # noqa: PLC0415
    # before reading, loading and scanning (check_output_path: the rule of every output file)
    json_path = check_output_path(args.json, "scan.json") if args.json else None
    plot_path = check_output_path(args.plot, "scan.png") if args.plot else None
    x, sr, _ = read_audio(args.input, MIN_SCAN_S)
    model = _load(args)
    grid = None
    if args.step is not None:
        from ..scan.result import default_grid  # noqa: PLC0415
        if args.step <= 0:
            raise CLIError(f"--step must be positive, got {args.step}")
        grid = default_grid(*model.distance_range, args.step)
    try:
        max_s = None if args.max_seconds is not None and args.max_seconds <= 0 else \
            (args.max_seconds if args.max_seconds is not None else SCAN_MAX_S)
        res = model.scan(x, grid, sample_rate=sr, max_seconds=max_s)
    except ValueError as e:
        raise CLIError(f"{args.input}: {e}") from e
    part = "" if res.measured_s >= res.duration_s - 1e-6 else \
        f"measured on {res.measured_s:.0f} s of {res.duration_s:.0f} s in excerpts, "
    name = "standard input" if args.input == "-" else display_path(Path(args.input).name)
    print(f"{name}: {_fmt_talkers(res)} "
          f"(scan of {len(res.distances_m)} distances, {res.distances_m[0]:g}..{res.distances_m[-1]:g} m, "
          f"{part}{res.elapsed_s:.1f} s)")
    if args.verbose:
        for dq, lv, ind in zip(res.distances_m, res.isdr_db, res.indicator):
            print(f"  {dq:5.2f} m  level {lv:7.2f} dB  indicator {ind:7.2f}")
    if args.json:
        doc = {"input": str(args.input), "sample_rate": sr, "model": model.name,
               "preset": model.config.preset, "r_spk_m": model.config.r_spk, **res.to_dict(),
               "level_definition": "10*log10(|x_hat|^2/|y|^2 + 1e-2) dB per query distance",
               "indicator_definition": "sum of levels (shifted to >= 0) within +-0.5 m"}
        try:
            write_json_atomic(json_path, doc)
        except FileWriteError as e:
            raise CLIError(str(e)) from e
        print(f"wrote {display_path(json_path)}")
    if args.plot:
        p = plot_scan(res, plot_path, title=name)
        print(f"wrote {display_path(p)}")
    return 0


def scan_figure(res, title: str = ""):
    """The scan as a matplotlib Figure (Agg canvas): the extracted level re input per query
    distance (the normalised iSDR, ``10 log10(|x_hat|^2 / |y|^2 + tau)``, :mod:`realtime_tse.models.detection`),
    the peak indicator, and each detected talker (``talkers_m``) as a dashed line labelled inside
    the axes, in headroom above the curves."""
    # the object API on an Agg canvas: no pyplot state, no process-wide backend switch
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415
    fig = Figure(figsize=(7, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(res.distances_m, res.isdr_db, "o-", color="tab:blue", label="extracted level")
    ax.set_xlabel("query distance (m)")
    ax.set_ylabel("extracted level re input (dB)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(res.distances_m, res.indicator, "-", color="tab:orange", alpha=0.8,
             label="peak indicator (sum within 1 m)")
    ax2.set_ylabel("peak indicator", color="tab:orange")
    for a in (ax, ax2):  # headroom above both curves for the talker labels
        lo, hi = a.get_ylim()
        a.set_ylim(lo, hi + 0.18 * (hi - lo))
    for i, d in enumerate(res.talkers_m):
        ax.axvline(d, color="tab:red", ls="--", lw=1)
        ax.text(d, 0.97, f" {d:.2f} m", color="tab:red", va="top", ha="left",
                transform=ax.get_xaxis_transform(), fontsize=9,
                fontweight="bold" if i == 0 else "normal")
    ax.set_title(f"distance scan {title}".strip())
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_scan(res, path, title: str = "") -> Path:
    """:func:`scan_figure` saved as a PNG at ``path``. Raises CLIError when it cannot be written."""
    p = Path(path).expanduser()
    fig = scan_figure(res, title)
    try:
        with atomic_path(p) as tmp:
            fig.savefig(tmp, format=p.suffix.lstrip(".").lower() or "png")
    except FileWriteError as e:
        raise CLIError(str(e)) from e
    return p


def cmd_devices(args) -> int:
    from ..audio.devices import AudioDeviceError, list_devices  # noqa: PLC0415
    try:
        devs = list_devices()
    except AudioDeviceError as e:
        raise CLIError(str(e)) from e
    if not devs:
        print("no audio devices found (PortAudio lists none: no sound card or sound server here; "
              "on Linux start PulseAudio/PipeWire, or use `stream --input-file F` / the app's demo)")
        return 0
    for d in devs:
        print(f"  {d}")
    from ..audio import host_path  # noqa: PLC0415
    hp = host_path.state()
    if any(d.jack for d in devs):
        print(f"audio path: {host_path.describe(host_path.JACK_HOSTAPI)} for the JACK devices, "
              "the default (--audio-path alsa: the ALSA devices)")
    else:
        print(f"audio path: ALSA (the JACK path is not available: {hp.why_not})")
    from ..audio.virtual_mic import find_virtual_mics  # noqa: PLC0415
    for name in find_virtual_mics():   # made by a running stream --virtual-mic (or the window)
        print(f"  virtual microphone: {name} (realtime-tse's output, for other apps: pick it as "
              "the microphone in a call or recorder)")
    return 0


# ------------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    # allow_abbrev=False: the top-level options must not swallow a command's option by prefix
    # (``calibrate --out`` would otherwise be ambiguous with --output / --output-device)
    p = argparse.ArgumentParser(prog=PROG, allow_abbrev=False, description=APP_DESCRIPTION)
    add_app_options(p)   # the app's options: the same as the window's module's
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    e = sub.add_parser("extract", help="extract the talker(s) at a distance from a file")
    e.add_argument("input", metavar="IN", help="audio file (any soundfile format, any rate; "
                                               "stereo is mixed down), e.g. assets/demo/demo_mix.wav; "
                                               "'-' or a pipe: read from standard input")
    e.add_argument("--distance", "-d", type=float, required=True, help="query distance in metres")
    e.add_argument("--mode", choices=MODES, default="extract",
                   help="extract: the talkers at the distance (default); suppress: everyone else")
    e.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="file to write (format from its extension; written at IN's rate; "
                        "written whole or not at all: a previous OUT stays as it was on failure); "
                        "'-': WAV to standard output")
    e.add_argument("--streaming", action="store_true",
                   help="run block by block as live (output re-aligned to the input)")
    e.add_argument("--block-ms", type=float, default=DEFAULT_BLOCK_MS,
                   help=f"with --streaming: block length in ms (default {DEFAULT_BLOCK_MS:g})")
    add_model_options(e)
    e.set_defaults(func=cmd_extract)

    s = sub.add_parser("scan", help="estimate talker distances in a file")
    s.add_argument("input", metavar="IN", help="audio file, e.g. assets/demo/demo_mix.wav; "
                                               "'-' or a pipe: read from standard input")
    s.add_argument("--json", metavar="OUT.json", help="write the profile and talkers as JSON")
    s.add_argument("--plot", metavar="OUT.png", help="write a plot of the profile")
    s.add_argument("--step", type=float, default=None, help="grid step in metres (default 0.25)")
    s.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="measure at most S seconds of a long file, in excerpts spread over it "
                        "(default 20; 0 = the whole file, slow: about 2 s per audio second)")
    s.add_argument("-v", "--verbose", action="store_true", help="print the whole profile")
    add_model_options(s)
    s.set_defaults(func=cmd_scan)

    t = sub.add_parser("stream", help="live extraction from a device or a file")
    t.add_argument("--input-device", default=None, metavar="X", help="index or name")
    t.add_argument("--output-device", default=None, metavar="Y",
                   help="index or name, or 'null' for none")
    t.add_argument("--input-file", default=None, metavar="F", help="a file instead of a microphone")
    t.add_argument("--loop", action="store_true", help="loop the input file")
    t.add_argument("--distance", "-d", type=float, required=True, help="query distance in metres")
    t.add_argument("--mode", choices=MODES, default="extract",
                   help="extract: the talkers at the distance (default); suppress: everyone else")
    t.add_argument("--virtual-mic", nargs="?", const=VIRTUAL_MIC_NAME, default=None, metavar="NAME",
                   help="also offer the output as a microphone other apps can record from "
                        f"(PulseAudio or PipeWire; default name {VIRTUAL_MIC_NAME})")
    t.add_argument("--record", metavar="OUT.wav", help="record the output (never overwrites)")
    t.add_argument("--record-input", action="store_true", help="also record the raw input")
    t.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    t.add_argument("--block-ms", type=float, default=DEFAULT_BLOCK_MS,
                   help=f"block length in ms (default {DEFAULT_BLOCK_MS:g}; latency = block + one frame)")
    t.add_argument("--no-scan", action="store_true", help="no distance scan")
    t.add_argument("--rt-priority", type=int, default=None, metavar="N",
                   help="SCHED_FIFO priority 1..99 of the audio threads, 0 = none (nice -10 "
                        "only); default: RTSE_RT_SCHED, else 3")
    t.add_argument("--audio-path", choices=("auto", "jack", "alsa"), default="auto",
                   help="how the devices reach the sound server: jack = PipeWire's JACK "
                        "interface (lowest delay; needs pipewire-jack), alsa = PortAudio's ALSA "
                        "devices (PulseAudio, pipewire-pulse); auto (default): jack where "
                        "available")
    add_model_options(t)
    t.set_defaults(func=cmd_stream)

    v = sub.add_parser("devices", help="list audio devices")
    v.set_defaults(func=cmd_devices)

    from .calibrate import add_calibrate_parser  # noqa: PLC0415
    add_calibrate_parser(sub)
    return p


def main(argv=None) -> int:
    """Entry point of ``realtime-tse``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:  # no command: the window, or the headless demo
        func = cmd_default
    handlers = stop_signals_like_ctrl_c()
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt as e:
        print("interrupted", file=sys.stderr)
        return exit_status(e)
    except CLIError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - one clear line, never a traceback
        from realtime_tse.models.checkpoint import CheckpointError  # noqa: PLC0415

        # the error type only, from where it is defined: importing the audio stack here (as this
        # did, from .audio_io) loaded it for the first time inside an error path, where its
        # `from .devices import find_device` could bind a test's stand-in for good
        from ..audio.devices import AudioDeviceError  # noqa: PLC0415
        if isinstance(e, (CheckpointError, AudioDeviceError, ValueError, OSError)):
            print(f"{PROG}: error: {e}", file=sys.stderr)
            return 1
        if os.environ.get("RTSE_DEBUG"):
            raise
        print(f"{PROG}: error: unexpected {type(e).__name__}: {e} (set RTSE_DEBUG=1 for a "
              "traceback)", file=sys.stderr)
        return 1
    finally:
        restore_signals(handlers)


if __name__ == "__main__":  # pragma: no cover
    # ``python -m realtime_tse.cli.main``: run the package module's main, not this __main__ copy's,
    # so that the errors the other modules raise (realtime_tse.cli.main.CLIError) are the ones caught
    from realtime_tse.cli.main import main as _main
    sys.exit(_main())
