"""STFT front end with a square-root Hann window (SPEC.md, "Network").

Offline convention (used by training and by every model's ``forward``): the signal is padded with
``n_fft - hop`` zeros on the left and up to a whole number of hops on the right, framed without
centring, so frame ``m`` covers input samples ``[m*hop - (n_fft-hop), m*hop + hop)``. Frame ``m``
therefore ends with hop-chunk ``m`` of the input and never looks ahead; the overlap-added output is
cropped back to the input, aligned sample for sample.

With a 50 %-overlap sqrt-Hann window the analysis and synthesis windows multiply to a Hann window
whose shifted copies sum to exactly one, so iSTFT(STFT(x)) == x away from nothing (the left pad
makes the first samples exact too).
"""
from __future__ import annotations

import torch


def sqrt_hann(n_fft: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Periodic square-root Hann window, shape [n_fft]."""
    return torch.hann_window(n_fft, periodic=True, device=device, dtype=dtype).sqrt()


def n_frames(n_samples: int, hop: int) -> int:
    """Frames produced by :func:`stft` for ``n_samples`` input samples: ceil(N / hop) + 1, the
    extra frame completing the overlap-add of the last hop."""
    return -(-n_samples // hop) + 1


def stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Causal-framed STFT.

    Args:
        x: [B, N] float waveform.
    Returns:
        [B, T, F] complex, T = ceil(N / hop) + 1, F = n_fft // 2 + 1.
    """
    b, n = x.shape
    t = n_frames(n, hop)
    pad_right = t * hop - n  # padded length = (T - 1) * hop + n_fft (n_fft = 2 * hop)
    xp = torch.nn.functional.pad(x, (n_fft - hop, pad_right))
    frames = xp.unfold(-1, n_fft, hop)  # [B, T, n_fft]
    win = sqrt_hann(n_fft, x.device, x.dtype)
    return torch.fft.rfft(frames * win, dim=-1)


def istft(spec: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    """Inverse of :func:`stft` by windowed overlap-add.

    Args:
        spec: [B, T, F] complex.
        length: output length N in samples.
    Returns:
        [B, N] float.
    """
    b, t, _ = spec.shape
    win = sqrt_hann(n_fft, spec.device, spec.real.dtype)
    frames = torch.fft.irfft(spec, n=n_fft, dim=-1) * win  # [B, T, n_fft]
    total = (t - 1) * hop + n_fft
    out = torch.nn.functional.fold(
        frames.transpose(1, 2), output_size=(1, total), kernel_size=(1, n_fft), stride=(1, hop)
    ).reshape(b, total)
    return out[:, n_fft - hop: n_fft - hop + length]


def stream_stft(block: torch.Tensor, in_buf: torch.Tensor, n_fft: int, hop: int):
    """Streaming form of :func:`stft`: the frames completed by a new block.

    Args:
        block: [B, k * hop] new samples.
        in_buf: [B, n_fft - hop] the samples before the block (zeros at the start of a stream,
            matching :func:`stft`'s left pad).
    Returns:
        (spec [B, k, F] complex, new in_buf [B, n_fft - hop]). Frame j of the block equals frame
        (frames so far + j) of :func:`stft` over the whole stream.
    Raises:
        ValueError: the block length is not a multiple of hop.
    """
    if block.shape[-1] % hop:
        raise ValueError(f"block length {block.shape[-1]} is not a multiple of hop {hop}")
    x = torch.cat([in_buf, block], dim=-1)
    frames = x.unfold(-1, n_fft, hop)  # [B, k, n_fft]
    spec = torch.fft.rfft(frames * sqrt_hann(n_fft, block.device, block.dtype), dim=-1)
    return spec, x[:, x.shape[-1] - (n_fft - hop):]


def stream_istft(spec: torch.Tensor, ola: torch.Tensor, n_fft: int, hop: int):
    """Streaming form of :func:`istft`: overlap-add of k new frames onto the pending tail.

    Args:
        spec: [B, k, F] complex frames.
        ola: [B, n_fft - hop] the overlap-add tail left by earlier frames (zeros at the start).
    Returns:
        (out [B, k * hop] finished samples, new ola [B, n_fft - hop]). The output is :func:`istft`'s
        output delayed by n_fft - hop samples (a hop is finished only when the next frame arrives).
    """
    b, k, _ = spec.shape
    frames = torch.fft.irfft(spec, n=n_fft, dim=-1) * sqrt_hann(n_fft, spec.device, spec.real.dtype)
    total = (k - 1) * hop + n_fft
    acc = torch.nn.functional.fold(frames.transpose(1, 2), output_size=(1, total),
                                   kernel_size=(1, n_fft), stride=(1, hop)).reshape(b, total)
    acc[:, : n_fft - hop] += ola
    return acc[:, : k * hop], acc[:, k * hop:]
