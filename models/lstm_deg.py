"""LSTMDEG (arch ``lstm_deg``): the LSTM+DEG baseline of the paper's Table II (preset ``baseline``) and
its causal streaming form (preset ``lite-lstm``, the shipped network).

Offline (the paper's baseline, similar to Distance-Based Sound Separation): magnitude spectrogram
``[B, T, F]`` concatenated with the DEG embedding of ``d_q`` at every frame, 4 BLSTM layers, a
linear layer and a sigmoid giving a magnitude mask applied to the mixture STFT. With 256 units per
direction the count is about 6.0 M parameters (the paper: 5.98 M).

Causal (``cfg.causal``, the live preset ``lite-lstm``): the same layout with one-directional LSTMs,
per-channel FiLM of the last LSTM output by the token (``cfg.film``) and causal features per
frame: the log power spectrum normalised over the frame's bins (mean and standard deviation, so
the input level does not matter) plus each bin's log-power change from the previous frame and
their mean (onsets and decays, where the direct sound and the reverberation show). One frame in,
one mask frame out, so it streams with the LSTM state carried. Why it exists (``experiments/FINDINGS.md``):
on this CPU a full-band LSTM steps about ten times faster than the lite DQ/TS net, and a causal
uPIT-LSTM of the same shape separated the D1 mixtures to +2.5 dB in 1,000 steps, where every DQ/TS
variant stayed at about +1.1 dB.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import latency
from .config import ModelConfig
from .layers import DEG
from .stft import istft, stft, stream_istft
from .streaming import StreamStateOps, stream_begin, stream_queries

_EPS = 1e-8


@dataclass
class LSTMStreamState(StreamStateOps):
    """What a causal :class:`LSTMDEG` carries between streaming blocks.

    * ``d_q`` [B]: query distance (metres) the state belongs to.
    * ``in_buf`` [B, n_fft - hop], ``ola`` [B, n_fft - hop]: STFT input history and overlap-add tail.
    * ``prev_lp`` [B, F]: the last frame's log power per bin (dB), for the change features.
    * ``lstm``: the LSTM's ``(h, c)``, each [layers, B, H], or None before the first frame.
    * ``hist`` [B, <= cfg.reprime_frames, F] complex: recent STFT frames, re-run on a query change.
    """

    d_q: torch.Tensor
    in_buf: torch.Tensor
    ola: torch.Tensor
    prev_lp: torch.Tensor
    lstm: tuple | None
    hist: torch.Tensor

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor of the state."""
        return [self.d_q, self.in_buf, self.ola, self.prev_lp, self.hist, *(self.lstm or ())]


