"""Thread priorities: one rule for every thread that asks for one.

Two kinds of request, told apart by the nice value asked for:

- **Audio threads** (the stream's worker that runs the model per block, the PortAudio callbacks
  and the sound library's threads; they ask for ``AUDIO_NICE`` = -10, or lower): first
  ``SCHED_FIFO`` at ``AUDIO_RT_PRIORITY`` (3), then nice -10, then nothing, whichever the OS grants
  first (``SCHED_FIFO`` needs root, CAP_SYS_NICE or RLIMIT_RTPRIO; nice below 0 needs root,
  CAP_SYS_NICE or RLIMIT_NICE). Under ``SCHED_FIFO`` a thread runs before every normal process
  the moment it wakes: a probe on this machine's loaded 2 cores saw a callback period's p99
  jitter 0.1 ms with it and 0.2 to 1.2 ms with nice -10. The priority stays below the sound
  server's own I/O threads (PulseAudio runs them ``SCHED_RR`` 5, PipeWire's data loop higher), so
  the server still moves the audio our threads wait for.
- **Everything else** (the distance scan asks for ``SCAN_NICE`` = +5): that nice value only (a
  thread found under a real-time policy is put back to ``SCHED_OTHER`` first).

Safety of real-time threads (a thread under ``SCHED_FIFO`` that does not sleep takes its core
from every normal process; Linux's RT throttling, ``kernel.sched_rt_runtime_us`` = 950,000 of
every 1,000,000 us, leaves normal tasks only 5 % of it):

- The worker sleeps between blocks (it waits on its stop event while a block is incomplete), so
  it takes its real-time factor of one core (about 0.2 with the shipped model); the callbacks
  copy and return.
- Never the main thread: it runs the window's event loop, the command line or a test runner
  (a block processed synchronously asks from the calling thread); it gets nice -10 instead.
- A guard (:func:`_watch_once`, in a small ``SCHED_FIFO`` thread one priority above the audio
  threads, 2 wake-ups a second) demotes any thread it granted ``SCHED_FIFO`` that used more than
  ``MAX_RT_SHARE`` (70 %) of a core over the last ``WATCH_WINDOW_S`` (2 s) to nice -10, with one
  warning: a model slower than real time or a library thread spinning (PortAudio polling a sound
  server that went away, seen here at 94 % of a core) must not starve the machine. Threads are
  read from ``/proc/self/task``; where that does not exist no ``SCHED_FIFO`` is asked for.
- The policy is set with ``SCHED_RESET_ON_FORK``: threads and processes started from an audio
  thread (torch's intra-op pool, the scan's child process, a restarted stream's helpers) begin as
  normal threads, never inherit the real-time policy.

Switch: ``LiveConfig.rt_priority`` (passed as ``rt_priority``; CLI ``--rt-priority``): 0 = no
``SCHED_FIFO`` (nice -10 as before), 1..99 = that FIFO priority. Where it is None (the default),
``RTSE_RT_SCHED`` in the environment, read at each request: ``0`` / ``off`` / ``no`` /
``false`` / ``nice`` = no ``SCHED_FIFO``; an integer 1..99 = that FIFO priority; unset or
anything else = ``AUDIO_RT_PRIORITY``. Which policy was granted is logged once
per outcome (INFO) and kept in :func:`audio_policy`. Nothing here ever raises.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time

AUDIO_NICE = -10
SCAN_NICE = 5
AUDIO_RT_PRIORITY = 3  # SCHED_FIFO priority of audio threads (1..99; below the sound server's)
RT_ENV = "RTSE_RT_SCHED"
MAX_RT_SHARE = 0.7     # share of one core over WATCH_WINDOW_S above which a FIFO thread is demoted
WATCH_WINDOW_S = 2.0
WATCH_PERIOD_S = 0.5
_TASK_DIR = "/proc/self/task"

log = logging.getLogger(__name__)

_lock = threading.Lock()
_logged: set[str] = set()
_granted: dict[str, int] = {}   # outcome -> how many threads got it ("fifo", "nice", "none")
_last: dict = {"policy": None, "priority": None, "nice": None}
_OFF = {"0", "off", "no", "false", "nice", "none"}
_watched: dict[int, dict] = {}  # tid -> {"nice": fallback nice, "samples": deque of (t, cpu s)}
_demoted: list[int] = []
_watchdog: threading.Thread | None = None


def audio_rt_priority(setting: int | bool | str | None = None) -> int | None:
    """The ``SCHED_FIFO`` priority audio threads ask for now, None = off.

    Args:
        setting: the caller's choice (``LiveConfig.rt_priority``): an integer 1..99 = that
            priority; 0, False or an "off" word (``0``, ``off``, ``no``, ``false``, ``nice``,
            ``none``) = no ``SCHED_FIFO``; True or anything else = ``AUDIO_RT_PRIORITY``;
            None = ``RTSE_RT_SCHED`` from the environment decides (same values).
    """
    if setting is not None and not isinstance(setting, str):
        if setting is True:
            return AUDIO_RT_PRIORITY
        if setting is False:
            return None
        try:
            n = int(setting)
        except (TypeError, ValueError, OverflowError):
            return AUDIO_RT_PRIORITY
        return None if n == 0 else n if 1 <= n <= 99 else AUDIO_RT_PRIORITY
    v = (os.environ.get(RT_ENV, "") if setting is None else setting).strip().lower()
    if v in _OFF:
        return None
    if v.isdigit() and 1 <= int(v) <= 99:
        return int(v)
    return AUDIO_RT_PRIORITY


def audio_policy() -> dict:
    """What the audio threads were granted so far: ``policy`` of the latest request (``"fifo"``,
    ``"nice"``, ``"none"`` or None before any), its ``priority`` / ``nice``, ``threads``
    (outcome -> count) and ``demoted`` (threads the guard took off ``SCHED_FIFO``)."""
    with _lock:
        return {**_last, "threads": dict(_granted), "demoted": len(_demoted)}


def thread_cpu_s(tid: int) -> float | None:
    """CPU time (user + system, s) a thread of this process has used; None when it is gone or
    the OS does not say (Linux ``/proc/self/task/<tid>/stat``)."""
    try:
        with open(f"{_TASK_DIR}/{int(tid)}/stat", "rb") as f:
            st = f.read()
        fields = st[st.rindex(b")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _demote(tid: int, nice: int, share: float) -> None:
    try:
        if os.sched_getscheduler(tid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0) != os.SCHED_FIFO:
            return  # no longer ours to demote (policy changed, or the id was reused)
        os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError, ValueError, TypeError) as e:
        log.debug("cannot take thread %d off SCHED_FIFO: %s", tid, e)
        return
    ok = _set_nice(nice, tid)
    _demoted.append(tid)
    log.warning("audio thread %d used %.0f %% of a core for %.0f s under SCHED_FIFO: demoted to "
                "%s so that it cannot starve the machine", tid, 100 * share, WATCH_WINDOW_S,
                f"nice {nice}" if ok else "normal priority")


def _watch_once(now: float, read=thread_cpu_s) -> list[int]:
    """One look of the guard (module docstring) at every thread it granted ``SCHED_FIFO``:
    forget threads that ended, demote those above ``MAX_RT_SHARE`` of a core over
    ``WATCH_WINDOW_S``. ``now``: monotonic seconds; ``read(tid)``: CPU seconds or None.
    Returns the tids demoted. Call with ``_lock`` held."""
    out = []
    for tid, w in list(_watched.items()):
        c = read(tid)
        if c is None:
            del _watched[tid]
            continue
        q = w["samples"]
        q.append((now, c))
        while len(q) > 2 and now - q[1][0] >= WATCH_WINDOW_S:
            q.popleft()  # q[0]: the newest sample at least a window old
        span = now - q[0][0]
        if span >= WATCH_WINDOW_S:
            share = (c - q[0][1]) / span
            if share > MAX_RT_SHARE:
                del _watched[tid]
                _demote(tid, w["nice"], share)
                out.append(tid)
    return out


def _watchdog_main(priority: int) -> None:
    global _watchdog
    set_thread_realtime(min(99, priority + 1))  # preempts a spinning audio thread (best effort)
    while True:
        time.sleep(WATCH_PERIOD_S)
        with _lock:
            if not _watched:
                _watchdog = None
                return
            try:
                _watch_once(time.monotonic())
            except Exception as e:  # noqa: BLE001  (the guard never takes the process down)
                log.debug("real-time guard: %s", e)


def _start_watchdog(priority: int) -> None:
    """Start the guard's thread unless it runs (call with ``_lock`` held)."""
    global _watchdog
    if _watchdog is None or not _watchdog.is_alive():
        _watchdog = threading.Thread(target=_watchdog_main, args=(priority,), daemon=True,
                                     name="rtse-rt-guard")
        _watchdog.start()


