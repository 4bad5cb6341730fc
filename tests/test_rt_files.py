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

from realtime_tse.cli import main  # noqa: E402

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
    from realtime_tse.cli import write_audio
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

