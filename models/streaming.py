"""What every causal network's streaming shares (:class:`realtime_tse.models.net.DQTSNet` and the causal
LSTM+DEG of :mod:`realtime_tse.models.lstm_deg`): the state's common operations, the queries of a new state and
the start of each streaming step (check the block, re-prime on a new query, frame the samples)."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .stft import stream_stft

__all__ = ["StreamStateOps", "stream_queries", "stream_begin"]


class StreamStateOps:
    """What every streaming state offers on top of its fields (:class:`StreamState`, the causal
    LSTM+DEG's ``LSTMStreamState``): a subclass defines :meth:`tensors`."""

    def tensors(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def is_finite(self) -> bool:
        """False when any value is NaN or infinite (e.g. after a non-finite input sample): such a
        state poisons every later block and must be replaced by a fresh one."""
        return all(bool(torch.isfinite(t).all()) for t in self.tensors())

    def replace(self, **changes):
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def stream_queries(d_q, batch: int | None, device) -> torch.Tensor:
    """The queries of a new stream state: ``d_q`` (metres, scalar or [B]) as float32 [B] on
    ``device``; one query is repeated for ``batch`` streams when ``batch`` is given."""
    d_q = torch.as_tensor(d_q, dtype=torch.float32, device=device).reshape(-1)
    b = d_q.shape[0] if batch is None else batch
    return d_q.expand(b) if d_q.shape[0] == 1 else d_q


def stream_begin(model: nn.Module, block: torch.Tensor, d_q, state):
    """The start of every streaming step (:class:`DQTSNet` and the causal LSTM+DEG): check the
    block, re-prime the state if the query changed, frame the new samples.

    Args:
        model: a causal net with ``cfg.hop``, ``cfg.n_fft`` and ``reprime(state, d_q)``.
        block: [B, k*hop] new samples. d_q: query distance(s) in metres, broadcast to [B].
        state: the model's stream state (fields ``d_q`` [B] and ``in_buf``).
    Returns:
        (d_q [B], state for this query, STFT frames [B, k, F] complex, new ``in_buf``).
    Raises:
        ValueError: the block length is not a multiple of hop.
    """
    cfg = model.cfg
    b, n = block.shape
    if n % cfg.hop:
        raise ValueError(f"block length {n} is not a multiple of hop {cfg.hop}")
    d_q = torch.as_tensor(d_q, dtype=torch.float32, device=block.device).reshape(-1).expand(b)
    if not torch.equal(d_q, state.d_q):
        state = model.reprime(state, d_q)
    spec, in_buf = stream_stft(block, state.in_buf, cfg.n_fft, cfg.hop)
    return d_q, state, spec, in_buf