def _watch(tid: int, nice: int, priority: int) -> None:
    with _lock:
        c = thread_cpu_s(tid)
        q = collections.deque()
        if c is not None:
            q.append((time.monotonic(), c))
        _watched[tid] = {"nice": nice, "samples": q}
        _start_watchdog(priority)


def _note(outcome: str, detail: str, priority: int | None, nice: int | None) -> None:
    with _lock:
        _granted[outcome] = _granted.get(outcome, 0) + 1
        _last.update(policy=outcome, priority=priority, nice=nice)
        first = outcome not in _logged
        _logged.add(outcome)
    if first:
        log.info("audio thread priority: %s", detail)


def set_thread_realtime(priority: int, tid: int | None = None) -> bool:
    """Best effort: put a thread under ``SCHED_FIFO`` at ``priority`` (1..99), with
    ``SCHED_RESET_ON_FORK`` (its children start as normal threads).

    Returns:
        True when set; False when the OS refused or has no such policy (never raises).
    """
    if not (hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_FIFO")):
        return False
    tid = threading.get_native_id() if tid is None else int(tid)
    policy = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
    try:
        os.sched_setscheduler(tid, policy, os.sched_param(int(priority)))
        return True
    except (AttributeError, OSError, ValueError, OverflowError, TypeError) as e:
        log.debug("cannot set SCHED_FIFO %s on thread %d: %s", priority, tid, e)
        return False


def _leave_realtime(tid: int) -> None:
    """A thread under a real-time policy back to ``SCHED_OTHER`` (best effort)."""
    try:
        rt = {getattr(os, "SCHED_FIFO", -1), getattr(os, "SCHED_RR", -1)}
        cur = os.sched_getscheduler(tid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
        if cur in rt:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError, ValueError, TypeError) as e:
        log.debug("cannot check or leave the real-time policy of thread %d: %s", tid, e)


def _set_nice(nice: int, tid: int) -> bool:
    if not hasattr(os, "setpriority"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, tid, int(nice))
        return True
    except (AttributeError, OSError, ValueError, OverflowError, TypeError) as e:
        log.debug("cannot set nice %d on thread %d: %s", nice, tid, e)
        return False


def set_audio_priority(tid: int | None = None, nice: int = AUDIO_NICE,
                       rt_priority: int | bool | str | None = None) -> str:
    """The audio rule: ``SCHED_FIFO`` (unless ``rt_priority``, or ``RTSE_RT_SCHED`` when it is
    None, turns it off; see :func:`audio_rt_priority`), else ``nice``, else nothing.

    Returns:
        ``"fifo"``, ``"nice"`` or ``"none"``: what was granted (never raises).
    """
    try:
        tid = threading.get_native_id() if tid is None else int(tid)
    except (TypeError, ValueError):
        return "none"
    prio = audio_rt_priority(rt_priority)
    main = tid == threading.main_thread().native_id
    watchable = os.path.isdir(_TASK_DIR)
    if prio is not None and not main and watchable and set_thread_realtime(prio, tid):
        _watch(tid, nice, prio)
        _note("fifo", f"SCHED_FIFO priority {prio} (RTSE_RT_SCHED=0 turns it off)", prio, None)
        return "fifo"
    if prio is None or main:
        _leave_realtime(tid)  # a thread granted FIFO earlier goes back to normal
    why = ("SCHED_FIFO off (RTSE_RT_SCHED or LiveConfig.rt_priority)" if prio is None else
           "no SCHED_FIFO for the main thread" if main else
           "no SCHED_FIFO without /proc/self/task (no guard)" if not watchable else
           "SCHED_FIFO refused")
    if _set_nice(nice, tid):
        _note("nice", f"{why}; nice {nice}", None, nice)
        return "nice"
    _note("none", f"{why}; nice {nice} refused too: normal priority", None, None)
    return "none"


def set_thread_nice(nice: int, tid: int | None = None,
                    rt_priority: int | bool | str | None = None) -> bool:
    """Best effort: the thread-priority rule (module docstring) for a thread asking for ``nice``.

    Args:
        nice: the nice value asked for (absolute, -20..19); ``AUDIO_NICE`` or lower marks an
            audio thread, which asks for ``SCHED_FIFO`` first.
        tid: the thread's native id (``threading.get_native_id()``); None = the calling thread.
        rt_priority: audio threads only: the ``SCHED_FIFO`` choice (:func:`audio_rt_priority`;
            None = ``RTSE_RT_SCHED``'s).
    Returns:
        True when a raised priority (audio: FIFO or nice) or the asked nice value was set; False
        when the OS refused or has no per-thread priorities (never raises).
    """
    try:
        nice = int(nice)
        tid = threading.get_native_id() if tid is None else int(tid)
    except (TypeError, ValueError):
        return False
    if nice <= AUDIO_NICE:
        return set_audio_priority(tid, nice, rt_priority) != "none"
    _leave_realtime(tid)
    return _set_nice(nice, tid)
