"""Loading models and (re)starting the live engine off the Qt thread (:class:`EngineHost`), and what
the window says about a checkpoint (:func:`describe_room`)."""
from __future__ import annotations

import sys
import threading
import traceback
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ..live_config import LiveConfig
from ..audio.virtual_mic import VirtualMicError

__all__ = ["EngineHost", "describe_room", "one_line", "source_text"]


def _load_model(path, device):
    from ..model import load_model  # noqa: PLC0415 (late: torch loads after the window shows)
    return load_model(path, device=device)


def _live_engine(model, config: LiveConfig):
    from ..live.engine import LiveEngine  # noqa: PLC0415 (late: torch loads after the window shows)
    return LiveEngine(model, config)


def describe_room(prov: dict) -> str:
    """One line about the training room, from a checkpoint's provenance dict (the schema of
    :class:`realtime_tse.models.provenance.Provenance`; never raises)."""
    from realtime_tse.models.provenance import Provenance  # noqa: PLC0415
    if not isinstance(prov, dict) or not prov:
        return "training room: unknown (no provenance)"
    room = Provenance.from_dict(prov).room
    if room is None:
        return "training room: not recorded"
    if set(room) == {"name"}:  # only a name recorded: as it was written
        return f"training room: {room['name']}"
    name = str(room.get("name", "?")).upper()
    parts = [name]
    rmin, rmax = room.get("room_min"), room.get("room_max")
    try:
        if rmin and rmax:
            fmt = lambda v: " x ".join(f"{x:g}" for x in v)  # noqa: E731
            parts.append(f"{fmt(rmin)} m" if list(rmin) == list(rmax) else f"{fmt(rmin)} to {fmt(rmax)} m")
        t0, t1 = room.get("rt60_min"), room.get("rt60_max")
        if t0 is not None:
            parts.append(f"RT60 {t0:g} s" if t1 in (None, t0) else f"RT60 {t0:g}-{t1:g} s")
        if room.get("mic") is None and "mic" in room:
            parts.append("random mic")
    except (TypeError, ValueError):
        pass
    return "training room: " + ", ".join(parts)



class EngineHost(QObject):
    """Loads models and (re)starts the engine on a helper thread; one job at a time, latest wins.

    Order of a job: load the model (if it changed), build the new engine (this checks the devices
    and opens the input file), and only then stop the old engine and start the new one; so a bad
    checkpoint or an unreadable file leaves the running engine alone.

    Signals (queued to the Qt thread):
        progress(text): what the job is doing now, in words ("loading the model ...", "opening the
            demo input ...", "starting audio ...").
        ready(engine, model): a new engine is running (the previous one has been stopped).
        failed(kind, message): "model" (bad checkpoint) or "source" (unknown device, unreadable
            file): the previous engine keeps running; "audio" (the new engine failed to start):
            no engine runs now.
        engine_error(engine, message): an engine reported an error (device lost, ...).
    """

    progress = Signal(str)
    ready = Signal(object, object)
    failed = Signal(str, str)
    engine_error = Signal(object, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._lock = threading.Lock()
        self._pending = None
        self._thread: threading.Thread | None = None
        self.engine = None
        self.model = None
        self.model_key = None
        self.busy = False

    def request(self, *, model_path, source, output, params, device="auto",
                live: LiveConfig | None = None) -> None:
        """Start (or restart) the engine. ``source``: ("device", id) | ("demo"|"file", path);
        ``live``: the live settings (the source and output given here replace its devices)."""
        job = dict(model_path=model_path, source=source, output=output, params=dict(params),
                   device=device, live=live if live is not None else LiveConfig())
        with self._lock:
            self._pending = job
            self.busy = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="tse-engine-host", daemon=True)
                self._thread.start()

    def _run(self):
        while True:
            with self._lock:
                job, self._pending = self._pending, None
                if job is None:
                    self.busy = False
                    return
            self._do(job)

    def _do(self, job):
        key = (str(job["model_path"]) if job["model_path"] else None, job["device"])
        model = self.model
        if model is None or key != self.model_key:
            name = Path(job["model_path"]).name if job["model_path"] else "the shipped model"
            first = "torch" not in sys.modules
            self.progress.emit(f"loading {name}" + (" and torch (the first start takes longest)"
                                                    if first else "") + "\u2026")
        if model is None or key != self.model_key:
            try:
                model = _load_model(job["model_path"], job["device"])
            except Exception as e:  # CheckpointError, OSError, anything odd in a user's file
                self.failed.emit("model", f"Could not load the model: {one_line(e)}")
                return
        kind, value = job["source"]
        # output None = no playback ("null" for the engine); the engine's None means "default"
        kw = dict(loop=True, output_device="null" if job["output"] is None else job["output"],
                  input_device=None, input_file=None)
        if kind == "device":
            kw["input_device"] = value
        else:
            kw["input_file"] = str(value)
        names = [v for v in (kw.get("input_device"), kw["output_device"])
                 if isinstance(v, str) and v != "null"]
        if names:
            try:
                from realtime_tse.audio.devices import list_devices  # noqa: PLC0415
                known = {d.name for d in list_devices()}
                if not all(n in known for n in names):
                    # a device that appeared after start: PortAudio sees it only when initialised
                    # again, which needs every stream closed
                    self.stop_engine()
                    list_devices(refresh=True)
            except Exception:  # noqa: BLE001  (no PortAudio: the engine says so below)
                pass
        self.progress.emit(f"opening {source_text(job['source'])}\u2026")
        params = dict(job["params"])
        lo, hi = model.distance_range
        params["distance_m"] = min(hi, max(lo, float(params.get("distance_m", (lo + hi) / 2))))
        try:
            eng = _live_engine(model, LiveConfig.build(job["live"], **kw))
            eng.on_error = lambda msg, _e=eng: self.engine_error.emit(_e, str(msg))
            for k, v in params.items():
                setattr(eng, k, v)
        except Exception as e:  # unknown device, unreadable file, ...
            self.failed.emit("source", f"Could not use {source_text(job['source'])}: {one_line(e)}")
            return
        self.stop_engine()
        self.model, self.model_key = model, key
        self.progress.emit("starting audio\u2026")
        try:
            try:
                eng.start()
            except VirtualMicError as e:   # no sound server for it: the audio runs without it
                self.failed.emit("virtual_mic", f"No virtual microphone: {one_line(e)}")
                eng = _live_engine(model, LiveConfig.build(job["live"], virtual_mic=None, **kw))
                eng.on_error = lambda msg, _e=eng: self.engine_error.emit(_e, str(msg))
                for k, v in params.items():
                    setattr(eng, k, v)
                eng.start()
        except Exception as e:
            try:
                eng.stop()
            except Exception:
                pass
            self.failed.emit("audio", f"Could not start audio ({source_text(job['source'])}): {one_line(e)}")
            return
        self.engine = eng
        self.ready.emit(eng, model)

    def stop_engine(self):
        eng, self.engine = self.engine, None
        if eng is not None:
            try:
                eng.stop()
            except Exception:
                traceback.print_exc()

    def wait(self, timeout: float = 10.0) -> bool:
        t = self._thread
        if t is not None:
            t.join(timeout)
        return not (t and t.is_alive())



def one_line(e) -> str:
    """The first line of an exception's message (its type name when empty)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def source_text(source) -> str:
    """A source ("device", id) | ("demo"|"file", path) in words."""
    kind, value = source
    if kind == "demo":
        return "demo input"
    if kind == "file":
        return f"file {Path(value).name}"
    return f"input device {value}"
