"""The thread-priority rule (realtime_tse/threads.py): audio threads ask for SCHED_FIFO, fall back
to nice, then to nothing, never raise; the scan keeps its nice value. No timing assertions."""
from __future__ import annotations

import logging
import os
import threading

import pytest

from realtime_tse import threads as T


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    monkeypatch.delenv(T.RT_ENV, raising=False)
    monkeypatch.setattr(T, "_logged", set())
    monkeypatch.setattr(T, "_granted", {})
    monkeypatch.setattr(T, "_last", {"policy": None, "priority": None, "nice": None})
    monkeypatch.setattr(T, "_watched", {})
    monkeypatch.setattr(T, "_demoted", [])
    monkeypatch.setattr(T, "_watchdog", None)
    # fake thread ids: no guard thread (the guard's logic is tested through _watch_once)
    monkeypatch.setattr(T, "_start_watchdog", lambda priority: None)


class FakeOS:
    """Records sched_setscheduler / setpriority calls; each may be made to raise."""

    def __init__(self, monkeypatch, fifo_error=None, nice_error=None):
        self.sched, self.nice = [], []
        self.policy = {}

        def sched_setscheduler(tid, policy, param):
            if fifo_error is not None and policy & ~getattr(os, "SCHED_RESET_ON_FORK", 0) \
                    == os.SCHED_FIFO:
                raise fifo_error
            self.sched.append((tid, policy, param.sched_priority))
            self.policy[tid] = policy

        def sched_getscheduler(tid):
            return self.policy.get(tid, os.SCHED_OTHER)

        def setpriority(which, tid, nice):
            if nice_error is not None:
                raise nice_error
            self.nice.append((tid, nice))

        monkeypatch.setattr(os, "sched_setscheduler", sched_setscheduler)
        monkeypatch.setattr(os, "sched_getscheduler", sched_getscheduler)
        monkeypatch.setattr(os, "setpriority", setpriority)

    def fifo_calls(self):
        reset = getattr(os, "SCHED_RESET_ON_FORK", 0)
        return [c for c in self.sched if c[1] & ~reset == os.SCHED_FIFO]


pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_FIFO"), reason="no SCHED_FIFO here")


def test_audio_thread_gets_fifo_with_reset_on_fork(monkeypatch, caplog):
    fake = FakeOS(monkeypatch)
    with caplog.at_level(logging.INFO, logger=T.__name__):
        assert T.set_thread_nice(T.AUDIO_NICE, 1234) is True
        assert T.set_thread_nice(T.AUDIO_NICE, 1235) is True
    assert [(tid, prio) for tid, _, prio in fake.fifo_calls()] == [(1234, T.AUDIO_RT_PRIORITY),
                                                                   (1235, T.AUDIO_RT_PRIORITY)]
    assert all(p & getattr(os, "SCHED_RESET_ON_FORK", 0) == getattr(os, "SCHED_RESET_ON_FORK", 0)
               for _, p, _ in fake.sched)
    assert fake.nice == []  # FIFO granted: no nice fallback
    pol = T.audio_policy()
    assert pol["policy"] == "fifo" and pol["priority"] == T.AUDIO_RT_PRIORITY
    assert pol["threads"] == {"fifo": 2}
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1 and "SCHED_FIFO" in infos[0].getMessage()  # logged once


def test_fifo_refused_falls_back_to_nice(monkeypatch, caplog):
    fake = FakeOS(monkeypatch, fifo_error=PermissionError(1, "Operation not permitted"))
    with caplog.at_level(logging.INFO, logger=T.__name__):
        assert T.set_audio_priority(42) == "nice"
        assert T.set_thread_nice(T.AUDIO_NICE, 43) is True
    assert fake.nice == [(42, T.AUDIO_NICE), (43, T.AUDIO_NICE)]
    assert T.audio_policy()["policy"] == "nice"
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1 and "refused" in infos[0]


def test_everything_refused_never_raises(monkeypatch):
    FakeOS(monkeypatch, fifo_error=PermissionError(1, "no"), nice_error=PermissionError(13, "no"))
    assert T.set_audio_priority(7) == "none"
    assert T.set_thread_nice(T.AUDIO_NICE, 7) is False
    assert T.set_thread_nice(T.SCAN_NICE, 7) is False
    assert T.audio_policy()["threads"] == {"none": 2}


