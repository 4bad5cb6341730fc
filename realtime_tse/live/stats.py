"""What the live engine reports: one typed snapshot (:class:`LiveStats`) that the window's status
bar, the CLI and the benchmarks read, instead of probing the engine's attributes one by one."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

__all__ = ["LiveStats"]

NAN = float("nan")


@dataclass
class LiveStats:
    """A snapshot of :class:`realtime_tse.live.engine.LiveEngine` (``LiveEngine.stats()``).

    Attributes:
        running: audio is flowing.
        error: the stream's error message (None while healthy); notice: a one-line remark.
        device: compute device of the model ("cpu" / "cuda"); model: the checkpoint's name.
        rtf: processing time / block duration, smoothed (about 1 s).
        distance_m, bypass, wet, volume: the controls now (metres, flag, 0..1, 0..2).
        input_level_db, output_level_db: RMS level of the last block, dBFS (floor -120).
        xruns: device under/overflows since start.
        algorithmic_latency_ms: block + model look-ahead; device_latency_ms: PortAudio's reported
            input + output latency; estimated_latency_ms: what the design implies;
            total_latency_ms: input-to-output delay from what the devices report now (ms).
        model_sample_rate: the rate the model runs at (Hz); device_sample_rate: the stream's
            device rate (its output's, else its input's; the model's without a device, Hz).
        source_sample_rate: the rate of what is listened to (Hz): the input file's, or the one
            the input device runs at (the rate of a recording); 0 without a stream.
        output_sample_rate: the rate the output device plays at (Hz); 0 without playback.
        scan_count, scan_rate_hz, scan_skips: distance-scan updates, their rate, times it skipped.
        nonfinite_in: NaN/Inf input samples replaced by 0; state_resets: streaming states restarted;
        limited_samples, limiter_max_db: output samples the -1 dBFS limiter touched, its deepest
            gain reduction (dB).
        stream: the audio stream's own figures (``AudioStream.stats()``: ``mode``,
            ``max_process_s``, ``device_rate``, ...; empty without a stream).

    ``stats["key"]`` and ``stats.get("key")`` read a field or, failing that, a ``stream`` figure;
    :meth:`as_dict` gives the flat dict (JSON-able).
    """

    running: bool = False
    error: str | None = None
    notice: str | None = None
    device: str = "cpu"
    model: str = ""
    rtf: float = NAN
    distance_m: float = NAN
    bypass: bool = False
    wet: float = 1.0
    volume: float = 1.0
    input_level_db: float = -120.0
    output_level_db: float = -120.0
    xruns: int = 0
    algorithmic_latency_ms: float = NAN
    device_latency_ms: float = 0.0
    estimated_latency_ms: float = NAN
    total_latency_ms: float = NAN
    model_sample_rate: int = 0
    device_sample_rate: int = 0
    source_sample_rate: int = 0
    output_sample_rate: int = 0
    scan_count: int = 0
    scan_rate_hz: float = 0.0
    scan_skips: int = 0
    nonfinite_in: int = 0
    state_resets: int = 0
    limited_samples: int = 0
    limiter_max_db: float = 0.0
    stream: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The stream's figures, then this snapshot's fields over them, in one flat dict."""
        d = dict(self.stream)
        d.update({k: v for k, v in asdict(self).items() if k != "stream"})
        return d

    def __getitem__(self, key: str):
        """A field, else a ``stream`` figure. Raises KeyError when neither has ``key``."""
        if key in _FIELDS:
            return getattr(self, key)
        return self.stream[key]

    def get(self, key: str, default=None):
        """:meth:`__getitem__` with a default."""
        try:
            return self[key]
        except KeyError:
            return default


_FIELDS = {f.name for f in fields(LiveStats)} - {"stream"}
