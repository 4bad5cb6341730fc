"""LiveConfig: the live settings in one dataclass (built by the CLI, kept by the window), and the
typed LiveStats snapshot."""
import subprocess
import sys

import pytest

from realtime_tse.live_config import DEFAULT_BLOCK_MS, LiveConfig
from realtime_tse.live.stats import LiveStats


def test_build_overrides_and_refuses_unknown_settings():
    base = LiveConfig(block_ms=32.0, input_file="a.wav")
    cfg = LiveConfig.build(base, scan=False, latency="low", stall_timeout_s=2.0)
    assert cfg.block_ms == 32.0 and cfg.scan is False and cfg.input_file == "a.wav"
    assert cfg.latency == "low" and cfg.stall_timeout_s == 2.0
    assert base.scan is True  # the base is not changed
    assert LiveConfig().block_ms == DEFAULT_BLOCK_MS == 64.0
    with pytest.raises(TypeError, match="no_such_setting"):
        LiveConfig.build(no_such_setting=1)


def test_stream_and_engine_take_the_config(tmp_path):
    import numpy as np
    import soundfile as sf

    from realtime_tse.audio.streams import make_stream
    p = tmp_path / "a.wav"
    sf.write(p, np.zeros(1600, np.float32), 16000)
    s = make_stream(lambda b: b, 16000, 800, LiveConfig(input_file=str(p), output_device="null",
                                                        prefill_blocks=2.0))
    assert s.config.prefill_blocks == 2.0 and s.loop is True and s.mode == "file-null"
    s2 = make_stream(lambda b: b, 16000, 800, input_file=str(p), output_device="null")
    assert s2.loop is False  # without a config a file plays once, as before


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
