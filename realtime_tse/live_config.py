"""The live settings in one place (:class:`LiveConfig`): built by the CLI, saved and restored by the
window (QSettings, as JSON; this module imports neither torch nor Qt), taken by
:class:`realtime_tse.live.engine.LiveEngine` and by the audio stream it opens
(:func:`realtime_tse.audio.streams.make_stream`)."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from .threads import AUDIO_NICE

__all__ = ["LiveConfig", "DEFAULT_BLOCK_MS", "LIVE_GRID_STEP_M"]

# defined here, where the window can import them without torch; the streamer and the scan grid use them
DEFAULT_BLOCK_MS = 64.0  # the block of the streamer, the live engine, the CLI and the window (ms)
LIVE_GRID_STEP_M = 0.5   # default grid step of the live scan (m)

@dataclass
class LiveConfig:
    """Settings of the live path (units in the names: ms, s, m, Hz).

    Attributes:
        block_ms: model block length (rounded to whole hops by the streamer).
        input_device / output_device: PortAudio index or name (None: the default device);
            output ``"null"``: no output device (taps and recording only).
        input_file: a file that stands in for the microphone, paced in real time (None: a device).
        loop: restart the file at its end.
        distance_m: initial query distance (None: the middle of the model's range).
        mode: ``"extract"`` (the talkers at the distance) or ``"suppress"`` (everyone else),
            :mod:`realtime_tse.modes`; changeable while running (``LiveEngine.mode``).
        virtual_mic: the name of a virtual microphone that other apps record the output from
            (:mod:`realtime_tse.audio.virtual_mic`; None: none). It works beside any output device.
        scan: run the distance scan; scan_seconds: audio the profile covers; scan_step_m: grid step
            (``d_min .. d_max``) unless ``scan_distances_m`` gives the grid; scan_update_s: causal
            models update after this much new audio; scan_duty: bidirectional models' duty cycle
            (fraction of one core at most).
        torch_threads: intra-op threads for the model on CPU (None: leave as is).
        audio_nice: nice value asked for the audio worker thread (None: leave as is).
        rt_priority: ``SCHED_FIFO`` priority (1..99) the audio threads ask for first (the
            stream's worker, the PortAudio callbacks, the sound library's threads); 0 = no
            ``SCHED_FIFO``, nice ``audio_nice`` only; None = the environment's ``RTSE_RT_SCHED``
            decides (default priority 3; see :mod:`realtime_tse.threads`).
        device_rate, prefill_blocks, device_blocksize, latency, jitter_ms, streams,
            max_input_backlog_s, ring_seconds, stall_timeout_s, first_callback_timeout_s,
            max_start_retries, startup_s, boost_priority, max_stall_restarts: the audio stream's
            settings (None: chosen by the stream; see :func:`realtime_tse.audio.streams.make_stream`).
        input_blocksize: frames per input callback with separate streams (None: chosen by the
            stream; the output keeps ``device_blocksize``).
        audio_path: how the devices reach the sound server: ``"auto"`` (PipeWire's JACK interface
            where PipeWire and its libjack are there and the devices are JACK devices, else
            ALSA), ``"jack"`` or ``"alsa"`` (:mod:`realtime_tse.audio.host_path`).
        quality: soxr quality of an input file's resampling to the model rate (devices are
            resampled by :class:`realtime_tse.audio.resample.PolyphaseStream`).
    """

    block_ms: float = DEFAULT_BLOCK_MS
    input_device: int | str | None = None
    output_device: int | str | None = None
    input_file: str | None = None
    loop: bool = True
    distance_m: float | None = None
    mode: str = "extract"
    virtual_mic: str | None = None
    scan: bool = True
    scan_seconds: float = 3.0
    scan_step_m: float = LIVE_GRID_STEP_M
    scan_distances_m: tuple | None = None
    scan_duty: float = 0.5
    scan_update_s: float = 0.25
    torch_threads: int | None = 1
    audio_nice: int | None = AUDIO_NICE
    rt_priority: int | None = None
    device_rate: int | None = None
    prefill_blocks: float | None = None
    device_blocksize: int | None = None
    input_blocksize: int | None = None
    latency: float | str | None = None
    jitter_ms: float | None = None
    streams: str = "auto"
    audio_path: str = "auto"
    max_input_backlog_s: float | None = None
    ring_seconds: float = 2.0
    quality: str = "HQ"
    stall_timeout_s: float | None = None
    first_callback_timeout_s: float = 5.0
    max_start_retries: int = 2
    startup_s: float = 1.0
    boost_priority: bool = True
    max_stall_restarts: int = 3

    @classmethod
    def build(cls, base: "LiveConfig | None" = None, **settings) -> "LiveConfig":
        """``base`` (default: the defaults) with ``settings`` (field names) over it.

        Raises:
            TypeError: a keyword that is not a field.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise TypeError(f"unknown live setting(s): {', '.join(unknown)}")
        cfg = dataclasses.replace(base if base is not None else cls(), **settings)
        if cfg.input_file is not None:
            cfg.input_file = str(cfg.input_file)
        return cfg

    def to_json(self) -> str:
        """JSON text (the window stores it in its settings)."""
        d = dataclasses.asdict(self)
        if d["scan_distances_m"] is not None:
            d["scan_distances_m"] = [float(v) for v in d["scan_distances_m"]]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None, bad: list | None = None) -> "LiveConfig":
        """Read :meth:`to_json`'s text; unknown keys are ignored, a missing or unreadable text
        gives the defaults, and so does a value of the wrong kind for its field (a number field
        that is not a finite number, a text field that is not text) (never raises: settings files
        outlive versions and get edited by hand). ``bad``: a list to which the keys of values
        left out are appended (``"live"`` when the whole text is unreadable)."""
        bad = bad if bad is not None else []
        try:
            d = json.loads(text) if text else {}
        except (TypeError, ValueError):
            bad.append("live")
            return cls()
        if not isinstance(d, dict):
            bad.append("live")
            return cls()
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in fields}
        if isinstance(d.get("scan_distances_m"), list):
            d["scan_distances_m"] = tuple(d["scan_distances_m"])
        for k in list(d):
            if not _fits(d[k], fields[k]):
                bad.append(f"live/{k}")
                del d[k]
        try:
            return cls(**d)
        except (TypeError, ValueError):
            bad.append("live")
            return cls()


def _fits(value, default) -> bool:
    """Whether a value read from a settings file can stand for a field with this default: a
    finite number for a number field, text for a text field, True/False for a switch (None is
    accepted wherever the field is optional or the value matches the default's kind)."""
    if value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return isinstance(default, bool) or default is None
    if isinstance(value, (int, float)):
        return math.isfinite(value) and (default is None or isinstance(default, (int, float)))
    if isinstance(value, str):
        return default is None or isinstance(default, str)
    if isinstance(value, tuple):
        return all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
    return False
