"""What the output holds: the talkers at the query distance, or everyone else.

* ``"extract"``: the talkers within ``r_spk`` of ``d_q`` (the paper's task, eq. 3; silence where
  nobody stands there, eq. 4).
* ``"suppress"``: the mixture minus that extraction, aligned sample-exactly, so the talkers outside
  ``d_q +- r_spk`` remain ("remove the person next to the microphone, keep everyone else"). The
  model's extraction is subtracted from the input at the input's own rate, so with a model of a
  lower rate the input's content above the model's band stays in the output.
"""
from __future__ import annotations

MODES = ("extract", "suppress")


def check_mode(mode) -> str:
    """``mode`` as one of :data:`MODES`. Raises ValueError for anything else."""
    m = str(mode).strip().lower() if isinstance(mode, str) else mode
    if m not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return m
