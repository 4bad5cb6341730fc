"""The scan process's own side and what crosses between it and the audio process (see
:mod:`realtime_tse.scan.process` for the design): the shared ring's layout
(:class:`SharedRingReader`, read by the child; :func:`ring_write`, the parent's pump), the net as
it travels (:func:`net_payload` / :func:`build_net`), the ``python -c`` script that starts the
child (:data:`BOOT`) and its main loop (:func:`child_main`), which sends ``("ready", pid)``,
``("result", ScanResult, stats)``, ``("error", msg)`` or ``("failed", msg)`` through the pipe.
"""
from __future__ import annotations

import mmap
import os
import pickle
import signal
import time
from multiprocessing.connection import Connection

import numpy as np

from .live_scan import StreamingScanWorker

__all__ = ["SharedRingReader", "ring_write", "net_payload", "build_net", "child_main", "BOOT",
           "HEADER_BYTES"]

HEADER_BYTES = 16                 # bytes before the samples: int64 written, int64 stop flag

# the child: read the payload at once (the parent's write never waits for the imports), lower
# its priority before them, take the parent's sys.path, then run child_main
BOOT = """import json, os, sys
a = json.loads(sys.argv[1])
data = sys.stdin.buffer.read()
if a["nice"] is not None:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, a["nice"])
    except OSError:
        pass
sys.path[:] = a["path"]
from realtime_tse.scan.child import child_main
child_main(a, data)
"""


class SharedRingReader:
    """Read side of the shared ring: the ``total`` / ``read(pos, n)`` source contract of
    :class:`~realtime_tse.scan.live_scan.StreamingScanWorker`, lock-free against one writer.

    Args:
        buf: a writable buffer (the shared ``mmap``) of ``16 + 4 * capacity`` bytes: int64
            samples written so far, int64 stop flag, then ``capacity`` float32 samples. The writer
            (:func:`ring_write`) stores samples first, then the counter.
    Raises:
        ValueError: ``buf`` holds no sample after the header.
    """

    def __init__(self, buf):
        n = (len(buf) - HEADER_BYTES) // 4
        if n <= 0:
            raise ValueError(f"shared ring of {len(buf)} bytes holds no samples")
        self._hdr = np.frombuffer(buf, dtype=np.int64, count=2, offset=0)
        self._buf = np.frombuffer(buf, dtype=np.float32, count=n, offset=HEADER_BYTES)

    @property
    def capacity(self) -> int:
        """Samples the ring holds."""
        return len(self._buf)

    @property
    def total(self) -> int:
        """Samples written so far."""
        return int(self._hdr[0])

    @property
    def stop_requested(self) -> bool:
        """The parent asked the child to end."""
        return bool(self._hdr[1])

    def read(self, pos: int, n: int):
        """Up to ``n`` samples from absolute position ``pos``: ``(x [k] float32 copy, start)``;
        ``start > pos`` when the samples from ``pos`` on were already overwritten (also those
        overwritten while this copy ran)."""
        cap = len(self._buf)
        w1 = int(self._hdr[0])
        start = max(int(pos), w1 - cap, 0)
        n = int(max(0, min(int(n), w1 - start)))
        s = start % cap
        if s + n <= cap:
            x = self._buf[s:s + n].copy()
        else:
            x = np.concatenate([self._buf[s:], self._buf[:n - (cap - s)]])
        lost = int(self._hdr[0]) - cap - start  # written over during the copy
        if lost > 0:
            x = x[lost:]
            start += lost
        return x, start


def ring_write(hdr: np.ndarray, ring: np.ndarray, x: np.ndarray) -> None:
    """Writer side: append ``x`` (float32) to ``ring``, then advance the counter ``hdr[0]``."""
    cap = len(ring)
    n = len(x)
    w = int(hdr[0])
    if n > cap:
        w += n - cap
        x = x[-cap:]
        n = cap
    s = w % cap
    first = min(n, cap - s)
    ring[s:s + first] = x[:first]
    if n > first:
        ring[:n - first] = x[first:]
    hdr[0] = w + n


def net_payload(net) -> tuple:
    """What the child needs to rebuild ``net``: ``("config", cfg_json, {name: ndarray})`` for the
    project's nets (a :class:`realtime_tse.models.config.ModelConfig` in ``net.cfg``), else ``("pickle", net)``.
    Raises whatever reading the state dict raises."""
    from realtime_tse.models.config import ModelConfig  # noqa: PLC0415
    cfg = getattr(net, "cfg", None)
    if isinstance(cfg, ModelConfig):
        state = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
        return ("config", cfg.to_json(), state)
    return ("pickle", net)


def build_net(payload):
    """The net from :func:`net_payload`'s tuple, in eval mode (the child's side)."""
    import torch  # noqa: PLC0415
    if payload[0] == "config":
        from realtime_tse.models.config import ModelConfig  # noqa: PLC0415
        from realtime_tse.models.net import build_model  # noqa: PLC0415
        net = build_model(ModelConfig.from_json(payload[1]))
        net.load_state_dict({k: torch.from_numpy(v) for k, v in payload[2].items()})
        return net.eval()
    return payload[1]


def child_main(args: dict, data: bytes) -> None:
    """The scan process (started by :class:`realtime_tse.scan.process.ScanProcessWorker`): build
    the net, run ``StreamingScanWorker.update`` on the shared ring until the stop flag is set or
    the parent is gone, send ``("ready", pid)``, ``("result", ScanResult, stats)``,
    ``("error", msg)`` or ``("failed", msg)`` (the net could not be built) through the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(args["conn_fd"], readable=False)
    ring = SharedRingReader(mmap.mmap(args["ring_fd"], 0))
    try:
        import torch  # noqa: PLC0415
        payload, params = pickle.loads(data)
        torch.set_num_threads(max(1, int(params["torch_threads"])))
        net = build_net(payload)
        w = StreamingScanWorker(None, ring, net=net, sample_rate=params["sample_rate"],
                                distances_m=params["distances_m"], window_s=params["window_s"],
                                update_s=params["update_s"], max_lag_s=params["max_lag_s"],
                                max_update_s=params["max_update_s"], torch_threads=None, nice=None)
        w._pos = int(params["start_pos"])  # where the parent launched us, not the ring's end
        conn.send(("ready", os.getpid()))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which falls back
        conn.send(("failed", f"{type(e).__name__}: {e}"))
        return
    poll = float(params["poll_s"])
    parent = int(args["parent_pid"])
    sent = 0
    try:
        while not ring.stop_requested:
            if os.getppid() != parent:
                return  # orphaned: the audio process is gone
            try:
                done = w.update()
            except Exception as e:  # noqa: BLE001 - report, keep scanning
                conn.send(("error", f"distance scan failed: {type(e).__name__}: {e}"))
                w._pos = None
                time.sleep(2.0)
                continue
            if w.count != sent:
                sent = w.count
                conn.send(("result", w.latest, {"busy_s": w.busy_s, "audio_s": w.audio_s,
                                                "skips": w.skips}))
            if not done:
                time.sleep(poll)
    except OSError:  # BrokenPipeError: the parent closed its end, nothing left to report to
        return
