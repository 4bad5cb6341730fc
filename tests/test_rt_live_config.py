"""LiveConfig: the live settings in one dataclass (built by the CLI, kept by the window), and the
typed LiveStats snapshot."""
import subprocess
import sys

from realtime_tse.live_config import DEFAULT_BLOCK_MS, LiveConfig
from realtime_tse.live_stats import LiveStats


def test_build_overrides_and_stream_options():
    base = LiveConfig(block_ms=32.0, input_file="a.wav")
    cfg = LiveConfig.build(base, scan=False, latency="low", stall_timeout_s=2.0)
    assert cfg.block_ms == 32.0 and cfg.scan is False and cfg.input_file == "a.wav"
    assert base.scan is True  # the base is not changed
    assert cfg.stream_kwargs() == {"latency": "low", "stall_timeout_s": 2.0}
    assert LiveConfig().block_ms == DEFAULT_BLOCK_MS == 64.0 and LiveConfig().stream_kwargs() == {}


def test_json_round_trip_and_tolerant_reading():
    cfg = LiveConfig(block_ms=48.0, output_device="null", scan_distances_m=(1.0, 2.0), jitter_ms=20.0)
    assert LiveConfig.from_json(cfg.to_json()) == cfg
    assert LiveConfig.from_json(None) == LiveConfig()
    assert LiveConfig.from_json("not json") == LiveConfig()
    assert LiveConfig.from_json('{"block_ms": 32, "gone_setting": 1}').block_ms == 32


def test_live_config_imports_neither_torch_nor_qt():
    code = ("import sys, realtime_tse.live_config; "
            "assert 'torch' not in sys.modules and 'PySide6' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_live_stats_reads_fields_then_stream_figures():
    st = LiveStats(xruns=3, rtf=0.5, stream={"max_process_s": 0.01, "xruns": 99})
    assert st["xruns"] == 3 and st.xruns == 3          # the engine's figure wins
    assert st["max_process_s"] == 0.01 and st.get("missing", 7) == 7
    d = st.as_dict()
    assert d["xruns"] == 3 and d["max_process_s"] == 0.01 and "stream" not in d
