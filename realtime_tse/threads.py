"""Thread priorities: one rule for every thread that asks for one.

Linux gives each thread its own nice value. The audio threads (the stream's worker and the
PortAudio callbacks) ask for ``AUDIO_NICE`` (-10) so that, on a busy machine, they do not wait
behind other processes (lowering a nice value needs root, CAP_SYS_NICE or RLIMIT_NICE; without it
the thread keeps its priority); the distance scan asks for ``SCAN_NICE`` (+5), below normal
programs, so it yields to the audio path and the desktop.
"""
from __future__ import annotations

import logging
import os
import threading

AUDIO_NICE = -10
SCAN_NICE = 5

log = logging.getLogger(__name__)


def set_thread_nice(nice: int, tid: int | None = None) -> bool:
    """Best effort: set a thread's nice value (absolute, -20..19).

    Args:
        nice: the nice value asked for.
        tid: the thread's native id (``threading.get_native_id()``); None = the calling thread.
    Returns:
        True when set; False when the OS refused or has no per-thread priorities (never raises).
    """
    if not hasattr(os, "setpriority"):
        return False
    tid = threading.get_native_id() if tid is None else int(tid)
    try:
        os.setpriority(os.PRIO_PROCESS, tid, int(nice))
        return True
    except (AttributeError, OSError, PermissionError) as e:
        log.debug("cannot set nice %d on thread %d: %s", nice, tid, e)
        return False
