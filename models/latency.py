"""How far a causal network's streamed output lags its input: the one definition of the stream
delay and the algorithmic latency, for every network (:class:`realtime_tse.models.net.DQTSNet`,
:class:`realtime_tse.models.lstm_deg.LSTMDEG`) and for
:meth:`realtime_tse.models.config.ModelConfig.algorithmic_latency_s`.

Both follow from the STFT framing (50 % overlap, ``n_fft = 2 * hop``): a hop of output is final
only when the frame after it has arrived, ``n_fft - hop`` samples later, and an input sample also
waits for its block to fill.

Plain functions of a config (anything with ``n_fft``, ``hop`` and ``sample_rate``); nothing here
imports torch.
"""
from __future__ import annotations

__all__ = ["stream_delay", "algorithmic_latency_s"]


def stream_delay(cfg) -> int:
    """Samples by which a network's streamed output (``step``) lags its offline output
    (``forward``): ``n_fft - hop`` (one hop; 128 samples = 16 ms for the 8 kHz presets, 256 =
    16 ms for the 16 kHz ones).

    Args:
        cfg: a :class:`realtime_tse.models.config.ModelConfig` (``n_fft``, ``hop``: samples).
    """
    return int(cfg.n_fft) - int(cfg.hop)


def algorithmic_latency_s(cfg, block_samples: int | None = None) -> float:
    """The algorithmic latency (seconds) of streaming in blocks of ``block_samples`` samples:
    ``(block_samples + n_fft - hop) / sample_rate``, the block plus :func:`stream_delay`.

    Args:
        cfg: a :class:`realtime_tse.models.config.ModelConfig` (``n_fft``, ``hop``: samples;
            ``sample_rate``: Hz).
        block_samples: the block length in samples; None = one hop, the smallest block (then the
            latency is one frame, ``n_fft / sample_rate``: 32 ms for every preset). 64 ms blocks
            of the 8 kHz presets: (512 + 256 - 128) / 8000 s = 80 ms.
    Raises:
        ValueError: ``block_samples`` not positive.
    """
    block = int(cfg.hop) if block_samples is None else int(block_samples)
    if block <= 0:
        raise ValueError(f"block_samples must be positive, got {block_samples}")
    return (block + stream_delay(cfg)) / cfg.sample_rate
