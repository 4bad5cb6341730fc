"""realtime_tse.train.rooms: the paper's presets (III-A), custom TOML rooms and their validation."""

import math

import pytest

from realtime_tse.train.rooms import (RoomSpec, distance_range, group_size, load_room_toml, n_groups,
                         room_preset)


def test_d1_preset_matches_paper():
    s = room_preset("d1")
    assert s.room_min == s.room_max == (7.0, 8.0, 3.0)
    assert s.mic == (3.5, 4.0, 1.1)
    assert s.rt60_min == s.rt60_max == 0.2
    assert s.n_rirs == 10_000 and n_groups(s) == 1
    assert s.split == (0.9, 0.02, 0.08) and s.split_by == "rir"
    assert s.wall_margin == 0.5 and s.talker_height == (1.2, 2.0) and s.r_spk == 0.5
    assert s.sample_rate == 16000
    # farthest admissible talker: corner (6.5, 7.5, 2.0) seen from (3.5, 4, 1.1)
    assert distance_range(s) == pytest.approx(math.sqrt(3**2 + 3.5**2 + 0.9**2))


def test_d2_preset_matches_paper():
    s = room_preset("d2")
    assert s.room_min == s.room_max == (7.0, 8.0, 3.0) and s.mic is None
    assert s.n_rirs == 200_000 and group_size(s) == 2000 and n_groups(s) == 100
    assert s.split == (0.9, 0.01, 0.09) and s.split_by == "rir"


def test_d3_preset_matches_paper():
    s = room_preset("d3")
    assert s.room_min == (4.0, 5.0, 2.5) and s.room_max == (8.0, 10.0, 3.0)
    assert (s.rt60_min, s.rt60_max) == (0.2, 0.5) and s.mic is None
    assert group_size(s) == 10 and n_groups(s) == 50_000
    assert s.split == (0.9, 0.02, 0.08) and s.split_by == "room"
    assert distance_range(s) > distance_range(room_preset("d1"))


def test_preset_overrides_and_unknown_name():
    assert room_preset("D1", n_rirs=12, seed=3).n_rirs == 12
    with pytest.raises(ValueError, match="unknown room preset"):
        room_preset("d9")


def test_dict_round_trip():
    for name in ("d1", "d2", "d3"):
        s = room_preset(name)
        assert RoomSpec.from_dict(s.to_dict()) == s


def test_d_max_caps_distance_range():
    s = room_preset("d1", d_max=3.0)
    assert distance_range(s) == 3.0


def _write(tmp_path, text, name="room.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_toml_fixed_rt60(tmp_path):
    p = _write(tmp_path, "size = [5.0, 4.0, 2.7]\nmic = [2.5, 0.6, 0.9]\nrt60 = 0.4\n"
                         "n_rirs = 50\nr_spk = 0.3\nseed = 7\nd_max = 3.5\n", "office.toml")
    s = load_room_toml(p)
    assert s.name == "office" and s.room_min == s.room_max == (5.0, 4.0, 2.7)
    assert s.mic == (2.5, 0.6, 0.9) and s.rt60_min == s.rt60_max == 0.4
    assert (s.n_rirs, s.r_spk, s.seed, s.d_max) == (50, 0.3, 7, 3.5)
    assert n_groups(s) == 1 and s.split_by == "rir"
    assert distance_range(s) <= 3.5


def test_toml_rt60_range_groups_share_rt60(tmp_path):
    p = _write(tmp_path, "size = [6, 5, 3]\nmic = [3, 2.5, 1.0]\nrt60 = [0.3, 0.5]\nn_rirs = 40\n")
    s = load_room_toml(p)
    assert (s.rt60_min, s.rt60_max) == (0.3, 0.5)
    assert group_size(s) == 10 and n_groups(s) == 4


@pytest.mark.parametrize("text, key", [
    ("size = [5, 4, 2.7]\nmic = [6.0, 1, 1]\nrt60 = 0.4\n", "mic"),          # outside the room
    ("size = [5, 4, 2.7]\nmic = [2, 1, 1]\nrt60 = 0.0\n", "rt60"),           # RT60 not > 0
    ("size = [5, 4, 2.7]\nmic = [2, 1, 1]\nrt60 = [0.5, 0.3]\n", "rt60"),    # reversed range
    ("size = [5, 4, 2.7]\nmic = [2, 1, 1]\n", "rt60"),                        # missing
    ("size = [5, 4]\nmic = [2, 1, 1]\nrt60 = 0.4\n", "size"),                 # two sizes
    ("size = [0.8, 4, 2.7]\nmic = [0.4, 1, 1]\nrt60 = 0.4\n", "size"),        # no floor 0.5 m from walls
    ("size = [5, 4, 1.5]\nmic = [2, 1, 1]\nrt60 = 0.4\n", "size"),            # too low for 1.2 m talkers
    ("size = [5, 4, 2.7]\nmic = [2, 1, 1]\nrt60 = 0.4\nn_rirs = 'many'\n", "n_rirs"),
    ("size = [5, 4, 2.7]\nmic = [2, 1, 1]\nrt60 = 0.4\ncolour = 'red'\n", "colour"),
])
def test_toml_errors_name_file_and_key(tmp_path, text, key):
    p = _write(tmp_path, text, "bad_room.toml")
    with pytest.raises(ValueError) as e:
        load_room_toml(p)
    msg = str(e.value)
    assert "bad_room.toml" in msg and key in msg


def test_toml_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not valid TOML"):
        load_room_toml(_write(tmp_path, "size = [5, 4,\n"))
    with pytest.raises(FileNotFoundError):
        load_room_toml(tmp_path / "nope.toml")
