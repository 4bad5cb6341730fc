"""What the app says about a checkpoint: its network, how good it measured, where its model card is.

Read from the checkpoint itself (config and provenance, :mod:`realtime_tse.models.provenance`), never from a
fixed name, so a renamed or newly published checkpoint describes itself. The window's Model box and
the headless run print the same lines. Importing this module is light (the window imports it before
torch loads); :func:`measured_line` reads the provenance with :mod:`realtime_tse.models.provenance`, which loads
the ``models`` package and torch, once a model is loaded anyway.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["MODEL_CARD", "model_card_path", "measured_line", "network_text"]

MODEL_CARD = "docs/model-card.md"  # the shipped model's card, relative to the repository root

# the network of each preset, in words
_NETWORKS = {
    "lite-lstm": "causal LSTM with a distance token",
    "lite-causal": "small causal DQ/TS network",
    "lite-causal-bs": "small causal band-split DQ/TS network",
    "paper-causal": "the paper's DQ/TS network, causal",
    "paper": "the paper's DQ/TS network (not causal)",
    "baseline": "the paper's LSTM baseline (not causal)",
}


def model_card_path() -> Path:
    """The shipped model's card: ``docs/model-card.md`` in the repository (it may be absent, e.g. in
    an installed wheel; callers check)."""
    return Path(__file__).resolve().parent.parent / MODEL_CARD


def network_text(config, prov: dict | None = None) -> str:
    """``"network lite-lstm (causal LSTM with a distance token, 1.14 M parameters)"``: the preset
    from the checkpoint's config, the parameter count from its provenance when recorded."""
    preset = str(getattr(config, "preset", "") or "?")
    parts = [_NETWORKS[preset]] if preset in _NETWORKS else []
    n = (prov or {}).get("parameters") if isinstance(prov, dict) else None
    if isinstance(n, (int, float)) and n > 0:
        parts.append(f"{n / 1e6:.2f} M parameters")
    return f"network {preset}" + (f" ({', '.join(parts)})" if parts else "")


def measured_line(prov: dict | None) -> str:
    """One line of the checkpoint's measured test figures (``provenance["evaluation"]``, read by
    :func:`realtime_tse.models.provenance.measured_figures`), e.g. ``"Measured on 200 test mixtures of 4 s (D1
    room, voices it never heard): SI-SDRi +0.97 dB, output where no one talks -13.5 dB, right
    talker in both swapped positions: not in this checkpoint"``. A figure the checkpoint does not
    hold says so (it may have been measured apart, as the model card reports)."""
    from realtime_tse.models.provenance import measured_figures  # noqa: PLC0415  (loads torch: see above)
    fig = measured_figures(prov)
    if fig is None:
        return "Measured figures: not measured (this checkpoint holds no test evaluation)"
    where = [f"{fig.scenario.upper()} room"] if fig.scenario else []
    where.append("voices it never heard")
    n = f"{fig.mixtures} test mixtures" if fig.mixtures else "test mixtures"
    n += f" of {fig.clip_s:g} s" if fig.clip_s else ""

    def db(v, digits):
        return "not measured" if v is None else f"{v:+.{digits}f} dB"

    swap = "not in this checkpoint" if fig.right_in_both is None else f"{100 * fig.right_in_both:.0f} %"
    return (f"Measured on {n} ({', '.join(where)}): SI-SDRi {db(fig.si_sdri_db, 2)}, output "
            f"where no one talks {db(fig.absence_db, 1)}, right talker in both swapped positions: "
            f"{swap}")
