"""The low-latency duplex mode on PipeWire, :class:`JackDuplex`: :class:`SeparateStreamsDuplex`
through PortAudio's JACK host API on PipeWire's libjack (:mod:`realtime_tse.audio.host_path`).

What changes against the ALSA path: both streams are nodes of the PipeWire graph and PortAudio
calls them once per graph cycle with the graph's quantum (``blocksize`` 0: no re-blocking inside
PortAudio, whose buffer adapter would add up to a period); the devices run at the graph's rate
(48 kHz on most desktops; the app resamples to and from the model rate); the jitter buffer starts
smaller, because input and output are called in the same cycle, one after the other, and the
only jitter left is the worker's wake-up and compute time (it still grows when the output runs
dry, :meth:`SeparateStreamsDuplex._level_output`).
"""

from __future__ import annotations

import os

from .device_stream import stream_latency
from .separate_duplex import SeparateStreamsDuplex

__all__ = ["JackDuplex", "quantum_frames"]

# the jitter buffer the JACK path starts with (ms): at least this, at least two quanta and at
# least JACK_JITTER_BLOCK_SHARE of a block. 5.3 and 4 ms were 2 to 6 ms faster at 16 ms blocks
# but ran dry 2 and 4 times in 90 s with one more core busy, 8 ms not once
# (benchmarks/results/audio_path_jitter.json, docs/latency.md)
JACK_JITTER_MS = 8.0
# a longer block takes the worker longer, and its slowest blocks are slower: over 10 minutes with
# one more core busy the slowest 16 ms block took 8.7 ms (8 ms held, 0 late blocks), the slowest
# 64 ms block 11.3 ms (8 ms ran dry once): a quarter of the block (16 ms at 64 ms blocks, 8 ms
# at 32 ms, the fixed 8 ms below) covers that (audio_path_delay.json, docs/latency.md)
JACK_JITTER_BLOCK_SHARE = 0.25


def quantum_frames(rate: int, env: str | None = None) -> int | None:
    """The graph quantum this process asks PipeWire for (``PIPEWIRE_LATENCY`` "N/RATE", or
    ``env``), in frames at ``rate`` Hz; None where it is unset or unreadable."""
    text = env if env is not None else os.environ.get("PIPEWIRE_LATENCY")
    try:
        n, r = str(text).split("/")
        return max(1, int(round(int(n) * rate / int(r))))
    except (ValueError, ZeroDivisionError):
        return None


class JackDuplex(SeparateStreamsDuplex):
    """A microphone through the model to an output device on PipeWire's JACK interface (the
    ``"jack"`` audio path): separate PortAudio input and output streams on the JACK host API,
    called with the graph's quantum (``device_blocksize`` and ``input_blocksize`` are the quantum
    asked for: the figures the jitter buffer's steps and bounds are made of). The jitter buffer
    starts at the largest of :data:`JACK_JITTER_MS`, two quanta and
    :data:`JACK_JITTER_BLOCK_SHARE` of a block."""

    audio_path = "jack"

    def _default_blocksize(self, r: float) -> int:
        q = quantum_frames(self.device_rate)
        return q if q else super()._default_blocksize(r)

    def _pick_input_blocksize(self, asked: int | None) -> int:
        if asked:
            return int(asked)
        q = quantum_frames(self.input_rate)
        return q if q else super()._pick_input_blocksize(asked)

    def _default_jitter(self, r: float) -> int:
        block_s = self.block_samples / self.model_rate
        jitter_s = max(JACK_JITTER_MS * 1e-3, JACK_JITTER_BLOCK_SHARE * block_s)
        return max(2 * self.device_blocksize, int(round(jitter_s * self.device_rate)))

    def _open_streams(self, sd, common: dict, opened: list) -> None:
        # blocksize 0: PortAudio passes the graph's buffers as they come (any quantum)
        so = sd.OutputStream(device=self.output_info.index,
                             channels=self._channels(sd, self.output_info, "output"),
                             callback=self._guarded(self._callback_output),
                             **{**common, "blocksize": 0})
        opened.append(so)
        s = sd.InputStream(device=self.input_info.index,
                           channels=self._channels(sd, self.input_info, "input"),
                           callback=self._guarded(self._callback_input),
                           **{**common, "blocksize": 0, "samplerate": self.input_rate})
        opened.append(s)
        so.start()
        s.start()
        # PortAudio 19.6's JACK host API reports no usable latency (0 in time_info, and a stream
        # latency of 2**32 frames from an unsigned underflow): the delay estimate takes the
        # graph's side from the callbacks' timing instead (the newest input is fresh at its
        # callback, an output buffer plays one quantum after its callback)
        self.device_latency = (stream_latency(s.latency), stream_latency(so.latency))
