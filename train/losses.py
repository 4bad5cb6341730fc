"""Training losses: the paper's (eq. 8 and 9) and the options measured against them.

A batch mixes presence queries (kinds "single" and "both": the target is the talkers in range) and
absence queries (kind "absence": the target is silence). Absence examples always use eq. 9; the
presence loss is chosen by name:

``"sdr"``
    The paper's: negative eq. 8, SDR with a soft threshold (tau = 1e-3). It rewards any output
    closer to the target than the mixture is, so turning the mixture down by about 3 dB already
    scores about 2.9 dB SDRi on single-talker queries (SPEC.md, Evaluation).
``"si_sdr"``
    Negative scale-invariant SDR: a gain on the mixture earns nothing, only selection does.
``"si_sdr_level"``
    Negative SI-SDR plus ``0.5 x |output level - target level|`` in dB. Plain SI-SDR ignores the
    output's scale, so next to eq. 9 (which rewards a quiet output on absence queries) a model
    learns to go silent for every query, saturating its sigmoid mask at 0 and stalling (measured:
    every query -34 dB after 900 steps, SI-SDRi 0). The level term keeps presence outputs at the
    target's level, while a gain on the mixture still earns nothing.
``"spectral"``
    Compressed spectral loss (magnitudes raised to 0.3, plus 0.3 x the compressed complex
    difference; as in DeepFilterNet / TF-GridNet recipes), normalised by the target's compressed
    magnitude so it is level-independent.

All losses are per example, shape [B], minimised; inputs are waveforms [B, N] at the model's rate.
"""
from __future__ import annotations

import torch

from realtime_tse.models.metrics import loss_active, loss_inactive, si_sdr
from realtime_tse.models.stft import stft

PRESENCE_LOSSES = ("sdr", "si_sdr", "si_sdr_level", "spectral")
LEVEL_WEIGHT = 0.5  # loss per dB of output level error in "si_sdr_level"


def spectral_loss(est: torch.Tensor, ref: torch.Tensor, n_fft: int = 256, hop: int = 128,
                  power: float = 0.3, complex_weight: float = 0.3) -> torch.Tensor:
    """Compressed spectral loss [B]: mean squared error of ``|S|^power`` plus ``complex_weight`` x
    that of ``|S|^power e^{j angle S}``, divided by the mean of the target's ``|S|^(2 power)``.

    est, ref: [B, N] waveforms. n_fft, hop: STFT size in samples (sqrt-Hann, realtime_tse.models.stft).
    """
    def comp(x):
        s = stft(x, n_fft, hop)
        mag = s.abs().clamp_min(1e-8)
        return mag ** power, s * (mag ** (power - 1.0))

    me, ce = comp(est)
    mr, cr = comp(ref)
    norm = (mr ** 2).mean(dim=(1, 2)) + 1e-8
    mag_err = ((me - mr) ** 2).mean(dim=(1, 2))
    cplx_err = ((ce - cr).abs() ** 2).mean(dim=(1, 2))
    return (mag_err + complex_weight * cplx_err) / norm


