"""Where the shipped files are: the trained model and the demo input.

In a checkout (and its editable install) they are the repository's ``assets/`` folder; a built wheel
(``pip install .``) carries the same files as package data in ``realtime_tse/assets/`` (pyproject.toml
maps that package to ``assets/``). One definition, used by the engine, the CLI and the window.
"""
from __future__ import annotations

from pathlib import Path

# Named by its network (the ``lite-lstm`` preset) and the room it was trained for (the paper's D1).
SHIPPED_MODEL_NAME = "lite-lstm-d1.safetensors"
# Earlier names of the shipped file (stems), answered with a hint instead of "no such file".
FORMER_SHIPPED_NAMES = ("tse-lite-causal-d1",)
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
    """The shipped checkpoint (``models/lite-lstm-d1.safetensors`` under :func:`assets_dir`)."""
    return assets_dir() / "models" / SHIPPED_MODEL_NAME


def former_name_hint(path) -> str | None:
    """For a missing checkpoint that bears a former name of the shipped file (``tse-lite-causal-d1``,
    with or without folder and suffix): a sentence naming the current file; else None."""
    p = Path(path)
    if p.is_file() or p.name.removesuffix(".safetensors") not in FORMER_SHIPPED_NAMES:
        return None
    return (f"the shipped model is now named {SHIPPED_MODEL_NAME} (it holds the lite-lstm network, "
            f"trained for the D1 room): leave out --model (or $REALTIME_TSE_MODEL) to use it, or "
            f"pass {shipped_model_path()}")


def demo_input_path() -> Path:
    """The demo mixture: two talkers at 1 m and 3 m (``demo/demo_mix.wav`` under :func:`assets_dir`)."""
    return assets_dir() / "demo" / "demo_mix.wav"
