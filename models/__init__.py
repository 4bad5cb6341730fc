"""The DQ/TS distance-query network (Shi, Yen, Nakadai, arXiv 2412.20144) and its causal streaming
variant (arch ``dqts``: :class:`DQTSNet`), the LSTM+DEG of the paper's Table II and its causal form
(arch ``lstm_deg``: :class:`LSTMDEG`), checkpoints and shared signal metrics. Imports nothing from
``train`` or ``realtime_tse``."""
from .config import ModelConfig
from .lstm_deg import LSTMDEG
from .net import DQTSNet, StreamState, build_model, count_parameters

__all__ = ["ModelConfig", "DQTSNet", "LSTMDEG", "StreamState", "build_model", "count_parameters"]