def test_no_sched_api_falls_back(monkeypatch):
    fake = FakeOS(monkeypatch)
    monkeypatch.delattr(os, "sched_setscheduler")
    assert T.set_audio_priority(9) == "nice"
    assert fake.nice == [(9, T.AUDIO_NICE)]


@pytest.mark.parametrize("value", ["0", "off", "no", "false", "nice"])
def test_env_turns_fifo_off(monkeypatch, value):
    monkeypatch.setenv(T.RT_ENV, value)
    fake = FakeOS(monkeypatch)
    fake.policy[5] = os.SCHED_FIFO  # granted earlier: goes back to SCHED_OTHER
    assert T.audio_rt_priority() is None
    assert T.set_audio_priority(5) == "nice"
    assert fake.fifo_calls() == []
    assert fake.sched == [(5, os.SCHED_OTHER, 0)]
    assert fake.nice == [(5, T.AUDIO_NICE)]


@pytest.mark.parametrize("value, prio", [("7", 7), ("99", 99), ("", T.AUDIO_RT_PRIORITY),
                                         ("abc", T.AUDIO_RT_PRIORITY),
                                         ("150", T.AUDIO_RT_PRIORITY),
                                         ("-3", T.AUDIO_RT_PRIORITY)])
def test_env_priority(monkeypatch, value, prio):
    monkeypatch.setenv(T.RT_ENV, value)
    fake = FakeOS(monkeypatch)
    assert T.set_audio_priority(11) == "fifo"
    assert [c[2] for c in fake.fifo_calls()] == [prio]


@pytest.mark.parametrize("setting, env, prio", [
    (0, None, None), (False, "7", None), ("off", None, None),   # the setting turns FIFO off
    (7, "0", 7), (99, None, 99), (True, "0", T.AUDIO_RT_PRIORITY),  # ... or sets it, env aside
    (150, None, T.AUDIO_RT_PRIORITY), (-3, None, T.AUDIO_RT_PRIORITY),
    (None, "0", None), (None, "12", 12), (None, None, T.AUDIO_RT_PRIORITY)])  # None: the env
def test_rt_priority_setting_over_the_environment(monkeypatch, setting, env, prio):
    if env is not None:
        monkeypatch.setenv(T.RT_ENV, env)
    assert T.audio_rt_priority(setting) == prio
    fake = FakeOS(monkeypatch)
    granted = T.set_audio_priority(40, rt_priority=setting)
    assert granted == ("nice" if prio is None else "fifo")
    assert [c[2] for c in fake.fifo_calls()] == ([] if prio is None else [prio])
    assert T.set_thread_nice(T.AUDIO_NICE, 41, setting) is True
    assert [c[0] for c in fake.fifo_calls()] == ([] if prio is None else [40, 41])


def test_stream_and_engine_pass_the_configured_rt_priority(monkeypatch, tmp_path):
    """LiveConfig.rt_priority reaches the priority request of a running stream's worker, and
    out-of-range values are refused."""
    import numpy as np
    import soundfile as sf

    import realtime_tse.audio.base as AS
    from realtime_tse.audio.streams import make_stream
    from realtime_tse.live_config import LiveConfig
    calls = []
    monkeypatch.setattr(AS, "set_thread_nice",
                        lambda nice, tid=None, rt_priority=None: calls.append((nice, rt_priority))
                        or True)
    p = tmp_path / "a.wav"
    sf.write(p, np.zeros(1600, np.float32), 16000)
    s = make_stream(lambda b: b, 16000, 800, LiveConfig(input_file=str(p), output_device="null",
                                                        loop=False, rt_priority=0))
    s.start()
    assert s.wait(10.0)
    s.stop()
    assert calls == [(T.AUDIO_NICE, 0)] and s.priority_boosted == ["worker"]
    for bad in (100, -1, True, 2.5):
        with pytest.raises(ValueError, match="rt_priority"):
            make_stream(lambda b: b, 16000, 800, input_file=str(p), output_device="null",
                        rt_priority=bad)


def test_scan_keeps_its_nice_and_leaves_realtime(monkeypatch):
    fake = FakeOS(monkeypatch)
    assert T.set_thread_nice(T.SCAN_NICE, 21) is True
    assert fake.fifo_calls() == [] and fake.nice == [(21, T.SCAN_NICE)]
    fake.policy[22] = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
    assert T.set_thread_nice(T.SCAN_NICE, 22) is True
    assert (22, os.SCHED_OTHER, 0) in fake.sched
    assert T.audio_policy()["policy"] is None  # the scan is not an audio thread


