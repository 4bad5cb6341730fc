"""Band-split front and back end: fewer positions per LSTM step (an option of the live presets).

The DQ/TS blocks run one time-LSTM sequence per frequency position and one frequency-LSTM step per
position, so their cost grows with the number of positions along frequency. With
``ModelConfig.band_widths`` set, the encoder's per-bin embeddings ``[B, D, T, F]`` are merged into
``K`` bands (a learned linear map per band, as in band-split RNNs: each band's ``D x width``
values -> ``D``), the blocks run on ``[B, D, T, K]``, and before the decoder each band is expanded
back to its bins (a learned linear map per band, ``D -> D x width``). The mask is still one value
per STFT bin. Narrow bands at low frequency keep the harmonic resolution that speech needs; wide
bands at high frequency save the most.

Both maps are per frame and per band (no context in time), so streaming needs no extra state.
"""
from __future__ import annotations

import torch
from torch import nn


def default_band_widths(n_freq: int, sample_rate: int) -> tuple:
    """Band widths (in bins, summing to ``n_freq``): about 62.5 Hz wide below 1 kHz, 125 Hz to
    2 kHz, 250 Hz to 4 kHz, 500 Hz above; the last band takes the remainder.

    Args:
        n_freq: number of STFT bins F (n_fft / 2 + 1).
        sample_rate: Hz.
    Returns:
        tuple of ints, e.g. 8 kHz / 129 bins -> 33 bands.
    Raises:
        ValueError: n_freq < 2 or sample_rate <= 0.
    """
    if n_freq < 2 or sample_rate <= 0:
        raise ValueError(f"bad n_freq {n_freq} or sample_rate {sample_rate}")
    bin_hz = sample_rate / 2 / (n_freq - 1)
    plan = [(1000.0, 62.5), (2000.0, 125.0), (4000.0, 250.0), (float("inf"), 500.0)]
    widths, f = [], 0
    while f < n_freq:
        hz = f * bin_hz
        band_hz = next(w for top, w in plan if hz < top)
        w = max(1, int(round(band_hz / bin_hz)))
        w = min(w, n_freq - f)
        widths.append(w)
        f += w
    return tuple(widths)


def check_band_widths(widths, n_freq: int) -> None:
    """Raises ValueError unless ``widths`` are positive ints summing to ``n_freq``."""
    if any(int(w) != w or w < 1 for w in widths) or sum(widths) != n_freq:
        raise ValueError(f"band_widths must be positive bin counts summing to F = {n_freq}, "
                         f"got {tuple(widths)} (sum {sum(widths)})")


def _runs(widths) -> list[tuple[int, int, int]]:
    """Split band widths into runs of equal width: [(first bin, width, number of bands), ...]."""
    runs, f = [], 0
    for w in (int(w) for w in widths):
        if runs and runs[-1][1] == w:
            runs[-1][2] += 1
        else:
            runs.append([f, w, 1])
        f += w
    return [tuple(r) for r in runs]


class BandMerge(nn.Module):
    """Per-band linear map of a band's bins to one position, then LayerNorm over D:
    ``[B, D, T, F] -> [B, D, T, K]``. Each run of equal-width bands is one batched matmul."""

    def __init__(self, d_model: int, widths):
        super().__init__()
        d = d_model
        self.runs = _runs(widths)
        self.weight = nn.ParameterList(
            [nn.Parameter(torch.randn(n, w * d, d) / (w * d) ** 0.5) for _, w, n in self.runs])
        self.bias = nn.Parameter(torch.zeros(len(widths), d))
        self.norm = nn.LayerNorm(d)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, d, t, _ = h.shape
        x = h.permute(0, 2, 3, 1)                                  # [B, T, F, D]
        out = []
        for (f0, w, n), wt in zip(self.runs, self.weight):
            xr = x[:, :, f0:f0 + w * n].reshape(b, t, n, w * d)
            out.append(torch.einsum("btkc,kcd->btkd", xr, wt))
        y = torch.cat(out, 2) + self.bias
        return self.norm(y).permute(0, 3, 1, 2)                    # [B, D, T, K]


class BandSplit(nn.Module):
    """Per-band linear map of one position back to the band's bins, then GELU:
    ``[B, D, T, K] -> [B, D, T, F]``."""

    def __init__(self, d_model: int, widths):
        super().__init__()
        d = d_model
        self.runs = _runs(widths)
        self.weight = nn.ParameterList(
            [nn.Parameter(torch.randn(n, d, w * d) / d ** 0.5) for _, w, n in self.runs])
        self.bias = nn.Parameter(torch.zeros(sum(widths), d))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, d, t, _ = h.shape
        x = h.permute(0, 2, 3, 1)                                  # [B, T, K, D]
        out, k0 = [], 0
        for (_, w, n), wt in zip(self.runs, self.weight):
            y = torch.einsum("btkd,kdc->btkc", x[:, :, k0:k0 + n], wt)
            out.append(y.reshape(b, t, n * w, d))
            k0 += n
        y = torch.cat(out, 2) + self.bias                          # [B, T, F, D]
        return nn.functional.gelu(y).permute(0, 3, 1, 2)           # [B, D, T, F]
