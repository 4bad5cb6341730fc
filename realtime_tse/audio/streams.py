"""The live audio stream around the model: :func:`make_stream` builds the stream of the configured
mode. Where each part is defined:

- :mod:`realtime_tse.audio.base`: :class:`AudioStream`, what every mode shares (settings, buffer
  sizes, rings, counters, ``stats()``, taps, the processing step, start/stop, the worker thread);
- :mod:`realtime_tse.audio.device_stream`: ``DeviceStream``, what a PortAudio device adds (callbacks,
  opening and closing, the device's health, restarts);
- :mod:`realtime_tse.audio.stream_modes`: one class per mode (file -> timer, file -> device, capture,
  duplex in one PortAudio stream or in separate input and output streams);
- :mod:`realtime_tse.audio.devices`: device records and lookup; :mod:`realtime_tse.audio.file_source`: the file
  that stands in for a microphone; :mod:`realtime_tse.audio.ringbuffer`: the rings.

Libraries (why these):

- **sounddevice** (PortAudio) for devices: one duplex callback stream on every desktop OS and on
  PulseAudio/ALSA/JACK/CoreAudio/WASAPI alike, numpy buffers in the callback, stream latency and
  xrun flags reported by PortAudio itself. It needs the system PortAudio library
  (``apt-get install libportaudio2``); this module imports it lazily, so ``RingBuffer``,
  ``FileSource`` and a stream without devices (a file to the taps) work where PortAudio is missing.
- **Sample-rate conversion** between device and model rate (a device at 44.1/48 kHz, the model at
  8 or 16 kHz): :class:`realtime_tse.audio.resample.PolyphaseStream`, a polyphase FIR filter in
  numpy that emits each sample as soon as its input has arrived (minimum phase: about 0.35 ms
  filter delay each way for speech; the linear-phase filter it replaced took 6.3 ms).
  soxr's ``ResampleStream`` (used for files) was the live resampler before; it hands its output
  over in bursts that lagged by up to 170 ms, which the stream had to cover with silence (540 to
  570 ms end to end at a 48 kHz device). Used in worker threads only, never in the callback.
- **soundfile** (libsndfile, bundled in the wheel) to read any WAV/FLAC/OGG for ``FileSource``.

Threading model of every mode:

    PortAudio callback  --in_ring-->  worker: resample dev->model, cut blocks of block_samples,
    (copies only,                       process_block(block), taps(in, out), resample model->dev
     counts xruns)      <--out_ring--

The callback never runs the model, never allocates sample memory and never logs: it copies between
the two ``RingBuffer`` s, counts xruns in integer counters and a preallocated event log, and
converts any exception into ``sounddevice.CallbackAbort`` after storing it. Everything else (model,
resampling, taps, error reporting) happens in the worker thread.

Decisions (not fixed by the paper or SPEC; recorded here):

- The device callback block defaults to the model block (scaled to the device rate). With the
  default jitter buffer of one block of silence, a block processed in less than one block period
  never underflows; total latency is then about two blocks + the device's own latency (+ the
  resamplers' delay when the rates differ). Smaller device blocks need a larger ``prefill_blocks``.
- When the device rate differs from the model rate, the resamplers' output may lag the ideal
  count (by at most one sample with ``PolyphaseStream``). The lag is measured once at start-up by
  feeding the resamplers silence in device-sized chunks, and covered by zeros put in front of the
  input path and extra silence in the output prefill, so the resamplers never cause an underflow.
- Xrun kinds: ``input_overflow`` / ``output_underflow`` (PortAudio status flags),
  ``input_ring`` (input ring full: the worker is too slow), ``late`` (the output ring had fewer
  samples than the callback needed: processing was late). ``xruns`` is their sum.
- A device that stops calling back for ``stall_timeout_s`` (default: 5 s during the first four
  callbacks, then the larger of 1 s and 8 device blocks) is declared gone: PulseAudio dying under an
  ALSA "pulse" device leaves the PortAudio stream "active" without callbacks, and closing such a
  stream can block forever, so streams are closed from a helper thread with a timeout.
- PortAudio's ALSA/PulseAudio duplex path sometimes fails its first poll ("ContinuePoll") when
  the capture side has no data yet; a stream that fails within its first ``startup_s`` (1 s) of
  audio is reopened (``max_start_retries``, default 2; counted in ``restarts``).
- The worker and the callback thread ask for nice -10 (``boost_priority``; allowed for root or
  with RLIMIT_NICE, silently skipped otherwise): on a loaded machine the audio threads then win
  the CPU over batch jobs.
- Latency (duplex): one block of capture + the jitter buffer (``prefill_blocks``) + the device
  buffers (PortAudio reports about 2 blocks in, 3 out on ALSA/PulseAudio) + the server's own
  buffering; ``estimated_latency_s`` sums the first three, the loopback test measures the total.
- Input freshness (device input only, never a file): the worker, not the callback, bounds the
  input ring. During start-up (the first ``startup_s`` of device time) anything above one device
  block + 5 ms is discarded; afterwards a ring holding more than ``max_input_backlog_s`` (default
  the larger of 0.25 s and 3 device blocks) is cut back to that target, oldest samples first
  (``input_backlog_drops`` events, ``input_samples_dropped`` samples). The callback also records
  PortAudio's ``time_info`` (``currentTime - inputBufferAdcTime``) as ``input_latency_s`` (last)
  and ``max_input_latency_s``, and counts ``stale_input_callbacks`` where the captured audio is
  older than the device's reported input latency + ``max_input_backlog_s``. Such a backlog sits in
  the sound server (PulseAudio keeps what it recorded before PortAudio's first, late callback and
  hands it over at normal speed through a duplex stream), out of this process's reach: it is
  measured and reported (a warning once), not skippable here.
- With ``input_file`` the file stands in for the microphone; with an output device the output
  device's clock paces it (the worker keeps the output ring at prefill + one block, and queues
  four device blocks before the device starts, because PortAudio pulls several at once), with
  ``output_device="null"`` (or no output device at all) a monotonic timer paces it. At end of file
  the last partial block is zero-padded, the output drains, and the stream ends (``wait()``
  returns, ``on_end`` is called); with ``loop=True`` the file restarts seamlessly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from .separate_duplex import SeparateStreamsDuplex
from .stream_modes import CaptureStream, FilePlaybackStream, SingleStreamDuplex, TimedFileStream
from .base import AudioStream, ProcessFn
from .devices import NULL_DEVICE, AudioDeviceError, DeviceInfo, find_device, pick_path
from .host_path import check_audio_path
from .jack_duplex import JackDuplex
from .file_source import FileSource
from ..live_config import LiveConfig

__all__ = ["make_stream", "check_rt_priority"]

log = logging.getLogger(__name__)


def check_rt_priority(value, name: str = "rt_priority") -> None:
    """The one check of the ``SCHED_FIFO`` priority setting (``LiveConfig.rt_priority``, the
    CLI's ``--rt-priority``): None (the environment decides) or an integer 0..99 (0 = no
    ``SCHED_FIFO``). ``name``: what the message calls the setting.

    Raises:
        ValueError: anything else (a bool, a float, a string, out of range).
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or not 0 <= value <= 99):
        raise ValueError(f"{name} must be an integer within 0..99 (0 = no SCHED_FIFO), got "
                         f"{value!r}")


