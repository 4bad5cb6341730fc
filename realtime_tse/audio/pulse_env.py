"""Saving and restoring environment variables around a PortAudio open (``PULSE_SOURCE`` and
``PULSE_SINK`` are read by libpulse when the stream opens): used by the calibration's play-record
stream and the delay-measuring harness."""
from __future__ import annotations

import os

__all__ = ["save_env", "restore_env"]


def save_env(keys) -> dict:
    """The current values of environment variables ``keys`` (None where unset), for
    :func:`restore_env`."""
    return {k: os.environ.get(k) for k in keys}


def restore_env(saved: dict) -> None:
    """Put back variables saved by :func:`save_env` (unsetting those that were unset)."""
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
