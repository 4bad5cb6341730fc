"""The DQ/TS network (paper Sec. II-B, Fig. 2) and its causal streaming form.

Data flow: mixture ``y [B, N]`` -> STFT ``[B, T, F]`` -> stacked real/imag ``[B, 2, T, F]``
-> encoder (3x3 conv + norm) -> ``n_dq`` DQ blocks (distance token along time and frequency,
eq. 5 to 7) -> ``n_ts`` TS blocks (same modules without the token) -> decoder (3x3 conv + sigmoid)
= magnitude mask ``[B, T, F]`` -> mask * mixture STFT -> iSTFT -> ``[B, N]``.

Streaming (causal configs only): :meth:`DQTSNet.init_state` then :meth:`DQTSNet.step` on blocks of
``k * hop`` samples. The streamed output equals the offline :meth:`forward` output delayed by
``stream_delay = n_fft - hop`` samples (one hop): a hop of output is complete only when the next
frame has arrived. Algorithmic latency = one frame (n_fft samples) plus the block.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import latency
from .config import ModelConfig
from .bands import BandMerge, BandSplit
from .layers import DEG, FrameLayerNorm, FusionModule, GlobalLayerNorm, TFConv
from .lstm_deg import LSTMDEG
from .stft import istft, stft, stream_istft
from .streaming import StreamStateOps, stream_begin, stream_queries


@dataclass
class StreamState(StreamStateOps):
    """Everything a causal :class:`DQTSNet` carries from one streaming block to the next.

    Shapes (B streams, F = n_fft / 2 + 1 bins, K = ``cfg.n_pos`` positions along frequency, D =
    ``d_model``, H = time-LSTM units):

    * ``d_q`` [B]: query distance (metres) the state was primed with.
    * ``in_buf`` [B, n_fft - hop]: input samples not yet framed (STFT history).
    * ``ola`` [B, n_fft - hop]: overlap-add tail of the output not yet finished.
    * ``enc_cache`` [B, 2, 2, F], ``dec_cache`` [B, D, 2, F]: the last two frames seen by the
      causal 3x3 encoder and decoder convolutions.
    * ``lstm``: per block, the time LSTM's ``(h, c)``, each [1, B * K, H].
    * ``hist`` [B, <= cfg.reprime_frames, F] complex: recent STFT frames, re-run when ``d_q``
      changes (:meth:`DQTSNet.reprime`).
    """

    d_q: torch.Tensor
    in_buf: torch.Tensor
    ola: torch.Tensor
    enc_cache: torch.Tensor
    dec_cache: torch.Tensor
    lstm: list
    hist: torch.Tensor

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor of the state (for checks and device moves)."""
        out = [self.d_q, self.in_buf, self.ola, self.enc_cache, self.dec_cache, self.hist]
        for st in self.lstm:
            if st is not None:
                out.extend(st)
        return out


class DQTSBlock(nn.Module):
    """One DQ block (``query=True``: its own DEG per fusion module, optional FiLM) or TS block."""

    def __init__(self, cfg: ModelConfig, query: bool):
        super().__init__()
        self.query = query
        d, h = cfg.d_model, cfg.hidden
        th = (cfg.time_hidden or h) if cfg.causal else h
        self.time = FusionModule(d, th, "time", bidirectional=not cfg.causal, prepend=cfg.causal)
        self.freq = FusionModule(d, h, "freq", bidirectional=True)
        self.film = None
        if query:
            self.deg_time = DEG(d, cfg.deg_units, cfg.distance_scale)
            self.deg_freq = DEG(d, cfg.deg_units, cfg.distance_scale)
            if cfg.film:
                self.deg_film = DEG(d, cfg.deg_units, cfg.distance_scale)
                self.film = nn.Linear(d, 2 * d)
                self.film_freq = nn.Linear(d, 2 * cfg.n_pos)

    def _film(self, h: torch.Tensor, d_q: torch.Tensor) -> torch.Tensor:
        if self.film is None:
            return h
        e = self.deg_film(d_q)
        gamma, beta = self.film(e).chunk(2, dim=-1)  # [B, D] each
        gamma_f, beta_f = self.film_freq(e).chunk(2, dim=-1)  # [B, F] each
        gamma = gamma[:, :, None, None] + gamma_f[:, None, None, :]  # [B, D, 1, F]
        beta = beta[:, :, None, None] + beta_f[:, None, None, :]
        return h * (1 + gamma) + beta

    def forward(self, h: torch.Tensor, d_q: torch.Tensor, time_state=None):
        """h: [B, D, T, F]; d_q: [B] metres. Returns (h [B, D, T, F], time LSTM state)."""
        if self.query:
            h = self._film(h, d_q)
            h, st = self.time(h, self.deg_time(d_q), time_state)
            h, _ = self.freq(h, self.deg_freq(d_q))
        else:
            h, st = self.time(h, None, time_state)
            h, _ = self.freq(h, None)
        return h, st

    def prime(self, d_q: torch.Tensor, n_freq: int):
        """Initial time-LSTM state of a causal block: the token for DQ blocks, zeros for TS blocks."""
        if self.query:
            return self.time.prime(self.deg_time(d_q), n_freq)
        return None


