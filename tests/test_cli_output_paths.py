"""``realtime-tse extract -o OUT`` where OUT is not a plain new file: standard output closed or
closed early by its reader, a named pipe, ``/dev/stdout``, a folder, a folder that takes no file;
and the one rule of every output file (``extract -o``, ``scan --json`` / ``--plot``,
``stream --record``, the headless ``-o``): a missing folder is refused before any work.

Real subprocess runs of the command (the demo model on the demo mix), with generous timeouts: the
test machine may be busy."""
from __future__ import annotations

import io
import os
import shlex
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
MIX = REPO / "assets" / "demo" / "demo_mix.wav"
TIMEOUT = 600

pytestmark = pytest.mark.skipif(os.name != "posix", reason="pipes, FIFOs and /dev/stdout are POSIX")


def _cmd() -> list[str]:
    exe = Path(sys.executable).with_name("realtime-tse")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "realtime_tse.cli"]


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("RTSE_DEBUG", None)
    return env


def _extract(out: str) -> str:
    """The extract command line (shell words) writing to ``out``."""
    return " ".join(shlex.quote(a) for a in _cmd() + ["extract", str(MIX), "-d", "1", "-o", out])


def _bash(script: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], capture_output=True, timeout=TIMEOUT, cwd=REPO,
                          env=_env(), **kw)


def test_closed_stdout_is_reported_before_the_work():
    r = _bash(f"{_extract('-')} >&-")
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert "standard output is closed" in err
    assert "unexpected" not in err and "AttributeError" not in err
    assert "wrote" not in err


def test_reader_closing_the_pipe_early_is_a_broken_pipe():
    # the WAV is ~770 KB: the pipe takes 64 KiB, head reads 100 bytes and goes away
    assert MIX.stat().st_size > 4 * 65536
    r = _bash(f"set -o pipefail; {_extract('-')} | head -c 100 > /dev/null; "
              "echo \"status ${PIPESTATUS[0]}\" >&2")
    err = r.stderr.decode()
    assert "status 1" in err, err
    assert "broken pipe" in err
    assert "wrote WAV to standard output" not in err


def test_reader_taking_nothing_is_a_broken_pipe():
    r = _bash(f"{_extract('-')} | true; echo \"status ${{PIPESTATUS[0]}}\" >&2")
    err = r.stderr.decode()
    assert "status 1" in err, err
    assert "broken pipe" in err


def test_stdout_pipe_gets_every_byte():
    r = _bash(_extract("-"))
    assert r.returncode == 0, r.stderr.decode()
    y, sr = sf.read(io.BytesIO(r.stdout))
    assert sr == sf.info(str(MIX)).samplerate and len(y) == sf.info(str(MIX)).frames
    assert "wrote WAV to standard output" in r.stderr.decode()


def test_named_pipe_is_written_into_and_kept(tmp_path):
    fifo = tmp_path / "f.wav"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    try:
        r = _bash(_extract(str(fifo)))
    finally:
        if reader.is_alive() and not got:  # the command never opened it: let the reader go
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        reader.join(60)
    assert r.returncode == 0, r.stderr.decode()
    assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO was replaced by a file"
    assert got and got[0], "the reader got nothing"
    y, sr = sf.read(io.BytesIO(got[0]))
    assert len(y) == sf.info(str(MIX)).frames
    assert not [p for p in tmp_path.iterdir() if p.name != "f.wav"]  # no temporary file left


def test_dev_stdout_is_written_into_and_summary_goes_to_stderr():
    r = _bash(_extract("/dev/stdout"))
    assert r.returncode == 0, r.stderr.decode()
    y, _ = sf.read(io.BytesIO(r.stdout))   # the summary line did not land in the audio
    assert len(y) == sf.info(str(MIX)).frames
    assert "wrote /dev/stdout" in r.stderr.decode()


def test_existing_folder_as_output_says_it_is_a_folder(tmp_path):
    r = _bash(_extract(str(tmp_path)))
    err = r.stderr.decode()
    assert r.returncode == 1
    assert "is a folder" in err and "unknown output format" not in err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_proc_says_why_it_cannot_write_not_no_such_folder():
    r = _bash(_extract("/proc/o.wav"))
    err = r.stderr.decode()
    assert r.returncode == 1
    assert "no such folder" not in err
    assert "not a writable file system" in err or "permission denied" in err, err


