"""Files in and out of the command line: written whole or not at all (a failed write keeps the
previous file), read once (pipes, standard input, process substitution), any name the file
system holds, NaN never written as full scale, plain reasons for a full or read-only disk."""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rt_fixtures import SHIPPED, demo_at, one_torch_thread, rand_ckpt  # noqa: E402,F401

from realtime_tse.cli.main import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    rc = main([a if isinstance(a, (str, bytes)) else str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def md5(p) -> str:
    return hashlib.md5(Path(p).read_bytes()).hexdigest()


@pytest.fixture()
def short_wav(tmp_path):
    p = tmp_path / "short.wav"
    sf.write(p, demo_at(16000, 2.0), 16000)
    return p


def _fsync_full(monkeypatch):
    """The disk fills while a file is written: flushing it to disk fails with ENOSPC (where a
    full disk shows with delayed allocation)."""
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", full)


def test_a_failed_extract_keeps_the_previous_result(capsys, rand_ckpt, short_wav, tmp_path,
                                                    monkeypatch):
    """The output cannot be written (disk full): the previous result keeps its md5, no temporary
    file is left, and the message says why in plain words."""
    out = tmp_path / "result.wav"
    rc, _, err = run(capsys, "extract", short_wav, "-d", 1.0, "-o", out, "--model", rand_ckpt)
    assert rc == 0, err
    good = md5(out)
    _fsync_full(monkeypatch)
    rc, _, err = run(capsys, "extract", short_wav, "-d", 2.0, "-o", out, "--model", rand_ckpt)
    assert rc == 1 and f"cannot write {out}: no space left on device" in err, err
    assert md5(out) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.wav", "short.wav"]


def test_scan_json_and_plot_are_written_whole(capsys, rand_ckpt, short_wav, tmp_path,
                                              monkeypatch):
    j, png = tmp_path / "scan.json", tmp_path / "scan.png"
    j.write_text('{"old": true}\n')
    png.write_bytes(b"old plot")
    _fsync_full(monkeypatch)
    rc, _, err = run(capsys, "scan", short_wav, "--json", j, "--step", 1.0, "--model", rand_ckpt)
    assert rc == 1 and "no space left on device" in err, err
    assert json.loads(j.read_text()) == {"old": True}
    rc, _, err = run(capsys, "scan", short_wav, "--plot", png, "--step", 1.0, "--model",
                     rand_ckpt)
    assert rc == 1 and "no space left on device" in err, err
    assert png.read_bytes() == b"old plot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.json", "scan.png", "short.wav"]


def test_write_audio_writes_nan_as_silence(capsys, tmp_path):
    """NaN/Inf samples are written as 0 (as the live output guard does), never as full scale."""
    from realtime_tse.cli.common import write_audio
    x = (0.25 * np.sin(np.arange(8000) / 7.0)).astype(np.float32)
    x[100:200] = np.nan
    x[300] = np.inf
    write_audio(tmp_path / "o.wav", x, 8000)
    assert "101 output samples were NaN/Inf: written as silence" in capsys.readouterr().err
    y, _ = sf.read(tmp_path / "o.wav", dtype="float32")
    assert np.all(y[100:200] == 0) and y[300] == 0
    assert float(np.max(np.abs(y))) < 0.26
    np.testing.assert_allclose(y[:100], x[:100], atol=1e-4)


def test_extract_refuses_a_checkpoint_with_nan_weights(capsys, rand_ckpt, short_wav, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(str(rand_ckpt), framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    k = sorted(state)[0]
    state[k] = state[k].clone().fill_(float("nan"))
    bad = tmp_path / "nan.safetensors"
    save_file(state, str(bad), metadata=meta)
    out = tmp_path / "out.wav"
    rc, _, err = run(capsys, "extract", short_wav, "-d", 1.0, "-o", out, "--model", bad)
    assert rc == 1 and f"non-finite weights in {bad}" in err, err
    assert not out.exists()


def test_a_name_that_is_not_utf8_reads_and_writes(capsys, rand_ckpt, short_wav, tmp_path):
    if sys.platform == "win32":
        pytest.skip("POSIX file names are bytes")
    src = tmp_path / os.fsdecode(b"lat\xe9.wav")
    dst = tmp_path / os.fsdecode(b"r\xe9sultat.wav")
    shutil.copy(short_wav, src)
    rc, out, err = run(capsys, "extract", src, "-d", 1.0, "-o", dst, "--model", rand_ckpt)
    assert rc == 0, err
    y, sr = sf.read(os.fsencode(dst), dtype="float32")
    assert sr == 16000 and len(y) == 32000 and np.all(np.isfinite(y))


def test_standard_input_and_output(capsysbinary, rand_ckpt, short_wav, monkeypatch):
    """``-`` is standard input for extract and scan, and ``-o -`` writes WAV to standard output
    (the summary then goes to standard error)."""

    class Stdin:
        buffer = io.BytesIO(short_wav.read_bytes())

    monkeypatch.setattr(sys, "stdin", Stdin)
    rc = main(["extract", "-", "-d", "1", "-o", "-", "--model", str(rand_ckpt)])
    out, err = capsysbinary.readouterr()
    assert rc == 0, err
    y, sr = sf.read(io.BytesIO(out), dtype="float32")
    assert sr == 16000 and len(y) == 32000
    assert b"wrote WAV to standard output" in err
    Stdin.buffer = io.BytesIO(short_wav.read_bytes())
    rc = main(["scan", "-", "--step", "1", "--model", str(rand_ckpt)])
    out, err = capsysbinary.readouterr()
    assert rc == 0 and out.startswith(b"standard input: "), (out, err)


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_pipes_and_process_substitution(rand_ckpt, short_wav, tmp_path):
    """A WAV through a pipe (``cat x | extract /dev/stdin``), a process substitution
    (``<(cat x)``) and stdin-to-stdout (``extract - -o -``), as users type them."""
    cli = f"{sys.executable} -m realtime_tse.cli"
    script = (f"set -e; cat {short_wav} | {cli} extract /dev/stdin -d 1 -o {tmp_path}/a.wav "
              f"--model {rand_ckpt}; {cli} extract <(cat {short_wav}) -d 1 -o {tmp_path}/b.wav "
              f"--model {rand_ckpt}; cat {short_wav} | {cli} extract - -d 1 -o - "
              f"--model {rand_ckpt} > {tmp_path}/c.wav")
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=600,
                       cwd=REPO)
    assert r.returncode == 0, r.stderr
    a = sf.read(tmp_path / "a.wav", dtype="float32")[0]
    for name in ("b.wav", "c.wav"):
        np.testing.assert_array_equal(sf.read(tmp_path / name, dtype="float32")[0], a)
    assert len(a) == 32000


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt"],
                       capture_output=True, timeout=30)
    return r.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare -rm and a tmpfs mount")
def test_small_and_read_only_disks_as_users_meet_them(tmp_path, rand_ckpt):
    """On a real 300 KB tmpfs (a private mount namespace): extract of a 20 s file fails with
    "no space left on device" and the previous result keeps its md5; on the same tmpfs
    remounted read-only the message says "read-only file system" (libsndfile said "System
    error."); a recording that fills a 64 KB tmpfs stops with exit status 1, saying when and why,
    the WAV readable, the sidecar closed with the end time and the reason, no temporary file."""
    model = SHIPPED if SHIPPED.is_file() else rand_ckpt
    long_wav = tmp_path / "long.wav"
    sf.write(long_wav, np.tile(demo_at(16000, 5.0), 4), 16000)  # 20 s: 640 KB as 16-bit
    good = tmp_path / "good.wav"
    sf.write(good, demo_at(16000, 1.0), 16000)
    disk, small = tmp_path / "disk", tmp_path / "small"
    disk.mkdir()
    small.mkdir()
    cli = f"{sys.executable} -m realtime_tse.cli"
    script = f"""
mount -t tmpfs -o size=300k none {disk}
mount -t tmpfs -o size=64k none {small}
cp {good} {disk}/result.wav
{cli} extract {long_wav} -d 1 -o {disk}/result.wav --model {model}; echo "rc=$?"
md5sum {disk}/result.wav; ls -A {disk}
mount -o remount,ro {disk}
{cli} extract {long_wav} -d 1 -o {disk}/other.wav --model {model}; echo "rc=$?"
{cli} stream --input-file {long_wav} --loop --output-device null -d 1 --record {small}/rec.wav \
    --seconds 12 --no-scan --model {model}; echo "rc=$?"
ls -A {small}; cat {small}/rec.wav.json
python3 -c "import wave; w = wave.open('{small}/rec.wav'); print('frames', w.getnframes())"
"""
    r = subprocess.run(["unshare", "-rm", "bash", "-c", script], capture_output=True, text=True,
                       timeout=600, cwd=REPO)
    out, err = r.stdout, r.stderr
    rcs = [ln for ln in out.splitlines() if ln.startswith("rc=")]
    assert rcs == ["rc=1", "rc=1", "rc=1"], (out, err)
    assert f"cannot write {disk}/result.wav: no space left on device" in err, err
    assert md5(good) in out and "\nresult.wav\n" in out, out  # the old file, alone
    assert f"cannot write {disk}/other.wav: read-only file system" in err, err
    assert "System error" not in err
    assert "the recording stopped at" in err and f"cannot write {small}/rec.wav: no space left " \
        "on device" in err, err
    listing = out.split("rc=1")[-1]
    assert ".tmp" not in listing and "rec.wav.json" in listing, out
    doc = json.loads(out[out.index("{"):out.rindex("}") + 1])
    frames = int(out.split("frames ")[-1].split()[0])
    assert doc["end_time"] and "no space left on device" in doc["error"], doc
    assert frames > 8000 and abs(doc["frames"] - frames) <= 8000, (doc, frames)


def test_extract_refuses_a_bad_output_path_before_any_work(tmp_path):
    """An unknown format, a missing folder or a file where the folder should be: one line, exit 1,
    before the model runs (no resampling note), and nothing created."""
    import subprocess
    import sys
    (tmp_path / "afile.wav").write_bytes(b"x")
    demo = Path(__file__).resolve().parents[1] / "assets" / "demo" / "demo_mix.wav"
    for out, want in ((tmp_path / "o.txt", "unknown output format"),
                      (tmp_path / "missing" / "o.wav", "no such folder"),
                      (tmp_path / "afile.wav" / "o.wav", "is a file, not a folder")):
        r = subprocess.run([sys.executable, "-m", "realtime_tse.cli", "extract", str(demo), "-d", "1",
                            "-o", str(out)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and want in r.stderr, (out, r.stderr)
        assert "resampled" not in r.stderr + r.stdout
    assert not (tmp_path / "missing").exists()