class DQTSNet(nn.Module):
    """Distance-queried target speech extraction network.

    Args:
        cfg: :class:`ModelConfig` with ``arch == "dqts"``.

    forward(mix, d_q):
        mix: [B, N] float waveform at ``cfg.sample_rate``; d_q: [B] query distance in metres.
        Returns [B, N]: the estimated reverberant speech of every talker within ``r_spk`` of d_q
        (eq. 3), silence if none (eq. 4).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        if cfg.arch != "dqts":
            raise ValueError(f"DQTSNet needs arch='dqts', got {cfg.arch!r}")
        self.cfg = cfg
        d = cfg.d_model
        self.enc_conv = TFConv(2, d, cfg.causal)
        self.enc_norm = FrameLayerNorm(d) if cfg.norm == "frame" else GlobalLayerNorm(d)
        self.blocks = nn.ModuleList([DQTSBlock(cfg, True) for _ in range(cfg.n_dq)]
                                    + [DQTSBlock(cfg, False) for _ in range(cfg.n_ts)])
        self.band_merge = BandMerge(d, cfg.band_widths) if cfg.band_widths else None
        self.band_split = BandSplit(d, cfg.band_widths) if cfg.band_widths else None
        self.dec_conv = TFConv(d, 1, cfg.causal)

    # -- shared pieces ----------------------------------------------------------------------------
    @property
    def stream_delay(self) -> int:
        """Samples by which :meth:`step` output lags :meth:`forward` output
        (:func:`realtime_tse.models.latency.stream_delay`: n_fft - hop)."""
        return latency.stream_delay(self.cfg)

    @property
    def algorithmic_latency_s(self) -> float:
        """The algorithmic latency at the smallest block, one hop (seconds): one frame
        (:func:`realtime_tse.models.latency.algorithmic_latency_s`)."""
        return latency.algorithmic_latency_s(self.cfg)

    def _features(self, spec: torch.Tensor) -> torch.Tensor:
        """[B, T, F] complex -> [B, 2, T, F] real/imag, magnitude compressed by ``input_compress``."""
        p = self.cfg.input_compress
        if p != 1.0:
            mag = spec.abs()
            spec = spec * (mag.clamp_min(1e-8) ** (p - 1.0))
        return torch.stack([spec.real, spec.imag], dim=1)

    def _encode(self, e: torch.Tensor) -> torch.Tensor:
        """Encoder conv output [B, D, T, F] -> norm (and band merge) -> [B, D, T, n_pos]."""
        h = self.enc_norm(e)
        return self.band_merge(h) if self.band_merge is not None else h

    def _unband(self, h: torch.Tensor) -> torch.Tensor:
        """Block output [B, D, T, n_pos] -> [B, D, T, F] for the decoder."""
        return self.band_split(h) if self.band_split is not None else h

    def _mask(self, h: torch.Tensor) -> torch.Tensor:
        """Decoder output [B, 1, T, F] -> magnitude mask [B, T, F]."""
        return torch.sigmoid(h[:, 0])

    def _check(self, mix: torch.Tensor, d_q: torch.Tensor):
        if mix.dim() != 2:
            raise ValueError(f"mix must be [B, N], got shape {tuple(mix.shape)}")
        if d_q.dim() != 1 or d_q.shape[0] != mix.shape[0]:
            raise ValueError(f"d_q must be [B] = [{mix.shape[0]}], got shape {tuple(d_q.shape)}")

    # -- offline ----------------------------------------------------------------------------------
    def forward(self, mix: torch.Tensor, d_q: torch.Tensor) -> torch.Tensor:
        self._check(mix, d_q)
        cfg = self.cfg
        spec = stft(mix, cfg.n_fft, cfg.hop)
        h = self._encode(self.enc_conv(self._features(spec)))
        for blk in self.blocks:
            h, _ = blk(h, d_q)
        mask = self._mask(self.dec_conv(self._unband(h)))
        return istft(spec * mask, cfg.n_fft, cfg.hop, mix.shape[-1])

    # -- streaming --------------------------------------------------------------------------------
    def init_state(self, d_q: torch.Tensor, batch: int | None = None) -> StreamState:
        """Initial streaming state for query distances ``d_q`` [B] (metres).

        Raises:
            RuntimeError: the model is not causal (use a sliding window instead).
        """
        if not self.cfg.causal:
            raise RuntimeError("streaming needs a causal model (preset paper-causal or lite-causal)")
        cfg = self.cfg
        d_q = stream_queries(d_q, batch, self._device())
        b = d_q.shape[0]
        z = lambda *s: torch.zeros(*s, device=self._device())  # noqa: E731
        f = cfg.n_freq
        return StreamState(
            d_q=d_q.clone(),
            in_buf=z(b, cfg.n_fft - cfg.hop),
            ola=z(b, cfg.n_fft - cfg.hop),
            enc_cache=z(b, 2, 2, f),
            dec_cache=z(b, cfg.d_model, 2, f),
            lstm=[blk.prime(d_q, cfg.n_pos) for blk in self.blocks],
            hist=torch.zeros(b, 0, f, dtype=torch.complex64, device=self._device()),
        )

    def _device(self):
        return next(self.parameters()).device

    def step(self, block: torch.Tensor, d_q: torch.Tensor, state: StreamState):
        """Process ``block`` [B, k*hop] samples; returns (out [B, k*hop], new :class:`StreamState`).

        ``out`` is the offline output delayed by :attr:`stream_delay` samples. If ``d_q`` differs
        from the state's query, the time LSTMs are re-primed with the new distance token before the
        block (the change takes effect within this block). Raises ValueError if the block length is
        not a multiple of hop.
        """
        cfg = self.cfg
        d_q, state, spec, in_buf = stream_begin(self, block, d_q, state)  # spec [B, k, F]
        e, enc_cache = self.enc_conv.step(self._features(spec), state.enc_cache)
        h = self._encode(e)
        lstm = []
        for blk, st in zip(self.blocks, state.lstm):
            h, st = blk(h, d_q, st)
            lstm.append(st)
        dec, dec_cache = self.dec_conv.step(self._unband(h), state.dec_cache)
        out, ola = stream_istft(spec * self._mask(dec), state.ola, cfg.n_fft, cfg.hop)
        hist = torch.cat([state.hist, spec], 1)[:, -cfg.reprime_frames:]
        return out, StreamState(d_q=d_q.clone(), in_buf=in_buf, ola=ola, enc_cache=enc_cache,
                                dec_cache=dec_cache, lstm=lstm, hist=hist)

    def reprime(self, state: StreamState, d_q: torch.Tensor) -> StreamState:
        """Re-prime the time LSTMs for a new query ``d_q`` [B]: start from the new token and re-run
        the last ``cfg.reprime_frames`` frames of the stream, so the new state has seen recent audio
        under the new query (SPEC.md: a slider move is heard within one block). Caches for
        convolutions, STFT and overlap-add are kept."""
        cfg = self.cfg
        lstm = [blk.prime(d_q, cfg.n_pos) for blk in self.blocks]
        if state.hist.shape[1] > 0:
            h = self._encode(self.enc_conv(self._features(state.hist)))
            new = []
            for blk, st in zip(self.blocks, lstm):
                h, st = blk(h, d_q, st)
                new.append(st)
            lstm = new
        return state.replace(lstm=lstm, d_q=d_q.clone())


def build_model(cfg: ModelConfig) -> nn.Module:
    """Model for ``cfg.arch``: :class:`DQTSNet` (``"dqts"``) or
    :class:`realtime_tse.models.lstm_deg.LSTMDEG` (``"lstm_deg"``). Raises ValueError for another arch."""
    if cfg.arch == "dqts":
        return DQTSNet(cfg)
    if cfg.arch == "lstm_deg":
        return LSTMDEG(cfg)
    raise ValueError(f"unknown arch {cfg.arch!r}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
