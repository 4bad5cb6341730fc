"""Where the shipped files are: the trained model and the demo input.

In a checkout (and its editable install) they are the repository's ``assets/`` folder; a built wheel
(``pip install .``) carries the same files as package data in ``realtime_tse/assets/`` (pyproject.toml
maps that package to ``assets/``). One definition, used by the engine, the CLI and the window.
"""
from __future__ import annotations

from pathlib import Path

SHIPPED_MODEL_NAME = "tse-lite-causal-d1.safetensors"
_HERE = Path(__file__).resolve().parent


def assets_dir() -> Path:
    """The folder holding ``models/`` and ``demo/``: the installed package's ``assets`` when the
    package was installed from a wheel, else the repository's ``assets/``. It may not exist (a
    checkout without assets); callers check the files they need."""
    packaged = _HERE / "assets"
    if (packaged / "models").is_dir():
        return packaged
    return _HERE.parent / "assets"


def shipped_model_path() -> Path:
    """The shipped checkpoint (``models/tse-lite-causal-d1.safetensors`` under :func:`assets_dir`)."""
    return assets_dir() / "models" / SHIPPED_MODEL_NAME


def demo_input_path() -> Path:
    """The demo mixture: two talkers at 1 m and 3 m (``demo/demo_mix.wav`` under :func:`assets_dir`)."""
    return assets_dir() / "demo" / "demo_mix.wav"
