"""The ``realtime-tse`` command line: extract, scan, stream, devices, the headless default job, and
every user error as one message with a non-zero exit status and no traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rt_fixtures import DEMO_MIX, demo_at, model, one_torch_thread, rand_ckpt  # noqa: E402,F401

from realtime_tse.cli.main import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture()
def short_wav(tmp_path):
    p = tmp_path / "short.wav"
    sf.write(p, demo_at(16000, 2.0), 16000)
    return p


def _assert_error(rc, err, pattern):
    assert rc != 0
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("realtime-tse: error:")]
    assert len(lines) == 1, err
    assert pattern in lines[0], err


# ------------------------------------------------------------------------------------ extract
def test_extract_offline_and_streaming(capsys, rand_ckpt, short_wav, tmp_path):
    o1, o2 = tmp_path / "off.wav", tmp_path / "str.wav"
    rc, out, err = run(capsys, "extract", short_wav, "--distance", 1.0, "-o", o1,
                       "--model", rand_ckpt)
    assert rc == 0, err
    assert str(o1) in out
    rc, out, err = run(capsys, "extract", short_wav, "--distance", 1.0, "-o", o2,
                       "--model", rand_ckpt, "--streaming", "--block-ms", 32)
    assert rc == 0, err
    assert "streaming" in out
    a, sra = sf.read(o1, dtype="float32")
    b, srb = sf.read(o2, dtype="float32")
    x, srx = sf.read(short_wav, dtype="float32")
    assert sra == srb == srx == 16000 and len(a) == len(b) == len(x)
    # streaming output is re-aligned to the input: the same as offline up to 16-bit rounding
    assert np.max(np.abs(a - b)) < 2e-4


def test_extract_stereo_44k_int16(capsys, rand_ckpt, tmp_path):
    x = demo_at(44100, 1.5)
    st = np.stack([x, 0.5 * x], axis=1)
    src = tmp_path / "stereo.wav"
    sf.write(src, (st * 32767).astype(np.int16), 44100, subtype="PCM_16")
    out_p = tmp_path / "out.wav"
    rc, out, err = run(capsys, "extract", src, "-d", 2.0, "-o", out_p, "--model", rand_ckpt)
    assert rc == 0, err
    assert "2 channels" in err and "mixed down" in err
    assert "resampled" in err and "44100 Hz" in err   # the model's rate differs: said, not hidden
    info = sf.info(out_p)
    assert info.samplerate == 44100 and info.channels == 1 and info.frames == len(x)
    y, _ = sf.read(out_p, dtype="float32")
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) > 0


def test_extract_float_flac_input(capsys, rand_ckpt, tmp_path):
    src = tmp_path / "in.flac"
    sf.write(src, demo_at(22050, 1.0), 22050, subtype="PCM_24")
    out_p = tmp_path / "out.flac"
    rc, _, err = run(capsys, "extract", src, "-d", 3.0, "-o", out_p, "--model", rand_ckpt)
    assert rc == 0, err
    assert sf.info(out_p).samplerate == 22050


# ------------------------------------------------------------------------------------ errors
def test_error_missing_file(capsys, rand_ckpt, tmp_path):
    rc, _, err = run(capsys, "extract", tmp_path / "nope.wav", "-d", 1, "-o", tmp_path / "o.wav",
                     "--model", rand_ckpt)
    _assert_error(rc, err, "no such file")
    rc, _, err = run(capsys, "scan", tmp_path / "nope.wav", "--model", rand_ckpt)
    _assert_error(rc, err, "no such file")


def test_error_empty_and_short_and_unreadable(capsys, rand_ckpt, tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    rc, _, err = run(capsys, "extract", empty, "-d", 1, "-o", tmp_path / "o.wav",
                     "--model", rand_ckpt)
    _assert_error(rc, err, "no audio")
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(40, np.float32), 16000)
    rc, _, err = run(capsys, "extract", short, "-d", 1, "-o", tmp_path / "o.wav",
                     "--model", rand_ckpt)
    _assert_error(rc, err, "too short")
    rc, _, err = run(capsys, "scan", short, "--model", rand_ckpt)
    _assert_error(rc, err, "too short")
    junk = tmp_path / "junk.wav"
    junk.write_text("this is not audio\n")
    rc, _, err = run(capsys, "extract", junk, "-d", 1, "-o", tmp_path / "o.wav",
                     "--model", rand_ckpt)
    _assert_error(rc, err, "cannot read audio")
    assert not (tmp_path / "o.wav").exists()


def test_error_distance_out_of_range(capsys, rand_ckpt, short_wav, tmp_path):
    rc, _, err = run(capsys, "extract", short_wav, "-d", 7.5, "-o", tmp_path / "o.wav",
                     "--model", rand_ckpt)
    _assert_error(rc, err, "outside the model's range [0, 5] m")
    rc, _, err = run(capsys, "stream", "--input-file", short_wav, "-d", -1,
                     "--output-device", "null", "--model", rand_ckpt)
    _assert_error(rc, err, "outside the model's range")


def test_stream_rt_priority_option(capsys, rand_ckpt, short_wav, monkeypatch):
    from realtime_tse.live import engine as live
    seen = []
    real = live.LiveEngine.__init__

    def spy(self, model, config=None, **kw):
        seen.append(config.rt_priority)
        real(self, model, config, **kw)
    monkeypatch.setattr(live.LiveEngine, "__init__", spy)
    rc, out, err = run(capsys, "stream", "--input-file", short_wav, "--output-device", "null",
                       "-d", 1.0, "--seconds", 0.5, "--no-scan", "--rt-priority", 0,
                       "--model", rand_ckpt)
    assert rc == 0, err
    assert seen == [0]
    rc, _, err = run(capsys, "stream", "--input-file", short_wav, "--output-device", "null",
                     "-d", 1.0, "--rt-priority", 120, "--model", rand_ckpt)
    _assert_error(rc, err, "--rt-priority must be an integer within 0..99")


def test_error_bad_checkpoint(capsys, short_wav, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    rc, _, err = run(capsys, "extract", short_wav, "-d", 1, "-o", tmp_path / "o.wav",
                     "--model", bad)
    _assert_error(rc, err, "bad.safetensors")
    rc, _, err = run(capsys, "scan", short_wav, "--model", tmp_path / "missing.safetensors")
    _assert_error(rc, err, "no such checkpoint")


def test_former_name_of_the_shipped_model_gets_a_hint(capsys, short_wav, tmp_path, monkeypatch):
    # the shipped file was tse-lite-causal-d1.safetensors; it is lite-lstm-d1.safetensors now
    for old in ["tse-lite-causal-d1", "assets/models/tse-lite-causal-d1.safetensors"]:
        rc, _, err = run(capsys, "scan", short_wav, "--model", old)
        _assert_error(rc, err, "the shipped model is now named lite-lstm-d1.safetensors")
        assert "leave out --model" in err
    monkeypatch.setenv("REALTIME_TSE_MODEL", "/nowhere/tse-lite-causal-d1.safetensors")
    rc, _, err = run(capsys, "extract", short_wav, "-d", 1, "-o", tmp_path / "o.wav")
    _assert_error(rc, err, "lite-lstm-d1.safetensors")
    # any other missing file is just missing
    rc, _, err = run(capsys, "scan", short_wav, "--model", tmp_path / "tse-lite-causal-d2.safetensors")
    _assert_error(rc, err, "no such checkpoint")
    assert "now named" not in err


def test_error_unknown_device(capsys, rand_ckpt):
    rc, _, err = run(capsys, "stream", "--input-device", "no-such-microphone-xyz", "-d", 1,
                     "--seconds", 1, "--model", rand_ckpt)
    # an unknown device, or no PortAudio at all: one clear line either way
    assert rc == 1 and "Traceback" not in err
    assert "no-such-microphone-xyz" in err or "PortAudio" in err, err


def test_errors_from_the_console_script_have_no_traceback(tmp_path, rand_ckpt):
    exe = Path(sys.executable).with_name("realtime-tse")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "realtime_tse.cli"]
    r = subprocess.run(cmd + ["extract", str(tmp_path / "missing.wav"), "-d", "1", "-o",
                              str(tmp_path / "o.wav"), "--model", str(rand_ckpt)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("realtime-tse: error:") and "Traceback" not in r.stderr
    r = subprocess.run(cmd + ["extract"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "usage" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------ scan
def test_scan_json_and_plot(capsys, rand_ckpt, short_wav, tmp_path):
    j, p = tmp_path / "scan.json", tmp_path / "scan.png"
    rc, out, err = run(capsys, "scan", short_wav, "--json", j, "--plot", p, "--step", 0.5,
                       "--model", rand_ckpt)
    assert rc == 0, err
    assert "talkers at" in out or "no talker" in out
    doc = json.loads(j.read_text())
    d = doc["distances_m"]
    assert d == sorted(d) and d[0] == 0.0 and d[-1] == 5.0 and len(d) == 11
    assert len(doc["isdr_db"]) == 11 and all(np.isfinite(doc["isdr_db"]))
    assert all(x in d for x in doc["peaks_m"]) and set(doc["talkers_m"]) <= set(doc["peaks_m"])
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


# ------------------------------------------------------------------------------------ stream
def test_stream_file_to_null_output_records(capsys, rand_ckpt, short_wav, tmp_path):
    rec = tmp_path / "rec.wav"
    rc, out, err = run(capsys, "stream", "--input-file", short_wav, "--output-device", "null",
                       "-d", 1.0, "--record", rec, "--seconds", 1.0, "--no-scan",
                       "--model", rand_ckpt)
    assert rc == 0, err
    assert f"recorded {rec}" in out and "xruns: 0" in out
    info = sf.info(rec)
    assert info.samplerate == 16000 and 0.5 < info.duration < 1.6  # the input file's rate


def test_devices_lists_or_explains(capsys):
    rc, out, err = run(capsys, "devices")
    assert "Traceback" not in err
    assert (rc == 0 and out) or (rc == 1 and "PortAudio" in err)


# ------------------------------------------------------------------------------------ default
def test_no_arguments_without_display_runs_the_headless_demo(capsys, rand_ckpt, tmp_path,
                                                              monkeypatch):
    for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("RTSE_RECORDINGS_DIR", str(tmp_path / "recs"))
    monkeypatch.setenv("REALTIME_TSE_MODEL", str(rand_ckpt))
    rc, out, err = run(capsys, "--seconds", 1.5, "--output-device", "null")
    assert rc == 0, err
    assert "headless" in out and "To get the window" in out
    files = list((tmp_path / "recs").glob("tse-demo-*.wav"))
    assert len(files) == 1 and str(files[0]) in out
    assert sf.info(files[0]).duration > 0.5


# ------------------------------------------------------------------------------------ safety
def test_extract_loud_float_input_to_flac_is_limited_not_clipped(capsys, rand_ckpt, tmp_path):
    from realtime_tse.safety import CEILING_DBFS
    x = 6.0 * demo_at(16000, 2.0) / float(np.max(np.abs(demo_at(16000, 2.0))))  # peak 6.0
    x[1000] = np.nan
    src = tmp_path / "loud.wav"
    sf.write(src, x, 16000, subtype="FLOAT")
    out_p = tmp_path / "out.flac"
    rc, out, err = run(capsys, "extract", src, "-d", 1.0, "-o", out_p, "--model", rand_ckpt)
    assert rc == 0, err
    assert "1 NaN/Inf samples replaced by silence" in err
    y, _ = sf.read(out_p, dtype="float32")
    assert np.all(np.isfinite(y))
    assert float(np.max(np.abs(y))) <= 10 ** (CEILING_DBFS / 20) + 1e-4  # FLAC's 16-bit step
    if "beyond full scale" in err:  # (the random model may or may not pass the peaks through)
        assert "limited to -1 dBFS" in err


def test_scan_of_a_long_file_measures_excerpts(capsys, rand_ckpt, tmp_path):
    src = tmp_path / "long.wav"
    sf.write(src, np.tile(demo_at(8000, 6.0), 2), 8000)  # 12 s
    rc, out, err = run(capsys, "scan", src, "--model", rand_ckpt, "--step", 1.0,
                       "--max-seconds", 4, "--json", tmp_path / "s.json")
    assert rc == 0, err
    assert "measured on 4 s of 12 s" in out
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["measured_s"] == pytest.approx(4.0) and doc["duration_s"] == pytest.approx(12.0)


def test_write_audio_limits_over_full_scale_for_integer_files_only(capsys, tmp_path):
    from realtime_tse.cli.common import write_audio
    from realtime_tse.safety import CEILING_DBFS
    x = (0.5 * np.sin(np.arange(16000) / 5.0)).astype(np.float32)
    x[4000:4642] *= 5.0  # 642 samples up to 2.5 (+8 dBFS)
    write_audio(tmp_path / "o.flac", x, 16000)
    err = capsys.readouterr().err
    assert "beyond full scale (peak +8.0 dBFS) limited to -1 dBFS" in err
    y, _ = sf.read(tmp_path / "o.flac", dtype="float32")
    assert float(np.max(np.abs(y))) <= 10 ** (CEILING_DBFS / 20) + 1e-4
    np.testing.assert_allclose(y[:4000], x[:4000], atol=1e-4)  # untouched before the burst
    write_audio(tmp_path / "o.wav", x, 16000, like_subtype="FLOAT")  # float keeps the values
    assert "beyond" not in capsys.readouterr().err
    np.testing.assert_allclose(sf.read(tmp_path / "o.wav", dtype="float32")[0], x)


@pytest.mark.parametrize("sig,status", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_and_sighup_stop_a_recording_like_ctrl_c(rand_ckpt, short_wav, tmp_path, sig,
                                                          status):
    """``kill -TERM`` (or a closed terminal's SIGHUP) during ``stream --record``: the run stops as
    Ctrl-C stops it: the summary is printed, the sidecar has its end, exit 128 + the signal."""
    import signal
    rec = tmp_path / "x.wav"
    p = subprocess.Popen([sys.executable, "-m", "realtime_tse.cli", "stream", "--input-file",
                          str(short_wav), "--loop", "--output-device", "null", "-d", "1",
                          "--record", str(rec), "--no-scan", "--model", str(rand_ckpt)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        first = p.stdout.readline()  # "streaming ..." once the audio runs
        assert first.startswith("streaming"), (first, p.stderr.read() if p.poll() else "")
        time.sleep(1.5)
        p.send_signal(getattr(signal, sig))
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == status, (out, err)
    assert f"recorded {rec}" in out and "xruns:" in out, (out, err)
    doc = json.loads(rec.with_name("x.wav.json").read_text())
    assert doc["end_time"] and doc["duration_s"] > 1.0, doc
    assert sf.info(rec).duration == pytest.approx(doc["duration_s"], abs=0.01)


def test_headless_run_with_a_home_it_cannot_write_uses_a_temporary_folder(
        capsys, rand_ckpt, tmp_path, monkeypatch):
    """``realtime-tse --headless`` where ``~/Music`` cannot be created (a read-only home; here a
    home under a file): the extraction goes to a temporary folder, and a note says where and how
    to choose (RTSE_RECORDINGS_DIR, -o)."""
    import tempfile
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HOME", str(blocker / "home"))
    for k in ("RTSE_RECORDINGS_DIR", "XDG_MUSIC_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    rc, out, err = run(capsys, "--headless", "--seconds", 1.0, "--model", rand_ckpt,
                       "--output-device", "null")
    assert rc == 0, err
    assert "recordings go to" in err and "RTSE_RECORDINGS_DIR" in err and "-o" in err, err
    written = list((tmp_path / "tmp").glob("realtime-tse-*/tse-demo-*.wav"))
    assert len(written) == 1 and str(written[0]) in out, (out, err)
    assert sf.info(written[0]).duration > 0.5

def test_version():
    import subprocess
    import sys

    import realtime_tse
    r = subprocess.run([sys.executable, "-m", "realtime_tse.cli", "--version"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith(realtime_tse.__version__), r
