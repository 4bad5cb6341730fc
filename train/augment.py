"""Dry-speech augmentation before the room: new voices from the ones the corpus has.

A model trained on one small corpus can pick talkers by their voice (pitch, timbre, recording
colour) instead of by their distance. Changing each dry utterance before it is convolved with the
room's RIR makes voice features vary independently of position, while the reverberation, which
carries the distance (direct-to-reverberant ratio, DRR), is left alone: the room is applied after.

* **Pitch and formant shift** by resampling: the utterance is resampled by ``2 ** (s / 12)`` for
  ``s`` uniform in ``[-pitch_st, +pitch_st]`` semitones and played at the original rate, which
  moves pitch and formants together (a different-sounding talker) and changes the tempo by the
  inverse factor. ``scipy.signal.resample_poly`` with a rational approximation of the factor.
* **Spectral tilt**: a first-order filter ``y[n] = x[n] - c x[n-1]``, ``c`` uniform in
  ``[-tilt, +tilt]`` (c > 0 brightens, c < 0 darkens: the colour of another microphone or voice).

The level is left to the mixer (each reverberant talker is scaled to its RMS level afterwards).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass
class DryAugment:
    """Ranges of the dry-speech augmentation; zero ranges switch a part off.

    pitch_st: largest pitch/formant shift in semitones (resampling-based, see module docstring).
    tilt: largest first-order tilt coefficient ``|c|`` (< 1).
    Raises ValueError (``validate``) for a negative range or ``tilt >= 1``.
    """

    pitch_st: float = 0.0
    tilt: float = 0.0

    def validate(self) -> "DryAugment":
        if not (0.0 <= self.pitch_st <= 12.0):
            raise ValueError(f"pitch_st must be in [0, 12] semitones, got {self.pitch_st}")
        if not (0.0 <= self.tilt < 1.0):
            raise ValueError(f"tilt must be in [0, 1), got {self.tilt}")
        return self

    @property
    def active(self) -> bool:
        return self.pitch_st > 0 or self.tilt > 0


def shift_pitch(x: np.ndarray, semitones: float) -> np.ndarray:
    """Resample ``x`` [N] by ``2 ** (semitones / 12)`` (played at the same rate: pitch and formants
    up by that factor, duration down by it). Returns float64 [about N / factor]."""
    from scipy.signal import resample_poly

    factor = Fraction(2.0 ** (float(semitones) / 12.0)).limit_denominator(48)
    if factor == 1:
        return np.asarray(x, dtype=np.float64)
    # output length N * down / up: up = denominator, down = numerator raises the pitch by the factor
    return resample_poly(np.asarray(x, dtype=np.float64), factor.denominator, factor.numerator)


def tilt(x: np.ndarray, c: float) -> np.ndarray:
    """First-order spectral tilt ``y[n] = x[n] - c x[n-1]``, normalised so that the gain at the
    spectrum's mean (|1 - c e^{-jw}| averaged in power: sqrt(1 + c^2)) is 1. float64 [N]."""
    x = np.asarray(x, dtype=np.float64)
    y = x.copy()
    y[1:] -= float(c) * x[:-1]
    return y / np.sqrt(1.0 + float(c) ** 2)


def augment_dry(x: np.ndarray, rng: np.random.Generator, aug: DryAugment) -> np.ndarray:
    """One random draw of :class:`DryAugment` applied to a dry utterance ``x`` [N] (any rate).

    Returns float64 [M] (M differs from N when the pitch is shifted). Draws nothing from ``rng``
    for a part whose range is 0, so switching augmentation off does not change other draws."""
    y = np.asarray(x, dtype=np.float64)
    if aug.pitch_st > 0:
        y = shift_pitch(y, rng.uniform(-aug.pitch_st, aug.pitch_st))
    if aug.tilt > 0:
        y = tilt(y, rng.uniform(-aug.tilt, aug.tilt))
    return y
