"""The live engine's recording (a part of :class:`realtime_tse.live.engine.LiveEngine`): one
:class:`realtime_tse.live.recorder.Recorder` at a time, fed by a tap on the engine's audio stream
that brings the model-rate blocks to the recording's rate
(:class:`realtime_tse.live.record_rate.ResampledTap`).

A recording outlives a restart of the stream (the engine adds its tap to the new stream), and a
write that fails (disk full, ...) takes the tap off the stream and keeps the reason
(:attr:`EngineRecording.error`) while the audio goes on.
"""
from __future__ import annotations

import threading

__all__ = ["EngineRecording"]


class EngineRecording:
    """The engine's one recording at a time.

    Args:
        stream_of: callable returning the engine's current audio stream
            (:class:`realtime_tse.audio.base.AudioStream`, or None): the tap goes on, and comes
            off, the stream running at that moment.
    Attributes:
        recorder: the current Recorder (also after its write failed, until :meth:`stop`), or None.
        tap: the tap on the stream (kept: ``remove_tap`` compares identity), or None.
        error: why the last recording stopped by itself, or None.
    """

    def __init__(self, stream_of):
        self._stream_of = stream_of
        self.recorder = None
        self.tap = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def start(self, path, *, model_rate: int, sample_rate: int | None, model_name: str,
              record_input: bool, distance_m: float, extra: dict):
        """Start recording the output to ``path`` (None: a time-stamped WAV in the recordings
        folder, :func:`realtime_tse.live.recording_paths.recording_path`; never overwrites) at
        ``sample_rate`` Hz, or when None at the input's rate
        (:func:`realtime_tse.live.record_rate.recording_rate`; ``model_rate``, Hz, without an input
        to follow). ``distance_m`` (metres) is noted as the first query distance; ``extra`` goes
        into the sidecar. Returns the Recorder.

        Raises:
            RuntimeError: a recording is already running.
            ValueError / OSError: from the Recorder (a bad format, a folder that cannot be written).
        """
        from .record_rate import ResampledTap, recording_rate  # noqa: PLC0415
        from .recorder import Recorder  # noqa: PLC0415
        from .recording_paths import recording_path  # noqa: PLC0415
        with self._lock:
            if self.recorder is not None and not self.recorder.closed:
                raise RuntimeError(f"already recording to {self.recorder.path}")
            if path is None:
                path = recording_path()
            self.error = None
            stream = self._stream_of()
            rate = int(sample_rate or recording_rate(stream, model_rate))
            rec = Recorder(path, rate, model_name=model_name, record_input=record_input,
                           on_error=self._on_error, extra=extra)
            rec.note_distance(distance_m)
            self.recorder = rec
            self.tap = ResampledTap(rec.tap, model_rate, rate)
            if stream is not None:
                stream.add_tap(self.tap)
            return rec

    def reattach(self) -> None:
        """Put the running recording's tap on the current stream (a new stream after a restart;
        :meth:`start` put it on the previous one). Nothing when no recording runs."""
        rec, tap = self.recorder, self.tap
        if rec is not None and not rec.closed and tap is not None:
            self._stream_of().add_tap(tap)

    def stop(self):
        """Stop recording (file and sidecar finalised and kept); returns the Recorder or None."""
        with self._lock:
            rec, self.recorder = self.recorder, None
            tap, self.tap = self.tap, None
        if rec is None:
            return None
        stream = self._stream_of()
        if stream is not None and tap is not None:
            stream.remove_tap(tap)
        rec.close()
        return rec

    def _on_error(self, message: str) -> None:
        """The recorder's write failed and it stopped (its writer thread): take its tap off the
        stream and keep the message (:attr:`error`); the audio goes on."""
        self.error = message
        tap, stream = self.tap, self._stream_of()
        if tap is not None and stream is not None:
            stream.remove_tap(tap)