def frame_features(spec: torch.Tensor, prev_lp: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal per-frame features of the causal LSTM+DEG.

    Args:
        spec: [B, T, F] complex STFT.
        prev_lp: [B, F] log power (dB) of the frame before ``spec``'s first, or None (start: no change).
    Returns:
        (features [B, T, 2F + 1], the last frame's log power [B, F] in dB). The features are the
        log power normalised over each frame's bins (level-free spectral shape), then each bin's
        log-power change from the previous frame, then the frame's mean change, both in units of
        10 dB clipped to +-3. The per-bin changes show how each component starts and decays, where
        the direct-to-reverberant ratio, and so the talker's distance, is visible; the normalised
        shape alone hides them.
    """
    lp = 10 * torch.log10(spec.real ** 2 + spec.imag ** 2 + _EPS)          # [B, T, F] dB
    mu = lp.mean(-1, keepdim=True)
    sd = lp.std(-1, keepdim=True) + 1e-3
    first = lp[:, :1] if prev_lp is None else prev_lp[:, None]
    dbin = ((lp - torch.cat([first, lp[:, :-1]], 1)) / 10).clamp(-3, 3)   # [B, T, F]
    return torch.cat([(lp - mu) / sd, dbin, dbin.mean(-1, keepdim=True)], -1), lp[:, -1]


class LSTMDEG(nn.Module):
    """forward(mix [B, N], d_q [B] metres) -> [B, N]: the target talkers' reverberant speech.

    Offline (bidirectional) unless ``cfg.causal``; causal models also stream
    (:meth:`init_state`, :meth:`step`, :meth:`reprime`, like :class:`realtime_tse.models.net.DQTSNet`).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        f = cfg.n_freq
        self.deg = DEG(cfg.d_model, cfg.deg_units, cfg.distance_scale)
        n_in = (2 * f + 1 if cfg.causal else f) + cfg.d_model
        width = (1 if cfg.causal else 2) * cfg.baseline_hidden
        # ``cfg.film_every_layer``: one LSTM module per layer, the token's FiLM after each (the
        # query inside every layer, as the paper's DQ blocks put it in every block), else one
        # multi-layer LSTM with the FiLM after the last layer only
        self.per_layer = bool(cfg.film and cfg.film_every_layer)
        if self.per_layer:
            self.rnn = None
            self.rnns = nn.ModuleList(nn.LSTM(n_in if i == 0 else width, cfg.baseline_hidden,
                                              batch_first=True, bidirectional=not cfg.causal)
                                      for i in range(cfg.baseline_layers))
            self.layer_films = nn.ModuleList(nn.Linear(cfg.d_model, 2 * width)
                                             for _ in range(cfg.baseline_layers - 1))
        else:
            self.rnn = nn.LSTM(n_in, cfg.baseline_hidden, num_layers=cfg.baseline_layers,
                               batch_first=True, bidirectional=not cfg.causal)
        # ``cfg.film``: the DEG token also scales and shifts every LSTM output channel before the mask
        # layer, h * (1 + gamma(d_q)) + beta(d_q), so the query changes the mask multiplicatively, as
        # a separate output head per query would, not only through the input concatenation
        self.film = nn.Linear(cfg.d_model, 2 * width) if cfg.film else None
        self.out = nn.Linear(width, f)
        # ``cfg.distance_bins``: a training-only head reading, from the same LSTM output the mask is
        # made of, which distance bins hold an active talker in each frame (multi-label logits,
        # ``realtime_tse.train.losses.distance_head_loss``). It makes the network encode every talker's distance,
        # which the query-bound loss alone teaches only through which talker it picks; the mask,
        # streaming and the live path never read it.
        self.dist_head = nn.Linear(width, cfg.distance_bins) if cfg.distance_bins else None

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

    def _masks(self, spec, d_q, prev_lp=None, state=None, hidden: list | None = None):
        """[B, T, F] complex -> (mask [B, T, F], LSTM state, last frame's log power [B, F] dB).

        ``hidden``: a list that receives the last LSTM output before the FiLM ([B, T, H])."""
        if self.cfg.causal:
            feat, last_lp = frame_features(spec, prev_lp)
        else:
            feat, last_lp = spec.abs(), None
        e = self.deg(d_q).to(feat.dtype)                                    # [B, D]
        x = torch.cat([feat, e[:, None, :].expand(-1, feat.shape[1], -1)], dim=-1)
        if self.per_layer:
            h, hs, cs = x, [], []
            for i, rnn in enumerate(self.rnns):
                sti = None if state is None else (state[0][i:i + 1].contiguous(), state[1][i:i + 1].contiguous())
                h, (hi, ci) = rnn(h, sti)
                hs.append(hi)
                cs.append(ci)
                if i < len(self.layer_films):
                    g, b = self.layer_films[i](e)[:, None, :].chunk(2, dim=-1)
                    h = h * (1 + g) + b
            st = (torch.cat(hs), torch.cat(cs))                              # [layers, B, H] each
        else:
            h, st = self.rnn(x, state)
        if hidden is not None:
            hidden.append(h)
        if self.film is not None:
            gamma, beta = self.film(e)[:, None, :].chunk(2, dim=-1)
            h = h * (1 + gamma) + beta
        return torch.sigmoid(self.out(h)), st, last_lp

    def forward(self, mix: torch.Tensor, d_q: torch.Tensor, with_distance: bool = False):
        """mix [B, N] at ``cfg.sample_rate``, d_q [B] metres -> [B, N].

        ``with_distance`` (training): also return the distance head's logits [B, T, K], T STFT
        frames (``realtime_tse.models.stft.stft`` framing) and K = ``cfg.distance_bins``: per frame,
        whether a talker whose distance lies in bin k (``[k, k + 1) x cfg.distance_bin_m`` metres)
        is active. Going through ``forward`` keeps a DistributedDataParallel wrapper's gradient sync.
        Raises ValueError for other shapes, or ``with_distance`` on a model without the head
        (``distance_bins`` = 0)."""
        if mix.dim() != 2 or d_q.dim() != 1 or d_q.shape[0] != mix.shape[0]:
            raise ValueError(f"need mix [B, N] and d_q [B], got {tuple(mix.shape)} and {tuple(d_q.shape)}")
        if with_distance and self.dist_head is None:
            raise ValueError("this model has no distance head (ModelConfig.distance_bins = 0)")
        cfg, hidden = self.cfg, ([] if with_distance else None)
        spec = stft(mix, cfg.n_fft, cfg.hop)  # [B, T, F]
        mask, _, _ = self._masks(spec, d_q, hidden=hidden)
        out = istft(spec * mask, cfg.n_fft, cfg.hop, mix.shape[-1])
        return (out, self.dist_head(hidden[0])) if with_distance else out

    # -- streaming (causal only) --------------------------------------------------------------------
    def _device(self):
        return next(self.parameters()).device

    def init_state(self, d_q: torch.Tensor, batch: int | None = None) -> LSTMStreamState:
        """Initial streaming state for queries ``d_q`` [B] (or one query for ``batch`` streams).

        Raises RuntimeError for an offline (bidirectional) model."""
        if not self.cfg.causal:
            raise RuntimeError("streaming needs a causal model (preset lite-lstm)")
        cfg, dev = self.cfg, self._device()
        d_q = stream_queries(d_q, batch, dev)
        b = d_q.shape[0]
        z = torch.zeros(b, cfg.n_fft - cfg.hop, device=dev)
        return LSTMStreamState(d_q=d_q.clone(), in_buf=z, ola=z.clone(), prev_lp=torch.zeros(b, cfg.n_freq, device=dev),
                               lstm=None, hist=torch.zeros(b, 0, cfg.n_freq, dtype=torch.complex64, device=dev))

    def step(self, block: torch.Tensor, d_q: torch.Tensor, state: LSTMStreamState):
        """Process ``block`` [B, k*hop] samples; returns (out [B, k*hop], new state).

        ``out`` is the offline output delayed by :attr:`stream_delay` samples. A changed ``d_q``
        re-runs the recent frames under the new query first (:meth:`reprime`). Raises ValueError
        if the block length is not a multiple of hop."""
        cfg = self.cfg
        d_q, state, spec, in_buf = stream_begin(self, block, d_q, state)
        first = state.lstm is None and state.hist.shape[1] == 0
        mask, lstm, last_lp = self._masks(spec, d_q, None if first else state.prev_lp, state.lstm)
        out, ola = stream_istft(spec * mask, state.ola, cfg.n_fft, cfg.hop)
        hist = torch.cat([state.hist, spec], 1)[:, -cfg.reprime_frames:]
        return out, LSTMStreamState(d_q=d_q.clone(), in_buf=in_buf, ola=ola, prev_lp=last_lp,
                                    lstm=lstm, hist=hist)

    def reprime(self, state: LSTMStreamState, d_q: torch.Tensor) -> LSTMStreamState:
        """Restart the LSTM for a new query ``d_q`` [B] and re-run the last ``cfg.reprime_frames``
        frames under it (a slider move is heard within one block). STFT and overlap-add state kept."""
        if state.hist.shape[1] == 0:
            return state.replace(d_q=d_q.clone(), lstm=None)
        _, lstm, last_lp = self._masks(state.hist, d_q)
        return state.replace(d_q=d_q.clone(), lstm=lstm, prev_lp=last_lp)
