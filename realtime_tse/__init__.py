"""realtime-tse: distance-based single-channel target speech extraction, live.

``from realtime_tse import load_model`` gives :func:`realtime_tse.model.load_model`.
Importing this package is light: torch loads on first use of ``load_model`` and Qt only with
``realtime_tse.gui``.
"""
from __future__ import annotations

__all__ = ["load_model", "__version__"]
__version__ = "0.1.0"


def __getattr__(name):  # PEP 562: import the engine (and torch) only when asked
    if name == "load_model":
        from .model import load_model
        return load_model
    raise AttributeError(f"module 'realtime_tse' has no attribute {name!r}")
