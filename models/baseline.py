"""LSTM+DEG baseline of the paper's Table II (similar to Distance-Based Sound Separation).

Magnitude spectrogram ``[B, T, F]`` concatenated with the DEG embedding of ``d_q`` at every frame,
4 BLSTM layers, a linear layer and a sigmoid giving a magnitude mask applied to the mixture STFT.
With 256 units per direction the count is about 6.0 M parameters (the paper: 5.98 M).
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .layers import DEG
from .stft import istft, stft


class LSTMDEGBaseline(nn.Module):
    """forward(mix [B, N], d_q [B] metres) -> [B, N]; offline (bidirectional) only."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        f = cfg.n_freq
        self.deg = DEG(cfg.d_model, cfg.deg_units, cfg.distance_scale)
        self.rnn = nn.LSTM(f + cfg.d_model, cfg.baseline_hidden, num_layers=cfg.baseline_layers,
                           batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * cfg.baseline_hidden, f)

    @property
    def stream_delay(self) -> int:
        return self.cfg.n_fft - self.cfg.hop

    def forward(self, mix: torch.Tensor, d_q: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        spec = stft(mix, cfg.n_fft, cfg.hop)  # [B, T, F]
        mag = spec.abs()
        emb = self.deg(d_q)[:, None, :].expand(-1, mag.shape[1], -1)
        h, _ = self.rnn(torch.cat([mag, emb], dim=-1))
        mask = torch.sigmoid(self.out(h))
        return istft(spec * mask, cfg.n_fft, cfg.hop, mix.shape[-1])