def test_write_stream_reports_bytes_not_taken():
    from realtime_tse.audio_file import write_stream
    from realtime_tse.file_write import FileWriteError
    rfd, wfd = os.pipe()
    os.close(rfd)
    path = f"/proc/self/fd/{wfd}" if Path("/proc/self/fd").is_dir() else f"/dev/fd/{wfd}"
    try:
        with pytest.raises(FileWriteError, match="broken pipe"):
            write_stream(path, b"x" * 200_000)
    finally:
        os.close(wfd)


def test_write_audio_to_a_fifo_without_extension_is_wav(tmp_path):
    from realtime_tse.cli.common import check_output_audio_path, write_audio
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    check_output_audio_path(fifo)   # no extension: WAV, as for -o -
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    t.start()
    write_audio(fifo, np.zeros(1600, np.float32), 16000)
    t.join(60)
    assert sf.read(io.BytesIO(got[0]))[0].shape == (1600,)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# ------------------------------------------------------------------ one rule for every output file
def _no_folder_cases(tmp_path, wav):
    """(command line, the file it is to write) for every output of the command line, each in a
    folder that does not exist."""
    missing = tmp_path / "no-such-folder"
    return {
        "extract -o": (["extract", wav, "-d", "1", "-o", missing / "o.wav"], missing / "o.wav"),
        "scan --json": (["scan", wav, "--json", missing / "s.json"], missing / "s.json"),
        "scan --plot": (["scan", wav, "--plot", missing / "s.png"], missing / "s.png"),
        "stream --record": (["stream", "--input-file", wav, "--output-device", "null", "-d", "1",
                             "--seconds", "1", "--no-scan", "--record", missing / "r.wav"],
                            missing / "r.wav"),
        "headless -o": (["--headless", "--output-device", "null", "--seconds", "1",
                         "-o", missing / "h.wav"], missing / "h.wav"),
    }


@pytest.fixture()
def two_second_wav(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from rt_fixtures import demo_at
    p = tmp_path / "in.wav"
    sf.write(p, demo_at(16000, 2.0), 16000)
    return p


@pytest.fixture()
def engines_built(monkeypatch):
    """Every LiveEngine the command builds (the live engine is what starts audio)."""
    from realtime_tse.live import engine
    built = []
    real = engine.LiveEngine.__init__

    def spy(self, *a, **kw):
        built.append(self)
        real(self, *a, **kw)
    monkeypatch.setattr(engine.LiveEngine, "__init__", spy)
    return built


@pytest.mark.parametrize("case", ["extract -o", "scan --json", "scan --plot", "stream --record",
                                  "headless -o"])
def test_every_output_in_a_missing_folder_is_refused_before_the_work(
        case, tmp_path, two_second_wav, engines_built, capsys, monkeypatch):
    """The one rule (realtime_tse.cli.common.check_output_path): a missing folder is not created;
    the command says so in one line before it reads, loads, scans or starts any audio."""
    from realtime_tse.cli.main import main
    monkeypatch.setenv("REALTIME_TSE_MODEL", str(tmp_path / "never-loaded.safetensors"))
    argv, target = _no_folder_cases(tmp_path, two_second_wav)[case]
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 1, (out, err)
    assert err.strip().splitlines() == [
        f"realtime-tse: error: cannot write {target}: no such folder {target.parent} "
        "(create it first)"], err
    assert not target.parent.exists()
    # no audio, no scan, no model: the model file does not exist, and loading it would say so
    assert engines_built == [] and out == ""


@pytest.mark.parametrize("option, example", [("--json", "scan.json"), ("--plot", "scan.png")])
def test_scan_output_that_is_a_folder_says_so(option, example, tmp_path, two_second_wav, capsys):
    from realtime_tse.cli.main import main
    rc = main(["scan", str(two_second_wav), option, str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"cannot write {tmp_path}: it is a folder (name a file in it, e.g. {tmp_path / example})" \
        in err, err


def test_stream_record_into_a_file_as_folder_is_refused_before_any_audio(
        tmp_path, two_second_wav, engines_built, capsys):
    from realtime_tse.cli.main import main
    (tmp_path / "afile").write_text("x")
    rc = main(["stream", "--input-file", str(two_second_wav), "--output-device", "null", "-d", "1",
               "--record", str(tmp_path / "afile" / "r.wav")])
    err = capsys.readouterr().err
    assert rc == 1 and f"{tmp_path / 'afile'} is a file, not a folder" in err, err
    assert engines_built == []
