"""benchmarks/results/: the small latest.json the README quotes agrees with the files that measured
it, and the shipped model it names is the one in assets/ (by sha256)."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def test_latest_matches_its_sources():
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_latest.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_latest_names_the_shipped_model_and_its_figures():
    latest = json.loads((RESULTS / "latest.json").read_text())
    model = REPO / latest["model"]["file"]
    assert model.name == "lite-lstm-d1.safetensors"
    assert hashlib.sha256(model.read_bytes()).hexdigest() == latest["model"]["sha256"]
    # result files carry the model's sha256 prefix in their names
    assert latest["model"]["sha256"][:8] in latest["quality"]["source"]
    q = latest["quality"]["mean"]
    assert q["si_sdri_single"] == 1.223 and q["mae_m"] == 0.399
    assert [row["block_ms"] for row in latest["latency"]] == [32.0, 64.0]
    assert latest["latency"][0]["median_ms"] == 88.9 and latest["latency"][0]["xruns_after_2s"] == 0


def test_live_result_keys_say_what_they_measure():
    keys = json.loads((RESULTS / "realtime.json").read_text())
    assert {"end_to_end_periods_jitter_rate", "end_to_end_jitter_shrink",
            "end_to_end_long_busy_core"} <= set(keys)
    assert not [k for k in keys if "session" in k]
