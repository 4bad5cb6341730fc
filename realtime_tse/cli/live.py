"""The live commands of ``realtime-tse``: ``stream`` (devices or a file through the live engine)
and no arguments (the window, or without a display the headless demo). Shared helpers (errors,
reading audio, loading the model) are in :mod:`realtime_tse.cli.common`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .common import (DEMO_INPUT, PROG, CLIError, _check_distance, _fmt_talkers, _load, _note,
                     check_output_path, exit_status, read_audio)

__all__ = ["cmd_stream", "cmd_default", "headless_demo"]


def _run_live(eng, seconds: float | None, quiet: bool = False, label: str = "") -> int:
    """Poll a started LiveEngine: print scan updates and stats until ``seconds`` pass, the input
    ends, a recording fails (disk full, ...), Ctrl-C or SIGTERM / SIGHUP (raised like Ctrl-C, as
    :class:`realtime_tse.cli.common.StopSignal`). Returns an exit status: 0, 1 (an audio or recording
    error, printed), 128 + the signal when interrupted (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP)."""
    t0 = time.monotonic()
    last_scan, last_stat = 0, t0
    last_text, last_print = None, t0
    status = 0
    try:
        while True:
            if eng.wait(0.2):
                break
            now = time.monotonic()
            if eng.error or eng.recording_error:
                break
            if seconds is not None and now - t0 >= seconds:
                break
            if eng.scan_count != last_scan and eng.latest_scan is not None:
                # print when the detected distances change, else at most every 2 s
                last_scan, text = eng.scan_count, _fmt_talkers(eng.latest_scan)
                if text != last_text or now - last_print >= 2.0:
                    last_text, last_print = text, now
                    print(f"[{now - t0:6.1f} s] {text}", flush=True)
            if not quiet and now - last_stat >= 5.0:
                last_stat = now
                print(f"[{now - t0:6.1f} s] RTF {eng.rtf:.2f}, xruns {eng.xruns}, delay "
                      f"{_fmt_delay(eng)}, in {eng.input_level_db:.0f} dBFS, out "
                      f"{eng.output_level_db:.0f} dBFS", flush=True)
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, SIGHUP (cli.StopSignal)
        print("stopped" + (f" (signal {e.signum})" if hasattr(e, "signum") else ""),
              file=sys.stderr)
        status = exit_status(e)
    finally:
        rec = eng.recorder  # (stop() closes it and lets go of it)
        eng.stop()
    if eng.error:
        print(f"{PROG}: error: {eng.error}", file=sys.stderr)
        return 1
    if eng.recording_error and rec is not None:
        print(f"{PROG}: error: the recording stopped at {rec.duration_s:.1f} s: "
              f"{eng.recording_error} ({rec.path} holds the audio up to there)", file=sys.stderr)
        return 1
    return status


def _fmt_delay(eng) -> str:
    """The input-to-output delay as the devices report it, split into its parts (ms)."""
    a = eng.algorithmic_latency_ms
    t = getattr(eng, "total_latency_ms", a)
    st = eng.stream
    if st is None or st.mode != "duplex":
        return f"{a:.0f} ms algorithmic (no device round trip)"
    return (f"{t:.0f} ms ({a:.0f} algorithmic + {t - a:.0f} buffers and devices, "
            f"{_path_text(st)})")


def _path_text(st) -> str:
    """The audio path of a device stream in words ("PipeWire JACK, quantum 128/48000", "ALSA")."""
    from ..audio import host_path  # noqa: PLC0415
    if getattr(st, "audio_path", None) == "jack":
        return "path " + host_path.describe(host_path.JACK_HOSTAPI)
    info = st.output_info or st.input_info
    return "path " + (info.hostapi if info is not None else "?")


def cmd_stream(args) -> int:
    from ..audio.devices import AudioDeviceError  # noqa: PLC0415
    from ..audio.streams import check_rt_priority  # noqa: PLC0415
    from ..audio.virtual_mic import VirtualMicError  # noqa: PLC0415
    from ..live.engine import LiveEngine  # noqa: PLC0415
    from ..live_config import LiveConfig  # noqa: PLC0415
    if args.input_file and args.input_device is not None:
        raise CLIError("give either --input-device or --input-file, not both")
    if args.record:   # before any audio starts: what is recorded must have a folder to go to
        check_output_path(args.record, "take.wav")
    if args.input_file:
        read_audio(args.input_file)  # clear errors for missing / empty files before any device
    if args.seconds is not None and args.seconds <= 0:
        raise CLIError(f"--seconds must be positive, got {args.seconds}")
    try:
        check_rt_priority(args.rt_priority, "--rt-priority")
    except ValueError as e:
        raise CLIError(str(e)) from e
    model = _load(args)
    d = _check_distance(model, args.distance)
    try:
        live = LiveConfig(block_ms=args.block_ms, input_device=args.input_device,
                          output_device=args.output_device, input_file=args.input_file,
                          loop=args.loop, distance_m=d, scan=not args.no_scan,
                          torch_threads=args.threads or 1, rt_priority=args.rt_priority,
                          mode=args.mode, virtual_mic=args.virtual_mic,
                          audio_path=getattr(args, "audio_path", "auto"))
        eng = LiveEngine(model, live)
    except AudioDeviceError as e:
        raise CLIError(str(e)) from e
    rec = None
    try:
        if args.record:
            rec = eng.start_recording(args.record, record_input=args.record_input)
        eng.start()
    except (AudioDeviceError, VirtualMicError) as e:
        eng.stop()
        raise CLIError(str(e)) from e
    except BaseException:  # Ctrl-C / SIGTERM while starting: close the recording all the same
        eng.stop()
        raise
    st = eng.stream
    src = args.input_file or (str(st.input_info) if st.input_info else "?")
    dst = str(st.output_info) if st.output_info else "no playback"
    if eng.virtual_mic is not None:
        dst += f" and the virtual microphone '{eng.virtual_mic.name}' ({eng.virtual_mic.description})"
    what = "everyone but the talkers at" if args.mode == "suppress" else "distance"
    print(f"streaming {src} -> {dst}: {what} {d:g} m, model {model.name} "
          f"({model.sample_rate} Hz, {model.device.type}), blocks {eng.streamer.block_ms:g} ms, "
          f"delay {_fmt_delay(eng)}" + ("" if args.seconds else "; Ctrl-C stops"),
          flush=True)
    rc = _run_live(eng, args.seconds)
    if rec is not None and not rec.failed:
        print(f"recorded {rec.path} ({rec.duration_s:.2f} s, {rec.sample_rate} Hz)"
              + (f" and the input to {rec.input_path}" if rec.input_path else ""))
    sst = eng.stream.stats() if eng.stream is not None else {}
    extra = "".join(f", {k.replace('_', ' ')} {sst[k]}" for k in
                    ("output_drops", "input_backlog_drops", "stall_restarts") if sst.get(k))
    print(f"xruns: {eng.xruns}, RTF {eng.rtf:.2f}, delay {_fmt_delay(eng)}{extra}")
    return rc


# ------------------------------------------------------------------------------------ no arguments
def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM"))


def _qt_can_start(timeout: float = 20.0, while_waiting=None) -> tuple[bool, str]:
    """Try to create a QApplication in a child process (a Qt that cannot reach the display aborts
    the whole process, so it is never tried in this one). ``while_waiting()`` runs in this process
    while the child checks (the window's imports: the two overlap on a multi-core machine)."""
    code = "from PySide6.QtWidgets import QApplication; QApplication([]); print('ok')"
    try:
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    except OSError as e:
        return False, str(e)
    if while_waiting is not None:
        while_waiting()
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        p.kill()
        p.communicate()
        return False, str(e)
    if p.returncode == 0 and "ok" in out:
        return True, ""
    lines = [ln.strip() for ln in (err or out).strip().splitlines() if ln.strip()]
    key = [ln for ln in lines if "could not" in ln.lower() or "cannot" in ln.lower()]
    return False, (key or lines or [f"exit status {p.returncode}"])[0]


def _import_gui():
    """The window's ``run`` (importing Qt, pyqtgraph and the window's modules), or the
    ImportError that stopped it."""
    try:
        from ..gui.launch import run as gui_run  # noqa: PLC0415
    except ImportError as e:
        return e
    return gui_run


def cmd_default(args) -> int:
    if not args.headless and _has_display():
        gui = []
        ok, why = _qt_can_start(while_waiting=lambda: gui.append(_import_gui()))
        if ok:
            gui_run = gui[0] if gui else _import_gui()
            if isinstance(gui_run, ImportError):
                why = f"the GUI is not available ({gui_run})"
            else:   # the same options (realtime_tse.app_options): passed on as they were parsed
                return int(gui_run(args) or 0)
        _note(f"cannot start the window ({why}); running the headless demo instead")
    return headless_demo(args)


def headless_demo(args) -> int:
    """The app without the window: the input (``--input-file``, else the demo) streamed through
    the live engine into a file (``-o``, else a new file in the recordings folder), played on
    the output device when there is one. Returns the exit status."""
    from ..app_options import unused_options  # noqa: PLC0415
    from ..live.engine import LiveEngine  # noqa: PLC0415
    from ..live_config import DEFAULT_BLOCK_MS, LiveConfig  # noqa: PLC0415
    from ..live.recording_paths import recording_path, writable_recordings_dir  # noqa: PLC0415
    unused = unused_options(args, window=False)
    if unused:
        _note(f"{', '.join(unused)}: for the window only, not used without it")
    if args.output is not None:   # before any audio starts
        check_output_path(args.output, "demo.wav")
    src = Path(args.input_file) if args.input_file else DEMO_INPUT
    x, sr, _ = read_audio(src)
    length = len(x) / sr
    seconds = args.seconds if args.seconds is not None else length
    if seconds <= 0:
        raise CLIError(f"--seconds must be positive, got {seconds}")
    model = _load(args)
    d = _check_distance(model, args.distance if args.distance is not None else 1.0)
    out = args.output
    if out is None:
        folder, why = writable_recordings_dir()
        if why:
            _note(why)
        out = recording_path(folder, prefix="tse-demo", suffix=f"-{d:g}m")
    output_device = "null" if args.no_output else args.output_device
    if output_device is None:  # play on the default device when there is one, else file only
        try:
            from ..audio.devices import find_device  # noqa: PLC0415
            find_device(None, "output")
        except Exception:  # noqa: BLE001 - no PortAudio, no device: no sound, same job
            output_device = "null"
    block_ms = args.block_ms if args.block_ms is not None else DEFAULT_BLOCK_MS
    eng = LiveEngine(model, LiveConfig(block_ms=block_ms, input_file=str(src),
                                       output_device=output_device, loop=seconds > length + 1e-6,
                                       distance_m=d, torch_threads=args.threads or 1))
    rec = eng.start_recording(out)
    truth = ""
    meta = src.with_name("demo.json")
    if src == DEMO_INPUT and meta.is_file():
        try:
            t = json.loads(meta.read_text())["talkers"]
            truth = " (true talker distances: " + ", ".join(
                f"{v['distance_m']:g} m" for v in t.values()) + ")"
        except (ValueError, KeyError, OSError):
            pass
    eng.start()
    st = eng.stream
    dst = str(st.output_info) if st.output_info else "no audio device (file only)"
    print(f"headless: no window; streaming {src.name}{truth} through {model.name} "
          f"({model.sample_rate} Hz, {model.device.type}) at {d:g} m for {seconds:.1f} s, "
          f"output -> {dst}", flush=True)
    from ..model_card import MODEL_CARD, measured_line, network_text  # noqa: PLC0415
    print(f"{model.name}: {network_text(model.config, model.provenance)}. "
          f"{measured_line(model.provenance)} (model card: {MODEL_CARD})", flush=True)
    rc = _run_live(eng, seconds, quiet=True)
    print(f"extracted audio ({d:g} m): {rec.path} ({rec.duration_s:.1f} s, {rec.sample_rate} Hz)")
    print(f"RTF {eng.rtf:.2f}, xruns {eng.xruns}, algorithmic latency "
          f"{eng.algorithmic_latency_ms:.0f} ms")
    from ..launch_hint import window_hint  # noqa: PLC0415
    print(window_hint())
    return rc