def _check_settings(cfg: LiveConfig, model_rate: int, block_samples: int) -> None:
    if block_samples <= 0 or model_rate <= 0:
        raise ValueError("block_samples and model_rate must be positive")
    if cfg.streams not in ("auto", "duplex", "separate"):
        raise ValueError(f"streams must be 'auto', 'duplex' or 'separate', got {cfg.streams!r}")
    if cfg.jitter_ms is not None and not 0.0 <= float(cfg.jitter_ms) <= 1000.0:
        raise ValueError(f"jitter_ms must be within 0..1000 ms, got {cfg.jitter_ms}")
    check_rt_priority(cfg.rt_priority)
    check_audio_path(cfg.audio_path)
    if cfg.prefill_blocks is not None and not 0.0 <= float(cfg.prefill_blocks) <= 64.0:
        raise ValueError(f"prefill_blocks must be within 0..64, got {cfg.prefill_blocks}")


def make_stream(process_block: ProcessFn, model_rate: int, block_samples: int,
                config: LiveConfig | None = None, *,
                on_error: Callable[[str], None] | None = None,
                on_end: Callable[[], None] | None = None, **settings) -> AudioStream:
    """The live audio stream around a block processor (the engine's model step), of the mode the
    settings ask for (see :mod:`realtime_tse.audio.stream_modes`); not started.

    ``process_block(block) -> out_block``: ``block_samples`` float32 samples at ``model_rate`` in,
    the same number out; called from the worker thread only.

    Settings: ``config``, a :class:`realtime_tse.live_config.LiveConfig` (None: the defaults with
    ``loop=False``), and/or its fields as keywords over it (TypeError for other keywords); the
    fields used here:

    Sources and sinks (they choose the mode):
      - input: the microphone ``input_device`` (index/name/None = default), or ``input_file``;
      - output: ``output_device`` (index/name/None = default) or ``"null"`` (taps only); a file
        with no default output device plays to the taps only.
    ``streams``: ``"separate"`` (input and output PortAudio streams; ``"auto"`` = this) or
    ``"duplex"`` (one duplex stream), for a microphone with an output device.
    ``audio_path``: ``"auto"``, ``"jack"`` or ``"alsa"`` (:mod:`realtime_tse.audio.host_path`):
    where the devices are looked up (None = PipeWire's default source / sink on the JACK path);
    a microphone and an output device both on JACK run :class:`JackDuplex` (separate streams
    called with the graph's quantum).
    ``device_rate``: the devices' rate (None: the model rate if the devices accept it, else the
    output (or input) device's default rate; on pipewire-pulse the ``pulse`` / ``default``
    devices take the graph's rate, :func:`realtime_tse.audio.host_path.pipewire_pulse_rate`). Resampling between device and model rate uses
    ``PolyphaseStream`` streams in the worker thread.
    ``prefill_blocks`` / ``jitter_ms``: jitter buffer, silence put in the output ring before
    playback (in blocks / ms; None: one block, separate streams: 16 ms, at least one output
    period + 8 ms).
    ``device_blocksize``: frames per PortAudio callback (None: one model block at device rate;
    separate streams: at most 6 ms for blocks under 64 ms, else 8 ms).
    ``input_blocksize``: separate streams only: frames per input callback (None: at most 4 ms).
    ``latency``: PortAudio suggested latency (``"low"``, ``"high"`` or seconds; None: default,
    ``"low"`` for separate streams).
    ``on_error(message)`` / ``on_end()``: called from the worker thread when the stream fails / when
    a non-looping input file has been played out.
    ``stall_timeout_s``: no callback for this long = device gone (default max(1 s, 8 blocks)).
    ``max_start_retries`` / ``startup_s``: reopen a stream that fails in its first second.
    ``boost_priority``: raise the worker's, the callbacks' and the sound library's threads
    (``SCHED_FIFO`` at ``rt_priority``, else nice -10; :mod:`realtime_tse.threads`).
    ``max_input_backlog_s``: the most device input the input ring may hold before the worker drops
    the oldest samples (None: the larger of 0.25 s and 3 device blocks); never applies to files.

    Raises:
        ValueError: a setting out of range, an unreadable file, ``input_device="null"`` without
            a file. AudioDeviceError: a device that is not there.
    """
    # the settings: config (None: the defaults, a file played once) with keywords over it
    cfg = LiveConfig.build(config if config is not None else LiveConfig(loop=False), **settings)
    _check_settings(cfg, model_rate, block_samples)
    null_out = cfg.output_device is not None \
        and str(cfg.output_device).lower() in (NULL_DEVICE, "none")
    if cfg.input_file is None and cfg.input_device is not None \
            and str(cfg.input_device).lower() in (NULL_DEVICE, "none"):
        raise ValueError("input_device='null' needs input_file")
    file = None
    if cfg.input_file is not None:
        file = FileSource(Path(cfg.input_file), int(model_rate), loop=bool(cfg.loop),
                          quality=cfg.quality)

    # resolve devices (lazily imports sounddevice only when a device is used), on one audio path
    input_info: DeviceInfo | None = None
    output_info: DeviceInfo | None = None
    path = None
    if file is None or not null_out:
        specs = ([cfg.input_device] if file is None else []) \
            + ([cfg.output_device] if not null_out else [])
        path = pick_path(cfg.audio_path, specs)
    if file is None:
        input_info = find_device(cfg.input_device, "input", path=path)
    if not null_out:
        try:
            output_info = find_device(cfg.output_device, "output", path=path)
        except AudioDeviceError:
            if cfg.output_device is not None or file is None:
                raise
            log.warning("no default output device: playing %s to taps only", Path(cfg.input_file))

    # the mode: the one place it is chosen
    if file is not None:
        cls = FilePlaybackStream if output_info is not None else TimedFileStream
    elif output_info is None:
        cls = CaptureStream
    elif cfg.streams == "duplex":
        cls = SingleStreamDuplex
    elif input_info.jack and output_info.jack:
        cls = JackDuplex
    else:
        cls = SeparateStreamsDuplex
    stream = cls(process_block, model_rate, block_samples, cfg, input_info=input_info,
                 output_info=output_info, file=file, on_error=on_error, on_end=on_end)
    if input_info is not None or output_info is not None:
        stream.audio_path = "jack" if any(i is not None and i.jack
                                          for i in (input_info, output_info)) else "alsa"
    return stream

