"""The shipped model on the demo and on the demo with its voices' positions swapped.

``assets/demo/make_demo.py --swap`` renders the same room, positions, texts and levels with the
two voices trading places. A model that selects by distance leans to the talker at the asked
distance in both renderings; one that selects by voice leans to the same voice in both. The
contrast is ``realtime_tse.train.swaptest.contrast_db`` (dB, > 0 = towards the talker at the asked distance).
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo"
FLOOR_DB = 6.0   # the product's goal: >= +6 dB the right way at 1 m and 3 m in both renderings


@pytest.fixture(scope="module")
def contrasts(tmp_path_factory):
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed (apt-get install flite): cannot render the swapped demo")
    from realtime_tse import load_model
    from realtime_tse.train.swaptest import contrast_db

    out = tmp_path_factory.mktemp("demo_swapped")
    subprocess.run([sys.executable, str(DEMO / "make_demo.py"), "--swap", "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL, timeout=600)
    m = load_model(device="cpu")
    res = {}
    for name, d in (("demo", DEMO), ("swapped", out)):
        truth = json.loads((d / "demo.json").read_text())
        read = {k: sf.read(d / truth["files"][k], dtype="float32")[0] for k in ("mix", "near", "far")}
        res[name] = {"voices": (truth["talkers"]["near"]["voice"], truth["talkers"]["far"]["voice"])}
        for dist, asked, other in ((1.0, "near", "far"), (3.0, "far", "near")):
            y = m.extract(read["mix"], dist, sample_rate=truth["sample_rate"])
            res[name][dist] = contrast_db(y, read[asked], read[other], read["mix"])
    return res


def test_swapped_demo_trades_the_voices_at_the_same_positions(tmp_path):
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed")
    subprocess.run([sys.executable, str(DEMO / "make_demo.py"), "--swap", "--out", str(tmp_path)], check=True,
                   stdout=subprocess.DEVNULL, timeout=600)
    a = json.loads((DEMO / "demo.json").read_text())
    b = json.loads((tmp_path / "demo.json").read_text())
    assert b["voices_swapped"] is True
    for pos, other in (("near", "far"), ("far", "near")):
        assert b["talkers"][pos]["voice"] == a["talkers"][other]["voice"]
        assert b["talkers"][pos]["position_m"] == a["talkers"][pos]["position_m"]
        assert abs(b["talkers"][pos]["level_dbfs"] - a["talkers"][pos]["level_dbfs"]) < 0.05
    # the swapped near talker is the original far talker's speech, through the near position's RIR
    far_orig = sf.read(DEMO / "demo_far.wav")[0]
    near_swapped = sf.read(tmp_path / "demo_near.wav")[0]
    assert not np.allclose(far_orig, near_swapped, atol=1e-3)
    with pytest.raises(subprocess.CalledProcessError):   # never over the shipped demo
        subprocess.run([sys.executable, str(DEMO / "make_demo.py"), "--swap"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)


def test_shipped_model_contrasts_are_finite_and_measured(contrasts):
    for name in ("demo", "swapped"):
        for dist in (1.0, 3.0):
            assert np.isfinite(contrasts[name][dist]) and abs(contrasts[name][dist]) < 60


@pytest.mark.xfail(strict=True, reason="the shipped model does not meet the distance floor on the demo "
                                       "both ways yet (docs: model card, position-swap test)")
def test_shipped_model_picks_by_distance_on_the_demo_both_ways(contrasts):
    worst = min(contrasts[n][d] for n in ("demo", "swapped") for d in (1.0, 3.0))
    assert worst >= FLOOR_DB, contrasts
