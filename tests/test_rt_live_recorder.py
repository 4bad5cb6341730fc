"""Tests of realtime_tse.live.recorder: never overwrite, flush while recording, sidecar, WAV/FLAC."""

from __future__ import annotations

import json
import time
from datetime import datetime

import numpy as np
import pytest
import soundfile as sf

from realtime_tse.live.recorder import Recorder
from realtime_tse.live.recording_paths import default_recordings_dir, unique_path

FS = 16000


def _noise(n, seed=0, amp=0.3):
    return (amp * np.random.default_rng(seed).uniform(-1, 1, n)).astype(np.float32)


def _read_open_flac(path, n):
    """Read up to n frames of a FLAC file that is still being written (length unknown): the
    low-level libsndfile read, because soundfile's read() seeks past the unknown end."""
    from soundfile import _ffi, _snd
    out = np.zeros(n, np.float32)
    with sf.SoundFile(str(path)) as f:
        got = _snd.sf_readf_float(f._file, _ffi.cast("float*", out.ctypes.data), n)
    return out[:got]


def test_never_overwrites_and_reports_final_path(tmp_path):
    target = tmp_path / "take.wav"
    sf.write(target, np.ones(100, np.float32) * 0.5, FS)
    before = target.read_bytes()
    with Recorder(target, FS) as r1, Recorder(target, FS) as r2:
        assert r1.path == tmp_path / "take-1.wav" and r2.path == tmp_path / "take-2.wav"
        r1.write(_noise(1000))
    assert target.read_bytes() == before  # untouched
    # an orphan sidecar also blocks a name
    (tmp_path / "take-3.wav.json").write_text("{}")
    with Recorder(target, FS) as r3:
        assert r3.path == tmp_path / "take-4.wav"
    assert unique_path(target, reserve=False) == tmp_path / "take-3.wav"


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_flushes_at_least_every_second_while_open(tmp_path, suffix):
    x = _noise(FS, seed=1)
    r = Recorder(tmp_path / f"live{suffix}", FS)
    r.write(x[:FS // 2])
    r.write(x[FS // 2:])
    time.sleep(1.2)  # > 1 s: the writer must have flushed without being asked
    assert r.flushes >= 1 and not r.closed
    if suffix == ".wav":
        y, sr = sf.read(r.path, dtype="float32")  # the header is current after flush
        assert sr == FS and len(y) == FS
    else:
        y = _read_open_flac(r.path, FS)
        assert len(y) >= FS - 4096  # the encoder keeps at most one 4096-sample frame back
    np.testing.assert_allclose(y, x[:len(y)], atol=1.5 / 32768)
    r.close()
    y, _ = sf.read(r.path, dtype="float32")
    assert len(y) == FS


@pytest.mark.parametrize("suffix,subtype,atol", [(".wav", "PCM_16", 1.5 / 32768),
                                                  (".wav", "FLOAT", 0.0),
                                                  (".flac", "PCM_16", 1.5 / 32768)])
def test_round_trip_and_input_file(tmp_path, suffix, subtype, atol):
    out_x, in_x = _noise(5000, 2), _noise(5000, 3)
    with Recorder(tmp_path / f"rec{suffix}", FS, model_name="lite-causal", subtype=subtype,
                  record_input=True) as r:
        for k in range(0, 5000, 1000):  # as an audio stream's tap would call it
            r.tap(in_x[k:k + 1000], out_x[k:k + 1000])
    info = sf.info(r.path)
    assert info.format == ("WAV" if suffix == ".wav" else "FLAC") and info.subtype == subtype
    y, sr = sf.read(r.path, dtype="float32")
    z, _ = sf.read(r.input_path, dtype="float32")
    assert sr == FS and r.input_path == tmp_path / f"rec-input{suffix}"
    np.testing.assert_allclose(y, out_x, atol=atol)
    np.testing.assert_allclose(z, in_x, atol=atol)
    assert r.frames_written == 5000 and r.duration_s == pytest.approx(5000 / FS)


def test_sidecar_records_distance_changes(tmp_path):
    r = Recorder(tmp_path / "s.wav", FS, model_name="paper-causal")
    side = tmp_path / "s.wav.json"
    md = json.loads(side.read_text())  # written at once
    assert md["model"] == "paper-causal" and md["sample_rate"] == FS
    assert datetime.fromisoformat(md["start_time"]).tzinfo is not None
    assert md["distance_changes"] == []
    r.note_distance(1.0)
    r.write(_noise(FS // 2))
    time.sleep(0.05)
    r.note_distance(2.5)
    deadline = time.monotonic() + 2
    while len(json.loads(side.read_text())["distance_changes"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    ch = json.loads(side.read_text())["distance_changes"]  # rewritten on each change, while open
    assert [c["d_q_m"] for c in ch] == [1.0, 2.5]
    assert 0 <= ch[0]["t_s"] < ch[1]["t_s"] < r.elapsed_s
    assert ch[0]["audio_s"] == 0.0 and ch[1]["audio_s"] == pytest.approx(0.5)
    r.close()
    r.close()  # idempotent
    r.write(_noise(100))  # ignored after close
    r.note_distance(3.0)
    md = json.loads(side.read_text())
    assert md["frames"] == FS // 2 and md["duration_s"] == pytest.approx(0.5)
    assert len(md["distance_changes"]) == 2 and "end_time" in md and md["file"] == "s.wav"


def test_bad_format_and_default_dir(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=".wav or .flac"):
        Recorder(tmp_path / "x.mp3", FS)
    with pytest.raises(ValueError, match="FLOAT not supported"):
        Recorder(tmp_path / "x.flac", FS, subtype="FLOAT")
    assert list(tmp_path.iterdir()) == []  # nothing reserved and left behind
    monkeypatch.delenv("RTSE_RECORDINGS_DIR", raising=False)
    monkeypatch.setenv("XDG_MUSIC_DIR", str(tmp_path / "Music"))
    d = default_recordings_dir()
    assert d == tmp_path / "Music" / "realtime-tse" and d.is_dir()
    monkeypatch.setenv("RTSE_RECORDINGS_DIR", str(tmp_path / "elsewhere"))
    assert default_recordings_dir() == tmp_path / "elsewhere"


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_nan_is_written_as_silence_and_clipping_is_counted(tmp_path, suffix):
    x = _noise(4000, amp=0.5)
    x[100:110] = np.nan
    x[200] = np.inf
    x[300:340] = 1.7  # beyond full scale
    with Recorder(tmp_path / f"r{suffix}", FS) as rec:
        rec.write(x)
    y, _ = sf.read(rec.path, dtype="float32")
    assert len(y) == len(x)
    np.testing.assert_array_equal(y[100:110], 0.0)  # not -32768 (full scale)
    assert y[200] == 0.0 and float(np.max(np.abs(y))) <= 1.0
    np.testing.assert_allclose(y[300:340], 1.0, atol=1e-4)
    ok = np.isfinite(x) & (np.abs(x) <= 1)
    np.testing.assert_allclose(y[ok], x[ok], atol=1e-4)
    md = json.loads(rec.sidecar_path.read_text())
    assert md["nonfinite_samples"] == 11 and md["clipped_samples"] == 40


def test_a_failed_write_stops_the_recording_and_closes_it_with_the_reason(tmp_path):
    """The disk fills mid-recording (the writer raises ENOSPC): the recording stops at once, the
    WAV stays readable with everything written before, the sidecar gets the end time, the
    duration and the reason, ``on_error`` hears it once, and no temporary file is left."""
    import errno
    told = []
    r = Recorder(tmp_path / "take.wav", FS, on_error=told.append, flush_interval_s=0.1)
    real, calls = r._out.write, []

    def write(data):
        calls.append(len(data))
        if len(calls) > 10:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(data)

    r._out.write = write
    for i in range(40):
        r.write(_noise(1600, seed=i))
        time.sleep(0.005)
    deadline = time.monotonic() + 10
    while not r.failed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert r.failed and r.closed
    assert told == [f"cannot write {r.path}: no space left on device"], told
    r.write(_noise(1600))  # ignored after the failure
    r.close()
    r.close()
    y, sr = sf.read(r.path, dtype="float32")
    assert sr == FS and len(y) == 10 * 1600
    np.testing.assert_allclose(y[:1600], _noise(1600, seed=0), atol=1e-4)
    doc = json.loads(r.sidecar_path.read_text())
    assert doc["frames"] == 16000 and doc["duration_s"] == 1.0 and doc["end_time"]
    assert doc["error"] == told[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.wav", "take.wav.json"]


def test_sidecar_is_rewritten_at_most_once_per_flush_interval(tmp_path, monkeypatch):
    """A distance noted every few ms (a slider dragged) does not rewrite the sidecar each time:
    at most once per flush interval, and the last distance is in the final sidecar."""
    import os
    writes = []
    real = os.replace

    def replace(src, dst, **kw):
        if str(dst).endswith("drag.wav.json"):
            writes.append(time.monotonic())
        return real(src, dst, **kw)

    monkeypatch.setattr(os, "replace", replace)
    r = Recorder(tmp_path / "drag.wav", FS, flush_interval_s=0.25)
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < 1.5:
        r.note_distance(1.0 + 0.01 * (i % 100))
        r.write(_noise(16))
        i += 1
        time.sleep(0.003)
    r.close()
    assert i > 200
    assert len(writes) <= 1.5 / 0.25 + 3, (len(writes), i)
    doc = json.loads(r.sidecar_path.read_text())
    assert doc["distance_changes"][-1]["d_q_m"] == pytest.approx(1.0 + 0.01 * ((i - 1) % 100))
