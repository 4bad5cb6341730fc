"""The DQ/TS distance-query network (Shi, Yen, Nakadai, arXiv 2412.20144), its causal streaming
variant, the LSTM+DEG baseline, checkpoints and shared signal metrics. Imports nothing from
``train`` or ``realtime_tse``."""
from .config import ModelConfig
from .net import DQTSNet, StreamState, build_model, count_parameters

__all__ = ["ModelConfig", "DQTSNet", "StreamState", "build_model", "count_parameters"]
