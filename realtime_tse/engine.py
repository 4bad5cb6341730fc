"""Compatibility names: the engine is split by concept (ARCHITECTURE.md).

* :mod:`realtime_tse.model`: ``load_model`` -> :class:`TSEModel` (extract, scan, stream),
  ``default_model_path``, ``resolve_device``, ``resample``;
* :mod:`realtime_tse.streamer`: :class:`Streamer` (block-wise streaming with carried state);
* :mod:`realtime_tse.live`: :class:`LiveEngine` (microphone -> model -> speakers, scan, recording);
* :mod:`realtime_tse.scan_result`: :class:`ScanResult`.

``from realtime_tse.engine import load_model, LiveEngine, Streamer, ...`` keeps working.
"""
from __future__ import annotations

from models.checkpoint import CheckpointError

from .live import LiveEngine
from .model import (MODEL_ENV, SHIPPED_MODEL_NAME, TSEModel, default_model_path, load_model,
                    resample, resolve_device)
from .scan_result import ScanResult
from .streamer import DEFAULT_BLOCK_MS, Streamer

__all__ = ["load_model", "default_model_path", "resolve_device", "TSEModel", "Streamer",
           "LiveEngine", "ScanResult", "CheckpointError", "resample", "SHIPPED_MODEL_NAME",
           "MODEL_ENV", "DEFAULT_BLOCK_MS"]
