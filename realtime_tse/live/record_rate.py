"""The sample rate of recordings (:func:`recording_rate`) and the tap that brings the live path's
model-rate blocks to it (:class:`ResampledTap`).

One rule for every recording the app makes (``extract``, ``stream --record``, the headless demo and
the window's Record button): a recording is written at the rate of what was listened to, the input
file's rate or the rate the input device runs at, not at the model's rate. The model's rate goes
into the recording's JSON sidecar (``model_sample_rate``).
"""
from __future__ import annotations

from ..audio.resample import PolyphaseStream

__all__ = ["recording_rate", "ResampledTap"]


def recording_rate(stream, model_rate: int) -> int:
    """The sample rate (Hz) a recording of ``stream`` is written at.

    Args:
        stream: the live :class:`realtime_tse.audio.base.AudioStream` (or None).
        model_rate: the model's sample rate (Hz): used only when there is no input to follow.
    Returns:
        The input file's rate when the stream reads a file; else, when it captures a device, the
        rate the input device runs at (``input_rate``: the model's rate where the device takes it,
        else the device's own; ``device_rate`` for a stream that has one rate for both directions);
        else ``model_rate``.
    """
    src = getattr(stream, "_file", None)
    if src is not None:
        return int(src.file_rate)
    if getattr(stream, "captures", False):
        rate = getattr(stream, "input_rate", 0) or getattr(stream, "device_rate", 0)
        if rate:
            return int(rate)
    return int(model_rate)


class ResampledTap:
    """A stream tap ``tap(input_block, output_block)`` taking model-rate blocks and handing them to
    ``tap`` at ``rate`` Hz (a :class:`PolyphaseStream` per direction, in the calling thread: a few
    multiply-adds per sample). The filter is the linear-phase one (``phase="linear"``: a file has
    no use for the live path's short delay, and every frequency keeps the same delay); its delay
    is trimmed from the start, so the recording stays aligned with the sidecar's times (the last
    few milliseconds, the filter's delay, are not written).

    Args:
        tap: the callable receiving ``(input_block, output_block)``, float32 1-D arrays at ``rate``.
        model_rate: rate of the blocks this tap is given (Hz).
        rate: rate ``tap`` receives (Hz); equal rates pass the blocks through unchanged.
    """

    def __init__(self, tap, model_rate: int, rate: int):
        self.tap = tap
        self.model_rate, self.rate = int(model_rate), int(rate)
        same = self.model_rate == self.rate
        self._rs = None if same else [PolyphaseStream(self.model_rate, self.rate, phase="linear")
                                         for _ in range(2)]
        delay = 0 if same else int(round(self._rs[0].delay_s * self.rate))
        self._skip = [delay, delay]  # samples still to drop from each direction's start

    def _convert(self, k: int, block):
        y = self._rs[k].resample_chunk(block)
        if self._skip[k]:
            n = min(self._skip[k], len(y))
            self._skip[k] -= n
            y = y[n:]
        return y

    def __call__(self, input_block, output_block) -> None:
        """Resample one pair of model-rate blocks and pass them on."""
        if self._rs is None:
            self.tap(input_block, output_block)
            return
        self.tap(self._convert(0, input_block), self._convert(1, output_block))
