"""Building blocks of the DQ/TS network (paper Sec. II-B, Fig. 2).

Tensor layout inside the network: TF embeddings are ``[B, D, T, F]`` (batch, channels, frames,
frequency bins).
"""
from __future__ import annotations

import torch
from torch import nn


class DEG(nn.Module):
    """Distance embedding generator: Linear(1->32) -> tanh -> Linear(32->64) -> tanh -> Linear(64->D).

    No activation after the last layer (paper Sec. II-B-1). Input is ``d_q / scale``.

    Args (forward):
        d_q: [B] query distance in metres.
    Returns:
        [B, D] distance embedding.
    """

    def __init__(self, d_model: int, units=(32, 64), scale: float = 1.0):
        super().__init__()
        u1, u2 = units
        self.scale = float(scale)
        self.net = nn.Sequential(nn.Linear(1, u1), nn.Tanh(), nn.Linear(u1, u2), nn.Tanh(), nn.Linear(u2, d_model))

    def forward(self, d_q: torch.Tensor) -> torch.Tensor:
        return self.net((d_q.reshape(-1, 1) / self.scale).to(self.net[0].weight.dtype))


class GlobalLayerNorm(nn.Module):
    """Layer norm over (D, T, F) of each example with a per-channel affine (the paper's encoder norm)."""

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.GroupNorm(1, d, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, D, T, F]
        return self.norm(x)


class FrameLayerNorm(nn.Module):
    """Layer norm over (D, F) of each frame, per-channel affine: the causal replacement of the global
    norm (no statistics over future frames; SPEC.md, causal variant)."""

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, d, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, d, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, D, T, F]
        mean = x.mean(dim=(1, 3), keepdim=True)
        var = x.var(dim=(1, 3), keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class TFConv(nn.Module):
    """3x3 convolution over (time, frequency); causal in time when ``causal`` (two past frames padded,
    none ahead), symmetric otherwise. Frequency is always padded by one bin on each side.

    The streaming form keeps the last two input frames as state (:meth:`step`).
    """

    def __init__(self, c_in: int, c_out: int, causal: bool):
        super().__init__()
        self.causal = causal
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T, F] -> [B, C_out, T, F]
        pad_t = (2, 0) if self.causal else (1, 1)
        x = nn.functional.pad(x, (1, 1) + pad_t)
        return self.conv(x)

    def step(self, x: torch.Tensor, cache: torch.Tensor):
        """Causal streaming form. x: [B, C, k, F] new frames; cache: [B, C, 2, F] previous frames.
        Returns (y [B, C_out, k, F], new cache)."""
        full = torch.cat([cache, x], dim=2)
        y = self.conv(nn.functional.pad(full, (1, 1, 0, 0)))
        return y, full[:, :, -2:]


class FusionModule(nn.Module):
    """LayerNorm -> (B)LSTM along one axis -> Linear -> GELU -> residual (paper eq. 5 to 7).

    ``axis="time"`` is the intra-subband module (a sequence over frames for each bin);
    ``axis="freq"`` the intra-frame module (a sequence over bins for each frame). With a distance
    token, the token is one extra position of the sequence, dropped after the LSTM: appended at the
    end (paper, eq. 5 and 7) unless ``prepend`` (causal time LSTMs, which would never see an
    appended token; SPEC.md).
    """

    def __init__(self, d_model: int, hidden: int, axis: str, bidirectional: bool, prepend: bool = False):
        super().__init__()
        assert axis in ("time", "freq")
        self.axis = axis
        self.prepend = prepend
        self.norm = nn.LayerNorm(d_model)
        self.rnn = nn.LSTM(d_model, hidden, batch_first=True, bidirectional=bidirectional)
        self.proj = nn.Linear(hidden * (2 if bidirectional else 1), d_model)
        self.act = nn.GELU()

    def _to_seq(self, h: torch.Tensor) -> torch.Tensor:
        b, d, t, f = h.shape
        if self.axis == "time":
            return h.permute(0, 3, 2, 1).reshape(b * f, t, d)
        return h.permute(0, 2, 3, 1).reshape(b * t, f, d)

    def _from_seq(self, s: torch.Tensor, shape) -> torch.Tensor:
        b, d, t, f = shape
        if self.axis == "time":
            return s.reshape(b, f, t, d).permute(0, 3, 2, 1)
        return s.reshape(b, t, f, d).permute(0, 3, 1, 2)

    def forward(self, h: torch.Tensor, token: torch.Tensor | None = None, state=None):
        """h: [B, D, T, F]; token: [B, D] distance embedding or None; state: LSTM (h0, c0) or None.

        Returns (h_out [B, D, T, F], final LSTM state). With a state given (streaming), no token is
        inserted: the token was consumed when the state was primed.
        """
        shape = h.shape
        b, d, t, f = shape
        seq = self._to_seq(h)
        n = seq.shape[0]
        if token is not None and state is None:
            tok = token[:, None, :].expand(b, n // b, d).reshape(n, 1, d)
            seq_in = torch.cat([tok, seq], 1) if self.prepend else torch.cat([seq, tok], 1)
        else:
            seq_in = seq
        out, new_state = self.rnn(self.norm(seq_in), state)
        if seq_in.shape[1] != seq.shape[1]:
            out = out[:, 1:] if self.prepend else out[:, :-1]
        out = self.act(self.proj(out))
        return h + self._from_seq(out, shape), new_state

    def prime(self, token: torch.Tensor, n_seq_per_item: int):
        """Run the LSTM over the token alone; returns the state a causal sequence starts from.
        token: [B, D]; returns (h, c) each [1, B * n_seq_per_item, H]."""
        b, d = token.shape
        tok = token[:, None, :].expand(b, n_seq_per_item, d).reshape(b * n_seq_per_item, 1, d)
        _, state = self.rnn(self.norm(tok))
        return state