def test_main_thread_never_gets_fifo(monkeypatch):
    fake = FakeOS(monkeypatch)
    assert T.set_thread_nice(T.AUDIO_NICE, threading.main_thread().native_id) is True
    assert fake.fifo_calls() == []
    assert fake.nice == [(threading.main_thread().native_id, T.AUDIO_NICE)]


def test_no_fifo_where_threads_cannot_be_watched(monkeypatch, tmp_path):
    fake = FakeOS(monkeypatch)
    monkeypatch.setattr(T, "_TASK_DIR", str(tmp_path / "absent"))
    assert T.set_audio_priority(31) == "nice"
    assert fake.fifo_calls() == []


def test_granted_threads_are_watched(monkeypatch):
    FakeOS(monkeypatch)
    started = []
    monkeypatch.setattr(T, "_start_watchdog", lambda priority: started.append(priority))
    assert T.set_audio_priority(1234) == "fifo"
    assert 1234 in T._watched and started == [T.AUDIO_RT_PRIORITY]


def test_guard_demotes_a_thread_that_does_not_sleep(monkeypatch, caplog):
    """_watch_once with a fake clock and fake CPU readings: a FIFO thread busy 90 % of a core over
    the window goes to SCHED_OTHER + nice -10 (one warning); one at 20 % stays; an ended one is
    forgotten."""
    fake = FakeOS(monkeypatch)
    for tid in (1, 2, 3):
        assert T.set_audio_priority(tid) == "fifo"
    cpu = {1: 0.0, 2: 0.0, 3: 0.0}
    gone = set()

    def read(tid):
        return None if tid in gone else cpu[tid]

    for tid in T._watched:
        T._watched[tid]["samples"].clear()
    demoted = []
    with caplog.at_level(logging.WARNING, logger=T.__name__):
        t = 0.0
        for _ in range(int(2 * T.WATCH_WINDOW_S / T.WATCH_PERIOD_S)):
            demoted += T._watch_once(t, read)
            t += T.WATCH_PERIOD_S
            cpu[1] += 0.9 * T.WATCH_PERIOD_S
            cpu[2] += 0.2 * T.WATCH_PERIOD_S
            gone.add(3)
    assert demoted == [1]
    assert (1, os.SCHED_OTHER, 0) in fake.sched and (1, T.AUDIO_NICE) in fake.nice
    assert (2, os.SCHED_OTHER, 0) not in fake.sched
    assert set(T._watched) == {2}
    assert T.audio_policy()["demoted"] == 1
    warns = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warns) == 1 and "demoted" in warns[0]


def test_guard_leaves_a_thread_no_longer_fifo(monkeypatch):
    fake = FakeOS(monkeypatch)
    assert T.set_audio_priority(8) == "fifo"
    fake.policy[8] = os.SCHED_OTHER  # changed by someone else (or the id was reused)
    T._watched[8]["samples"].clear()
    T._watch_once(0.0, lambda tid: 0.0)
    T._watch_once(T.WATCH_WINDOW_S, lambda tid: T.WATCH_WINDOW_S)  # 100 % of a core
    assert fake.nice == [] and T.audio_policy()["demoted"] == 0


def test_bad_arguments_never_raise():
    assert T.set_thread_nice("x") is False
    assert T.set_audio_priority("y") == "none"


def _policy(tid):
    return os.sched_getscheduler(tid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)


def test_real_thread_fifo_and_children_start_normal(monkeypatch):
    """On the real OS, in a throwaway thread: whatever is granted, nothing raises; where FIFO is
    allowed (root here), a thread started from the audio thread is not real-time."""
    monkeypatch.setattr(T, "_start_watchdog", lambda priority: None)  # the thread ends at once
    seen = {}

    def child():
        seen["child"] = _policy(threading.get_native_id())

    def audio():
        tid = threading.get_native_id()
        seen["granted"] = T.set_audio_priority()
        seen["self"] = _policy(tid)
        th = threading.Thread(target=child)
        th.start()
        th.join()
        try:  # back to normal before the thread ends (it is ours, but be tidy)
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass

    th = threading.Thread(target=audio)
    th.start()
    th.join()
    assert seen["granted"] in ("fifo", "nice", "none")
    if seen["granted"] == "fifo":
        assert seen["self"] == os.SCHED_FIFO
    assert seen["child"] == os.SCHED_OTHER
