"""What a new user meets on the command line: a window hint whose commands work as printed, the
model's measured figures in the headless run, one algorithmic-latency figure, plain words."""
from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rt_fixtures import demo_at, one_torch_thread, rand_ckpt  # noqa: E402,F401

from realtime_tse.cli.main import main  # noqa: E402
from realtime_tse.launch_hint import app_command, window_hint  # noqa: E402
from realtime_tse.paths import shipped_model_path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHIPPED = shipped_model_path()
needs_shipped = pytest.mark.skipif(not SHIPPED.is_file(), reason="no shipped checkpoint")


def _commands(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def _runnable(command: str, cwd: Path) -> bool:
    """Whether the program ``command`` names (after env assignments, ``xvfb-run``'s options and
    ``bash``) exists as typed from ``cwd``."""
    words = shlex.split(command)
    while words and ("=" in words[0] or words[0] in ("xvfb-run", "-a", "sudo")):
        if words[0] == "xvfb-run" and shutil.which("xvfb-run") is None:
            return False
        words = words[1:]
    if words and words[0] == "bash":
        words = words[1:]
    if not words:
        return False
    w = words[0]
    if "/" in w:
        return (cwd / w).is_file()
    return shutil.which(w) is not None


@pytest.mark.parametrize("where", ["repo", "elsewhere"])
def test_window_hint_names_commands_that_exist_as_printed(where, tmp_path):
    cwd = REPO if where == "repo" else tmp_path
    hint = window_hint(cwd)
    cmds = [c for c in _commands(hint) if not c.startswith("sudo ")]
    assert len(cmds) >= 3, hint
    assert all(_runnable(c, cwd) for c in cmds), [c for c in cmds if not _runnable(c, cwd)]
    app = app_command(cwd)
    assert app in cmds and (app == "realtime-tse" or "realtime-tse" in app or "-m" in app)
    if shutil.which("realtime-tse") is None:  # the venv's script is not on PATH here
        assert app != "realtime-tse" and _runnable(app, cwd)


@needs_shipped
def test_headless_run_prints_the_measured_line_and_a_working_hint(capsys, tmp_path, monkeypatch):
    from realtime_tse.models.checkpoint import read_metadata
    from realtime_tse.model_card import measured_line
    for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "REALTIME_TSE_MODEL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("RTSE_RECORDINGS_DIR", str(tmp_path / "recs"))
    monkeypatch.chdir(REPO)
    assert main(["--seconds", "1.0", "--output-device", "null"]) == 0
    out = capsys.readouterr().out
    _, prov = read_metadata(SHIPPED)
    line = measured_line(prov)
    assert line in out and "SI-SDRi +1.22 dB" in line and "swapped positions: 68 %" in line
    assert "model card: docs/model-card.md" in out
    hint = next(ln for ln in out.splitlines() if ln.startswith("To get the window"))
    assert all(_runnable(c, REPO) for c in _commands(hint) if not c.startswith("sudo ")), hint


@needs_shipped
def test_extract_and_stream_report_the_same_algorithmic_latency(capsys, tmp_path):
    from realtime_tse.models.checkpoint import read_metadata
    cfg, _ = read_metadata(SHIPPED)
    expected = round(1e3 * cfg.algorithmic_latency_s(512))  # 64 ms blocks at 8 kHz
    assert expected == 64 + 32 - 16  # block + frame - hop
    wav = tmp_path / "in.wav"
    sf.write(wav, demo_at(16000, 2.0), 16000)
    assert main(["extract", str(wav), "-d", "1.0", "-o", str(tmp_path / "o.wav"), "--streaming",
                 "--block-ms", "64"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"algorithmic latency (\d+) ms", out).group(1) == str(expected), out
    assert main(["stream", "--input-file", str(wav), "--output-device", "null", "-d", "1.0",
                 "--seconds", "1.0", "--no-scan", "--block-ms", "64"]) == 0
    out = capsys.readouterr().out
    assert f"delay {expected} ms algorithmic" in out, out
    assert "taps" not in out and "no playback" in out  # plain words for "no output device"


@needs_shipped
def test_streamed_extract_matches_offline_with_the_reported_delay(tmp_path):
    """``extract --streaming`` whole-block streaming: the same output as offline, re-aligned by
    the look-ahead the latency figure counts (frame - hop), at 64 ms blocks."""
    from realtime_tse import load_model
    m = load_model(device="cpu")
    x = demo_at(m.sample_rate, 2.0)
    s = m.stream(block_ms=64, aligned=True)
    assert s.delay_samples == m.config.n_fft - m.config.hop
    assert s.latency_s == pytest.approx((s.block_samples + s.delay_samples) / m.sample_rate)
    n = len(x) + s.delay_samples
    n += (-n) % s.block_samples
    xp = np.concatenate([x, np.zeros(n - len(x), np.float32)])
    y = np.concatenate([s.process(xp[i:i + s.block_samples], 1.0)
                        for i in range(0, n, s.block_samples)])[s.delay_samples:][:len(x)]
    ref = m.extract(x, 1.0)
    assert np.max(np.abs(y - ref)) < 1e-3 * max(1e-6, float(np.max(np.abs(ref))))


def test_publish_model_stores_the_evaluation_the_app_shows(rand_ckpt, tmp_path):
    import json
    import subprocess

    from realtime_tse.models.checkpoint import read_metadata
    from realtime_tse.model_card import measured_line
    report = {"scenario": "d1", "mixtures_per_repeat": 40, "repeats": 5, "clip_s": 4.0,
              "models": {"baseline": {"mean": {"si_sdri_single": 0.1, "absence_level_db": -2.0}},
                         rand_ckpt.stem: {"mean": {"si_sdri_single": 4.5, "absence_level_db": -18.0},
                                          "swap": {"right_in_both": 0.6}}}}
    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps(report))
    dst = tmp_path / "published.safetensors"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "publish_model.py"), str(rand_ckpt),
                        str(dst), "--eval", str(ev)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    _, prov = read_metadata(dst)
    assert prov["evaluation"]["model"] == rand_ckpt.stem  # the entry named like the source file
    line = measured_line(prov)
    assert line in r.stdout
    assert line == ("Measured on 200 test mixtures of 4 s (D1 room, voices it never heard): "
                    "SI-SDRi +4.50 dB, output where no one talks -18.0 dB, right talker in both "
                    "swapped positions: 60 %")
    bad = subprocess.run([sys.executable, str(REPO / "scripts" / "publish_model.py"), str(rand_ckpt),
                          str(dst), "--eval", str(ev), "--eval-model", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "no model 'nope'" in bad.stderr


def test_measured_line_says_not_measured_without_an_evaluation():
    from realtime_tse.model_card import measured_line, network_text
    assert measured_line({}) == measured_line(None) == \
        "Measured figures: not measured (this checkpoint holds no test evaluation)"
    only_val = {"val_metrics": {"si_sdri_single": 0.7}, "evaluation": {"models": {}}}
    assert "not measured" in measured_line(only_val)
    cfg = type("C", (), {"preset": "lite-lstm"})()
    assert network_text(cfg, {"parameters": 1142817}) == \
        "network lite-lstm (causal LSTM with a distance token, 1.14 M parameters)"


@pytest.mark.parametrize("name", ["realtime-tse", "tse-train", "tse-eval"])
def test_named_commands_run_as_printed_from_the_repo_and_elsewhere(name, tmp_path):
    for cwd in (REPO, tmp_path):
        cmd = app_command(cwd, name=name)
        assert name in cmd or "-m" in cmd
        assert _runnable(cmd, cwd), (cmd, cwd)
