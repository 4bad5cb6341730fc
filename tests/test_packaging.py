"""Packaging: the wheel carries the shipped model, the demo and the training recipes in one package,
``realtime_tse`` (the repository's models/ and train/ as ``realtime_tse.models`` and
``realtime_tse.train``; no other import name), and a plain (non-editable) install runs
``realtime-tse extract`` and ``scan`` on the shipped demo and ``tse-train --help`` from any
directory, where ``import models`` fails."""
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "models", "train", "realtime_tse", "assets"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built offline from a copy of its sources (so the tree gets no build/)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=skip)
        else:
            shutil.copy(p, src / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = (tmp / "dist").glob("realtime_tse-*.whl")
    return whl


def test_wheel_carries_model_demo_and_recipes(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = {i.filename: i.file_size for i in z.infolist()}
        meta = next(z.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    for need in ["realtime_tse/assets/models/lite-lstm-d1.safetensors",
                 "realtime_tse/assets/demo/demo_mix.wav", "realtime_tse/assets/demo/demo.json",
                 "realtime_tse/paths.py", "realtime_tse/train/configs/lite_lstm_d1.toml",
                 "realtime_tse/models/net.py", "realtime_tse/models/lstm_deg.py",
                 "realtime_tse/train/cli.py"]:
        assert need in names, need
    assert names["realtime_tse/assets/models/lite-lstm-d1.safetensors"] == \
        (REPO / "assets/models/lite-lstm-d1.safetensors").stat().st_size
    # the lab (experiments/: tried recipes, logs, resumable state) stays in the repository; the
    # wheel's recipes are the product's four
    assert not any("train_state" in n or "experiments" in n or "diagnose" in n for n in names)
    assert sorted(n for n in names if n.startswith("realtime_tse/train/configs/")) == [
        "realtime_tse/train/configs/lite_lstm_d1.toml",
        "realtime_tse/train/configs/lite_lstm_d1_swap.toml",
        "realtime_tse/train/configs/lite_lstm_d1_swap_fast.toml",
        "realtime_tse/train/configs/paper_causal_gpu.toml"]
    assert max(names.values()) < 6 * 2**20   # shipped files stay small (lite-lstm weights: 4.4 MiB)
    assert "Requires-Python: >=3.11" in meta             # tomllib



def test_wheel_carries_every_package_under_one_name(wheel):
    """pyproject.toml lists the packages by name: a new subpackage missing from that list would
    import in the repository and be absent from the wheel. The repository's models/ and train/
    are realtime_tse/models/ and realtime_tse/train/ there: realtime_tse is the only top-level
    name the wheel installs."""
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    for top, installed in (("models", "realtime_tse/models"), ("train", "realtime_tse/train"),
                           ("realtime_tse", "realtime_tse")):
        for init in sorted((REPO / top).rglob("__init__.py")):
            rel = installed + "/" + init.relative_to(REPO / top).as_posix()
            assert rel in names, f"{rel} is not in the wheel: add its package to pyproject.toml"
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"realtime_tse"}, tops

@pytest.mark.slow
def test_plain_install_extracts_the_demo_from_any_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    # the dependencies (torch, numpy, ...) come from this interpreter's site-packages as plain paths
    # (a .pth line adds a path without running that folder's .pth files, so no editable hook)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                        "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.pop("REALTIME_TSE_MODEL", None)   # the shipped model, as a new user gets it
    env["OMP_NUM_THREADS"] = "1"
    demo = subprocess.run([str(py), "-c", "from realtime_tse.paths import demo_input_path as d; print(d())"],
                          cwd=work, env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert Path(demo).is_file() and Path(demo).is_relative_to(venv), demo   # the installed copy
    r = subprocess.run([str(venv / "bin" / "realtime-tse"), "extract", demo, "--distance", "1.0",
                        "-o", "near.wav", "--threads", "1"], cwd=work, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    import soundfile as sf
    out, sr = sf.read(work / "near.wav")
    mix, sr_mix = sf.read(demo)
    assert sr == sr_mix and abs(len(out) - len(mix)) <= 1
    assert np.all(np.isfinite(out)) and np.sqrt(np.mean(out ** 2)) > 1e-4   # audio, not silence
    r = subprocess.run([str(venv / "bin" / "realtime-tse"), "scan", demo, "--threads", "1"], cwd=work,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "(scan of" in r.stdout, (r.stdout[-2000:], r.stderr[-2000:])
    r = subprocess.run([str(venv / "bin" / "tse-train"), "--help"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--train-config" in r.stdout, r.stderr[-2000:]
    # the installed distribution claims no global names but realtime_tse
    for name in ("models", "train"):
        r = subprocess.run([str(py), "-c", f"import {name}"], cwd=work, env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, (name, r.stderr[-500:])