def presence_loss(name: str, est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Presence loss ``name`` (one of :data:`PRESENCE_LOSSES`) per example [B].

    Raises:
        ValueError: unknown name.
    """
    if name == "sdr":
        return loss_active(est, ref)
    if name == "si_sdr":
        return -si_sdr(est, ref)
    if name == "si_sdr_level":
        lev = 10 * torch.log10(((est * est).sum(-1) + 1e-8) / ((ref * ref).sum(-1) + 1e-8))
        return -si_sdr(est, ref) + LEVEL_WEIGHT * lev.abs()
    if name == "spectral":
        return spectral_loss(est, ref)
    raise ValueError(f"unknown presence loss {name!r}; expected one of {PRESENCE_LOSSES}")


def batch_loss(est: torch.Tensor, batch: dict, presence: str = "sdr", pit_pairs: bool = False,
               pit_weight: float = 1.0, pit_only: torch.Tensor | None = None) -> torch.Tensor:
    """Mean loss of a batch mixing presence and absence queries.

    est, batch["target"], batch["mix"]: [B, N]; batch["kind"]: list of "single"/"both"/"absence".
    Presence examples use ``presence_loss(presence, ...)``, absence examples eq. 9.

    ``pit_pairs``: the batch holds pairs (rows ``2m``, ``2m + 1``: one mixture queried around each of
    its two talkers, :meth:`realtime_tse.train.mixtures.MixtureSampler.sample_paired_at`). Where both rows of a
    pair are single-talker queries, the pair is scored with the better of the two assignments of
    estimates to targets (permutation-invariant training, PIT): the network is rewarded for
    separating the two talkers before it has learnt which one the query means, the grouping that a
    query-only loss cannot teach from scratch (diagnostics in ``experiments/FINDINGS.md``).
    Other pairs are scored as usual. ``pit_weight`` in [0, 1] blends the two scores of such a pair,
    ``pit_weight * PIT + (1 - pit_weight) * query-bound`` (a soft switch from PIT to the query).
    ``pit_only``: optional bool tensor [B / 2]; PIT applies only to the pairs marked True (the others
    keep the query-bound score), as when only some pairs were queried at fixed tokens
    (``TrainConfig.pit_queries``).
    Raises ValueError for an odd batch, a weight outside [0, 1] or a ``pit_only`` of the wrong size.
    """
    absent = torch.tensor([k == "absence" for k in batch["kind"]], device=est.device)
    out = est.new_zeros(est.shape[0])
    if (~absent).any():  # each loss only on its own rows: no NaN from SI-SDR of a silent target
        out = out.index_put((~absent,), presence_loss(presence, est[~absent], batch["target"][~absent]))
    if absent.any():
        out = out.index_put((absent,), loss_inactive(est[absent], batch["mix"][absent]))
    if pit_pairs:
        if est.shape[0] % 2:
            raise ValueError(f"pit_pairs needs an even batch of pairs, got {est.shape[0]} rows")
        if not 0.0 <= pit_weight <= 1.0:
            raise ValueError(f"pit_weight must be in [0, 1], got {pit_weight}")
        single = torch.tensor([k == "single" for k in batch["kind"]], device=est.device).reshape(-1, 2)
        both = single.all(1)
        if pit_only is not None:
            if pit_only.shape != both.shape:
                raise ValueError(f"pit_only must have one entry per pair ({both.shape[0]}), got {tuple(pit_only.shape)}")
            both = both & pit_only.to(both.device)
        if both.any():
            rows = torch.nonzero(both.repeat_interleave(2)).flatten()        # pairs' rows, in order
            swapped = rows.reshape(-1, 2).flip(1).flatten()                   # each row's partner
            cross = presence_loss(presence, est[rows], batch["target"][swapped]).reshape(-1, 2)
            same = out[rows].reshape(-1, 2)
            best = torch.where((cross.sum(1) < same.sum(1))[:, None], cross, same)
            out = out.index_put((rows,), (pit_weight * best + (1.0 - pit_weight) * same).flatten())
    return out.mean()


def distance_targets(sources: torch.Tensor, distances: torch.Tensor, n_fft: int, hop: int, n_bins: int,
                     bin_m: float, within_db: float = 15.0, floor_db: float = 40.0) -> torch.Tensor:
    """Per-frame targets of the distance head: which distance bins hold an active talker.

    Args:
        sources: [B, K, N] the talkers' reverberant signals at the model's rate (a zero row is no talker).
        distances: [B, K] metres; ``inf`` marks a talker that is not there.
        n_fft, hop: the model's STFT (samples), so the frames are the head's frames.
        n_bins, bin_m: bin ``b`` covers ``[b, b + 1) x bin_m`` metres; farther talkers fall in the last.
        within_db: a talker is active in a frame when its frame energy is within this many dB of the
            frame's loudest talker...
        floor_db: ...and within this many dB of its own loudest frame (its pauses are not "active").
    Returns:
        float [B, T, n_bins] of 0 and 1.
    """
    b, k, n = sources.shape
    spec = stft(sources.reshape(b * k, n), n_fft, hop)                       # [B K, T, F]
    e = 10 * torch.log10((spec.real ** 2 + spec.imag ** 2).sum(-1) + 1e-10).reshape(b, k, -1)
    there = torch.isfinite(distances)                                        # [B, K]
    e = torch.where(there[..., None], e, torch.full_like(e, -200.0))
    act = (e >= e.max(1, keepdim=True).values - within_db) & (e >= e.max(2, keepdim=True).values - floor_db)
    act = act & there[..., None]                                             # [B, K, T]
    idx = (torch.where(there, distances, torch.zeros_like(distances)) / bin_m).floor().long().clamp(0, n_bins - 1)
    onehot = torch.nn.functional.one_hot(idx, n_bins).to(e.dtype)            # [B, K, n_bins]
    return (act.to(e.dtype).transpose(1, 2) @ onehot).clamp(max=1.0)        # [B, T, n_bins]


def distance_head_loss(logits: torch.Tensor, sources: torch.Tensor, distances: torch.Tensor, n_fft: int,
                       hop: int, bin_m: float) -> torch.Tensor:
    """Binary cross-entropy [B] of the distance head's logits [B, T, n_bins] against
    :func:`distance_targets` of ``sources`` [B, K, N] and ``distances`` [B, K] (metres, inf = none).

    An auxiliary loss beside the query-bound one: the head reads the LSTM output that the mask is
    made of, so the network is taught the distance of every talker in every frame directly.
    Raises ValueError if the frame counts differ.
    """
    tgt = distance_targets(sources, distances, n_fft, hop, logits.shape[-1], bin_m)
    if tgt.shape[:2] != logits.shape[:2]:
        raise ValueError(f"distance head gives {tuple(logits.shape[:2])} frames, targets {tuple(tgt.shape[:2])}")
    return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), tgt, reduction="none").mean((1, 2))
