"""The live settings in one place (:class:`LiveConfig`): built by the CLI, saved and restored by the
window (QSettings, as JSON; this module imports neither torch nor Qt), taken by :class:`realtime_tse.live.LiveEngine`, which hands the audio
part to :class:`realtime_tse.audio_io.DuplexStream` (:meth:`LiveConfig.stream_kwargs`)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from .threads import AUDIO_NICE

__all__ = ["LiveConfig", "DEFAULT_BLOCK_MS", "LIVE_GRID_STEP_M"]

# defined here, where the window can import them without torch; the streamer and the scan grid use them
DEFAULT_BLOCK_MS = 64.0  # the block of the streamer, the live engine, the CLI and the window (ms)
LIVE_GRID_STEP_M = 0.5   # default grid step of the live scan (m)

# the DuplexStream settings that LiveConfig names; others go through ``stream_options``
_STREAM_FIELDS = ("device_rate", "prefill_blocks", "device_blocksize", "latency", "jitter_ms",
                  "streams", "max_input_backlog_s")


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
        scan: run the distance scan; scan_seconds: audio the profile covers; scan_step_m: grid step
            (``d_min .. d_max``) unless ``scan_distances_m`` gives the grid; scan_update_s: causal
            models update after this much new audio; scan_duty: bidirectional models' duty cycle
            (fraction of one core at most).
        torch_threads: intra-op threads for the model on CPU (None: leave as is).
        audio_nice: nice value asked for the audio worker thread (None: leave as is).
        device_rate, prefill_blocks, device_blocksize, latency, jitter_ms, streams,
            max_input_backlog_s: the audio stream's settings (None: its defaults; see
            :class:`realtime_tse.audio_io.DuplexStream`).
        stream_options: any other ``DuplexStream`` keyword (e.g. ``stall_timeout_s``).
    """

    block_ms: float = DEFAULT_BLOCK_MS
    input_device: int | str | None = None
    output_device: int | str | None = None
    input_file: str | None = None
    loop: bool = True
    distance_m: float | None = None
    scan: bool = True
    scan_seconds: float = 3.0
    scan_step_m: float = LIVE_GRID_STEP_M
    scan_distances_m: tuple | None = None
    scan_duty: float = 0.5
    scan_update_s: float = 0.25
    torch_threads: int | None = 1
    audio_nice: int | None = AUDIO_NICE
    device_rate: int | None = None
    prefill_blocks: float | None = None
    device_blocksize: int | None = None
    latency: float | str | None = None
    jitter_ms: float | None = None
    streams: str = "auto"
    max_input_backlog_s: float | None = None
    stream_options: dict = field(default_factory=dict)

    @classmethod
    def build(cls, base: "LiveConfig | None" = None, **settings) -> "LiveConfig":
        """``base`` (default: the defaults) with ``settings`` over it; keywords that are not fields
        go to ``stream_options`` (DuplexStream keywords)."""
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in settings.items() if k in names}
        extra = {k: v for k, v in settings.items() if k not in names}
        cfg = dataclasses.replace(base if base is not None else cls(), **known)
        if extra:
            cfg.stream_options = {**cfg.stream_options, **extra}
        if cfg.input_file is not None:
            cfg.input_file = str(cfg.input_file)
        return cfg

    def stream_kwargs(self) -> dict:
        """The keywords for ``DuplexStream`` beyond the devices, file and callbacks (None-valued
        settings left out, so the stream's own defaults apply)."""
        kw = {k: getattr(self, k) for k in _STREAM_FIELDS if getattr(self, k) is not None}
        if kw.get("streams") == "auto":
            del kw["streams"]
        kw.update(self.stream_options)
        return kw

    def to_json(self) -> str:
        """JSON text (the window stores it in its settings)."""
        d = dataclasses.asdict(self)
        if d["scan_distances_m"] is not None:
            d["scan_distances_m"] = [float(v) for v in d["scan_distances_m"]]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> "LiveConfig":
        """Read :meth:`to_json`'s text; unknown keys are ignored, a missing or unreadable text
        gives the defaults (never raises: settings files outlive versions)."""
        try:
            d = json.loads(text) if text else {}
        except (TypeError, ValueError):
            return cls()
        if not isinstance(d, dict):
            return cls()
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if isinstance(d.get("scan_distances_m"), list):
            d["scan_distances_m"] = tuple(d["scan_distances_m"])
        try:
            return cls(**d)
        except TypeError:
            return cls()
