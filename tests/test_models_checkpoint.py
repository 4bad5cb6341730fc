"""Checkpoint round trip and every bad-checkpoint case."""
import json

import pytest
import torch
from safetensors.torch import save_file

from realtime_tse.models import ModelConfig, build_model
from realtime_tse.models.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint


def test_config_json_round_trip():
    for name in ModelConfig.preset_names():
        cfg = ModelConfig.preset(name)
        assert ModelConfig.from_json(cfg.to_json()) == cfg


def test_config_errors():
    with pytest.raises(ValueError, match="unknown preset"):
        ModelConfig.preset("nope")
    d = ModelConfig.preset("paper").to_dict()
    d["version"] = 99
    with pytest.raises(ValueError, match="version"):
        ModelConfig.from_dict(d)
    with pytest.raises(ValueError, match="causal"):
        ModelConfig.preset("paper", causal=True)


def test_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    m = build_model(ModelConfig.preset("lite-causal")).eval()
    p = save_checkpoint(tmp_path / "m.safetensors", m, {"steps": 12, "data": "unit test"})
    m2, meta = load_checkpoint(p)
    assert meta["config"] == m.cfg
    assert meta["provenance"] == {"steps": 12, "data": "unit test"}
    for (k, a), (k2, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.randn(1, 4000)
    with torch.no_grad():
        assert torch.equal(m(x, torch.tensor([2.0])), m2(x, torch.tensor([2.0])))


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "text.safetensors"
    p.write_text("hello, I am not a model")
    with pytest.raises(CheckpointError, match=str(p.name)):
        load_checkpoint(p)


def test_safetensors_without_metadata(tmp_path):
    p = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, str(p))
    with pytest.raises(CheckpointError, match="metadata"):
        load_checkpoint(p)


def test_truncated_file(tmp_path):
    m = build_model(ModelConfig.preset("lite-causal"))
    p = save_checkpoint(tmp_path / "m.safetensors", m)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="m.safetensors"):
        load_checkpoint(p)


def test_unknown_config_version(tmp_path):
    m = build_model(ModelConfig.preset("lite-causal"))
    d = m.cfg.to_dict()
    d["version"] = 7
    p = tmp_path / "v7.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(p),
              metadata={"format": "realtime-tse", "config": json.dumps(d), "provenance": "{}"})
    with pytest.raises(CheckpointError, match="version"):
        read_metadata(p)


def test_weights_do_not_fit_config(tmp_path):
    small = build_model(ModelConfig.preset("lite-causal"))
    p = tmp_path / "mismatch.safetensors"
    big_cfg = ModelConfig.preset("paper-causal")
    save_file({k: v.contiguous() for k, v in small.state_dict().items()}, str(p),
              metadata={"format": "realtime-tse", "config": big_cfg.to_json(), "provenance": "{}"})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(p)


def test_non_finite_weights_are_refused_at_load(tmp_path):
    """A checkpoint whose weights hold NaN (a diverged run, a damaged file) is refused with a
    message naming the file and a tensor, not loaded to output NaN."""
    m = build_model(ModelConfig.preset("lite-lstm"))
    p = save_checkpoint(tmp_path / "good.safetensors", m, {"note": "x"})
    from safetensors import safe_open
    with safe_open(str(p), framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    name = sorted(state)[3]
    state[name] = torch.full_like(state[name], float("nan"))
    bad = tmp_path / "nan.safetensors"
    save_file(state, str(bad), metadata=meta)
    with pytest.raises(CheckpointError, match=r"non-finite weights in .*nan\.safetensors") as e:
        load_checkpoint(bad)
    assert name in str(e.value)
    state[name] = torch.full_like(state[name], float("inf"))
    save_file(state, str(bad), metadata=meta)
    with pytest.raises(CheckpointError, match="non-finite"):
        load_checkpoint(bad)
    load_checkpoint(p)  # the good one still loads


def test_a_failed_save_leaves_no_temporary_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    """Saving over a checkpoint fails half-way (disk full): the old file is unchanged and no
    temporary file stays in the folder."""
    import errno
    import realtime_tse.models.checkpoint as ck
    m = build_model(ModelConfig.preset("lite-lstm"))
    p = save_checkpoint(tmp_path / "m.safetensors", m, {"note": "old"})
    before = p.read_bytes()

    def full(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck, "save_file", full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(p, m, {"note": "new"})
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.safetensors"]


def test_provenance_schema_round_trip_and_bare_room_name():
    from realtime_tse.models.provenance import Provenance
    d = {"data": {"speech": "x"}, "trainer": {"step": 5}, "train_config": {"lr": 1e-3},
         "room": {"name": "d1", "rt60_min": 0.2}, "parameters": 123, "credits": "c"}
    p = Provenance.from_dict(d)
    assert p.room["name"] == "d1" and p.trainer["step"] == 5 and p.extra == {"credits": "c"}
    assert p.to_dict() == d
    assert Provenance.from_dict({"room": "lab"}).room == {"name": "lab"}
    assert Provenance.from_dict(None).to_dict() == {}
