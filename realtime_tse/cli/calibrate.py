"""``realtime-tse calibrate``: measure your own room's RIRs at known distances.

::

    realtime-tse calibrate --out my_room/ [--room my_room.toml | --room-size 5 4 2.7 --mic 2.5 0.6 0.9]
                           [--distances 0.5,1,1.5,2,3] [--positions 1]
                           [--input-device X] [--output-device Y] [--rate 48000]
                           [--sweep-s 3] [--repeats 3] [--gap-s 1.5] [--level-db -12]
                           [--measure-latency | --latency-ms MS] [--yes] [--restart] [--force]

It asks for what is missing (room size, microphone position, distances), then for each distance
says where to put the loudspeaker and waits for Enter, plays the sweeps, checks the level, shows the
RIR's RT60, DRR and (when the loop latency is known) the distance the delay says; at the end it
writes ``my_room/`` (:mod:`realtime_tse.calibration.folder`) and tells the training commands.
``--yes`` asks nothing (every value from the options; for scripts and tests). A level problem asks
to measure again (with ``--yes``: an error). Finished takes are kept in a work folder beside
``--out``: the same command resumes after an error, Ctrl-C or a lost device.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..calibration.measure import CalibrationError, SweepConfig, latency_from, measure_rir
from ..audio import devices
from ..audio.devices import AudioDeviceError
from ..calibration.folder import (RoomSetup, Session, parse_distances, read_room_toml, take_key,
                                  work_dir_for)
from ..calibration.playrec import DuplexPlayRecord

__all__ = ["add_calibrate_parser", "cmd_calibrate", "run_calibration", "CalibrateOptions"]

DEFAULT_DISTANCES = "0.5,1,1.5,2,2.5,3"


@dataclass
class CalibrateOptions:
    """What one calibration run measures (see the module docstring; lengths m, times s).

    ``latency_s``: a known loop latency; ``measure_latency``: measure it first with the
    loudspeaker at the microphone. ``interactive``: wait for Enter before each take and offer to
    measure again after a level problem."""

    out: Path
    setup: RoomSetup | None
    cfg: SweepConfig | None
    distances: list[float] | None
    positions: int = 1
    latency_s: float | None = None
    measure_latency: bool = False
    interactive: bool = True
    restart: bool = False
    force: bool = False
    notes: list[str] = field(default_factory=list)


class Stop(Exception):
    """The user chose to stop (q): finished takes are kept."""


def _fmt_take(m) -> list[str]:
    lv = m.levels
    lines = [f"  level: peak {lv.peak_dbfs:.1f} dBFS, sweep {lv.sweep_dbfs:.1f} dBFS, noise floor "
             f"{lv.noise_dbfs:.1f} dBFS ({lv.snr_db:.0f} dB below the sweep)"]
    by_delay = (f", the delay says {m.path_m:.2f} m (tape {m.distance_m:g} m)"
                if m.path_m is not None else "")
    lines.append(f"  RIR: RT60 {m.rt60_s:.2f} s, DRR {m.drr_db:+.1f} dB{by_delay}, "
                 f"{len(m.rir) / m.sample_rate:.2f} s kept, {m.pnr_db:.0f} dB above its noise")
    lines += [f"  ! {w}" for w in m.warnings]
    return lines


def run_calibration(opts: CalibrateOptions, play_record, ask=input, say=print) -> Path:
    """Measure every pending take through ``play_record`` (a play-record callable,
    :mod:`realtime_tse.calibration.playrec`) and write the folder. ``ask(prompt) -> str`` is called before each
    take when ``opts.interactive``; ``say(line)`` prints. Returns the finished folder.

    Raises:
        CalibrationError: a bad take without ``interactive``. AudioDeviceError: a device failed
            (vanished mid-sweep, cannot open). Stop: the user quit. ValueError / FileExistsError:
            bad set-up or an existing folder (:class:`realtime_tse.calibration.folder.Session`).
        In every case finished takes stay in the work folder and the same call resumes.
    """
    s = Session(opts.out, opts.setup, opts.cfg, opts.distances, opts.positions,
                restart=opts.restart, force=opts.force)
    cfg, setup = s.cfg, s.setup
    plan, pending = s.plan(), s.pending()
    if s.resumed:
        say(f"resuming the calibration in {s.work}: {len(plan) - len(pending)} of {len(plan)} "
            "takes already measured (--restart measures everything again)")
    say(f"room {setup.name}: {' x '.join(f'{v:g}' for v in setup.size_m)} m, microphone at "
        f"{list(setup.mic_m)}; {len(plan)} takes of {cfg.repeats} sweeps x {cfg.sweep_s:g} s "
        f"({cfg.take_s:.0f} s each) at {cfg.sample_rate} Hz, {cfg.level_dbfs:g} dBFS")

    def take(distance: float, prompt: str):
        while True:
            if opts.interactive:
                answer = ask(prompt).strip().lower()
                if answer.startswith("q"):
                    raise Stop("stopped: the finished takes are kept; run the same command to go on")
            say(f"  playing {cfg.repeats} sweep(s), {cfg.take_s:.0f} s ...")
            try:
                return measure_rir(play_record, cfg, distance, s.latency_s if distance else None,
                                   say=lambda msg: say(f"  {msg}"))
            except CalibrationError as e:
                say(f"  problem: {e}")
                if not opts.interactive:
                    raise
                prompt = "  fix it, then press Enter to measure again (q = stop): "

    if opts.latency_s is not None:
        s.set_latency(opts.latency_s, "given")
    elif opts.measure_latency or (opts.interactive and s.latency_s is None and pending and ask(
            "Measure the loop latency first, so that each delay can be checked against the tape "
            "measure? [Y/n] ").strip().lower() in ("", "y", "yes")):
        m = take(0.0, "Put the loudspeaker right at the microphone (touching it), then press "
                      "Enter (q = stop): ")
        s.set_latency(latency_from(m), "measured")
        say(f"  loop latency {s.latency_s * 1000:.1f} ms (peak {m.levels.peak_dbfs:.1f} dBFS)")
    elif s.latency_s is not None:
        say(f"using the loop latency measured before: {s.latency_s * 1000:.1f} ms (a reopened "
            "stream may have another: --measure-latency measures it again)")
    for n, (d, p) in enumerate(plan, 1):
        if (d, p) not in pending:
            continue
        where = (f" (position {p} of {s.positions}: another spot at the same distance)"
                 if s.positions > 1 else "")
        say(f"[{n}/{len(plan)}] {take_key(d, p)}")
        m = take(d, f"Put the loudspeaker {d:g} m from the microphone, at talking height "
                    f"(about 1.6 m), facing it{where}; keep the volume as it is. Press Enter "
                    "(q = stop): ")
        for line in _fmt_take(m):
            say(line)
        s.save_take(m, p)
    say("writing the folder (RIR figures, simulated reference, plot) ...")
    out = s.finish()
    _summary(out, say)
    return out


def _summary(out: Path, say) -> None:
    import csv
    import json
    rep = json.loads((out / "calibration.json").read_text())
    say(f"{'distance':>8} {'pos':>3} {'RT60 s':>7} {'DRR dB':>7} {'delay m':>8}  split")
    with open(out / "rirs.csv", newline="") as f:
        for r in csv.DictReader(f):
            say(f"{float(r['distance_m']):8.2f} {r['position']:>3} {float(r['rt60_s']):7.2f} "
                f"{float(r['drr_db']):7.1f} {r['path_m'] or '-':>8}  {r['split']}")
    sim = rep.get("simulated")
    say(f"wrote {out}: {len(rep['takes'])} RIRs (rirs/, rirs.csv), room.toml (rt60 "
        f"{rep['rt60_median_s']:.2f} s"
        + (f"; the simulator makes {sim['rt60_s']:.2f} s of it" if sim else "")
        + "), plot.png, calibration.json")
    from ..launch_hint import app_command  # noqa: PLC0415
    train, ev = app_command(name="tse-train"), app_command(name="tse-eval")
    say("next: simulate a matched bank and train, then fine-tune on the measured RIRs:\n"
        f"  {train} {out}/room.toml --speech SPEECH_DIR --out runs/room\n"
        f"  {train} --measured {out}/rirs.csv --init runs/room/best.safetensors "
        "--speech SPEECH_DIR --out runs/room-ft\n"
        f"  {ev} runs/room-ft/best.safetensors --measured {out}/rirs.csv --speech SPEECH_DIR")


# ------------------------------------------------------------------------------------ CLI
def add_calibrate_parser(sub) -> None:
    """Register ``calibrate`` on the ``realtime-tse`` subcommand parser ``sub``."""
    c = sub.add_parser("calibrate", help="measure your room's RIRs at known distances (sweeps)")
    c.add_argument("--out", required=True, metavar="DIR", help="folder to write (e.g. my_room/)")
    c.add_argument("--room", metavar="TOML", help="room TOML (size, mic, optional rt60)")
    c.add_argument("--room-size", nargs=3, type=float, metavar=("X", "Y", "Z"), help="metres")
    c.add_argument("--mic", nargs=3, type=float, metavar=("X", "Y", "Z"),
                   help="microphone position in metres")
    c.add_argument("--name", help="room name (default: the --out folder's name)")
    c.add_argument("--distances", metavar="D1,D2,...",
                   help=f"loudspeaker distances in metres (asked; default {DEFAULT_DISTANCES})")
    c.add_argument("--positions", type=int, default=1, help="loudspeaker spots per distance")
    c.add_argument("--input-device", metavar="X", help="microphone: index or name")
    c.add_argument("--output-device", metavar="Y", help="loudspeaker: index or name")
    c.add_argument("--rate", type=int, default=48000, help="sample rate in Hz (default 48000)")
    c.add_argument("--sweep-s", type=float, default=3.0, help="sweep length, s (>= the RT60)")
    c.add_argument("--repeats", type=int, default=3, help="sweeps averaged per take")
    c.add_argument("--gap-s", type=float, default=1.5,
                   help="silence after each sweep, s (>= latency + RT60)")
    c.add_argument("--level-db", type=float, default=-12.0, help="sweep peak level, dBFS")
    lat = c.add_mutually_exclusive_group()
    lat.add_argument("--measure-latency", action="store_true",
                     help="first measure the loop latency with the loudspeaker at the microphone")
    lat.add_argument("--latency-ms", type=float, help="known loop latency in ms")
    c.add_argument("--yes", "-y", action="store_true", help="ask nothing (scripts)")
    c.add_argument("--restart", action="store_true", help="discard unfinished takes")
    c.add_argument("--force", action="store_true", help="replace an existing calibration folder")
    c.set_defaults(func=cmd_calibrate)


def _ask_vec(ask, prompt: str) -> tuple[float, float, float]:
    text = ask(prompt).replace(",", " ").split()
    if len(text) != 3:
        raise ValueError(f"expected three numbers in metres, got {' '.join(text)!r}")
    return tuple(float(v) for v in text)


def options_from_args(args, ask=input) -> CalibrateOptions:
    """CalibrateOptions from the parsed arguments, asking for what is missing unless ``--yes``.
    Raises ValueError / FileNotFoundError for bad or (with --yes) missing values."""
    out = Path(args.out).expanduser()
    resumable = (work_dir_for(out) / "session.json").is_file() and not args.restart
    setup = None
    if args.room:
        setup = read_room_toml(args.room)
        if args.room_size or args.mic:
            setup = RoomSetup(setup.name, tuple(args.room_size or setup.size_m),
                              tuple(args.mic or setup.mic_m), setup.rt60_guess_s, setup.extra)
    elif args.room_size or args.mic or not resumable:
        size, mic = args.room_size, args.mic
        if args.yes and not (size and mic):
            raise ValueError("--room TOML or both --room-size and --mic are needed with --yes")
        size = size or _ask_vec(ask, "Room size x y z in metres (e.g. 5 4 2.7): ")
        mic = mic or _ask_vec(ask, "Microphone position x y z in metres (e.g. 2.5 0.6 0.9): ")
        setup = RoomSetup(args.name or out.name or "my_room", tuple(size), tuple(mic))
    if setup is not None and args.name:
        setup = RoomSetup(args.name, setup.size_m, setup.mic_m, setup.rt60_guess_s, setup.extra)
    text = args.distances
    if text is None and not resumable:
        text = DEFAULT_DISTANCES if args.yes else (
            ask(f"Distances in metres [{DEFAULT_DISTANCES}]: ").strip() or DEFAULT_DISTANCES)
    distances = parse_distances(text) if text is not None else None
    for d in (distances or []) if setup is not None else []:
        setup.check_distance(d)   # before any device is touched
    cfg = SweepConfig(sample_rate=args.rate, sweep_s=args.sweep_s, repeats=args.repeats,
                      gap_s=args.gap_s, level_dbfs=args.level_db)
    if setup is not None and setup.rt60_guess_s is not None:
        rt = setup.rt60_guess_s
        if cfg.sweep_s < rt:
            raise ValueError(f"the sweep ({cfg.sweep_s:g} s) is shorter than the room's RT60 "
                             f"({rt:g} s from {args.room}): use --sweep-s {max(3.0, 2 * rt):g}")
        if cfg.gap_s < rt + 0.3:
            raise ValueError(f"the gap after each sweep ({cfg.gap_s:g} s) cannot hold the room's "
                             f"decay ({rt:g} s) plus the loop latency: use --gap-s {rt * 1.5 + 0.5:g}")
    return CalibrateOptions(out=out, setup=setup, cfg=cfg, distances=distances,
                            positions=args.positions,
                            latency_s=None if args.latency_ms is None else args.latency_ms / 1000,
                            measure_latency=args.measure_latency, interactive=not args.yes,
                            restart=args.restart, force=args.force)


def cmd_calibrate(args) -> int:
    """The ``calibrate`` command (errors end as one line from ``realtime_tse.cli.main.main``)."""
    def ask(prompt: str) -> str:
        try:
            return input(prompt)
        except EOFError:
            raise ValueError("no answer on standard input: give the values as options and add "
                           "--yes to run without questions") from None

    def say(line: str) -> None:
        print(line, flush=True)

    opts = options_from_args(args, ask)
    din = devices.find_device(args.input_device, "input")  # no device: a clear error, nothing written
    dout = devices.find_device(args.output_device, "output")
    say(f"microphone: {din.name}; loudspeaker: {dout.name}")
    try:
        with DuplexPlayRecord(din.name, dout.name, opts.cfg.sample_rate) as pr:
            run_calibration(opts, pr, ask, say)
    except Stop as e:
        say(str(e))
        return 1
    except (CalibrationError, AudioDeviceError) as e:
        kept = (work_dir_for(opts.out) / "session.json").is_file()
        # a ValueError, so that realtime_tse.cli.main.main prints it as one line (also under python -m)
        raise ValueError(f"{e}" + (" (finished takes are kept: the same command resumes)"
                                   if kept else "")) from e
    return 0
