"""Room calibration without a sound card: sweeps played through a simulated room (tests/
calibration_fixtures.FakeRoom), deconvolution, level and decay checks, the folder (temporary work
folder, atomic move, resume) and the command line's errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from realtime_tse.calibration.measure import (DecayError, LevelError, SweepConfig, TimelineError,
                                      analyse_take, latency_from, measure_rir, take_signal)
from realtime_tse.calibration.folder import (RoomSetup, Session, assign_splits, parse_distances,
                                             read_room_toml, work_dir_for)
from realtime_tse.cli.calibrate import CalibrateOptions, Stop, run_calibration
from realtime_tse.audio.devices import AudioDeviceError
from realtime_tse.models.acoustics import SPEED_OF_SOUND, direct_path_index, drr_db, rt60_s
from tests.calibration_fixtures import FS, FakeRoom, identity, room_rirs, simulate


CFG = SweepConfig(sample_rate=FS, sweep_s=1.5, repeats=2, gap_s=1.5, lead_s=0.5)
SETUP = RoomSetup("lab", (5.0, 4.0, 2.7), (1.0, 1.0, 1.0))
LAT = 1120  # samples: 70 ms of loop latency


def _in_band_error_db(est, ref, fs, band=(100.0, 0.85 * FS / 2)):
    """Normalised error (dB) of ``est`` against ``ref`` within ``band`` Hz (the sweep's band: the
    measurement cannot see outside it)."""
    n = len(est)
    f = np.fft.rfftfreq(n, 1 / fs)
    keep = (f >= band[0]) & (f <= band[1])
    a, b = np.fft.rfft(est, n)[keep], np.fft.rfft(ref[:n], n)[keep]
    return float(10 * np.log10(np.sum(np.abs(a - b) ** 2) / np.sum(np.abs(b) ** 2)))


@pytest.mark.parametrize("rt60,src", [(0.4, (4.0, 3.0, 1.6)), (0.25, (2.0, 1.5, 1.6)),
                                      (0.7, (3.2, 2.6, 1.5))])
def test_deconvolution_recovers_a_known_rir(rt60, src, record_property):
    h = simulate(SETUP.size_m, SETUP.mic_m, src, rt60)
    d = float(np.linalg.norm(np.subtract(src, SETUP.mic_m)))
    on = direct_path_index(h)
    true_rt, true_drr = rt60_s(h[int(on):], FS), drr_db(h, FS, on)
    cfg = CFG.replace(gap_s=max(1.5, 2 * rt60))
    m = measure_rir(FakeRoom([h], LAT, noise=3e-4), cfg, d, latency_s=LAT / FS)
    # the written RIR is the recovered one from `start` on, start = where its direct path lands
    # 2.5 ms after the tape distance's travel time: compare with the true RIR cut the same way
    start = int(round(m.delay_s * FS - (d / SPEED_OF_SOUND + 0.0025) * FS)) - LAT
    ref = np.concatenate([np.zeros(max(-start, 0)), h[max(start, 0):]])
    err = _in_band_error_db(m.rir, ref, FS)
    figures = (f"RT60 {rt60} s target, d {d:.2f} m: normalised in-band error {err:.1f} dB, RT60 "
               f"{m.rt60_s:.3f} s vs {true_rt:.3f} s ({100 * (m.rt60_s / true_rt - 1):+.1f}%), DRR "
               f"{m.drr_db:.2f} vs {true_drr:.2f} dB, path {m.path_m:.3f} m, SNR {m.levels.snr_db:.0f} "
               f"dB, PNR {m.pnr_db:.0f} dB")
    print(figures)
    record_property("deconvolution", figures)
    assert err < -25.0, figures
    assert abs(m.rt60_s / true_rt - 1) < 0.10, figures
    assert abs(m.drr_db - true_drr) < 1.0, figures
    assert abs(m.path_m - d) < 0.05, figures
    assert m.direct_s == pytest.approx(d / SPEED_OF_SOUND + 0.0025, abs=1.5 / FS)
    assert not m.warnings, m.warnings


def test_level_checks_say_what_to_fix():
    h = simulate(SETUP.size_m, SETUP.mic_m, (3.0, 2.5, 1.6), 0.3)
    with pytest.raises(LevelError, match="clipped.*turn the microphone gain or the loudspeaker "
                                         "volume down"):
        measure_rir(FakeRoom([h], LAT, gain=30.0), CFG, 2.0)
    with pytest.raises(LevelError, match="stayed silent.*loudspeaker connected"):
        measure_rir(FakeRoom([h], LAT, gain=0.0, noise=1e-4), CFG, 2.0)
    with pytest.raises(LevelError, match="stayed silent"):
        measure_rir(FakeRoom([h], LAT, gain=0.0, noise=0.0), CFG, 2.0)
    with pytest.raises(LevelError, match="only .* dB above the noise floor"):
        measure_rir(FakeRoom([h], LAT, noise=2e-2), CFG, 2.0)
    m = measure_rir(FakeRoom([h], LAT, gain=0.1, noise=3e-6), CFG, 2.0)  # quiet but clean
    assert any("turn the loudspeaker volume or the microphone gain up" in w for w in m.warnings)
    m = measure_rir(FakeRoom([h], LAT, noise=1.5e-3), CFG, 2.0)
    assert any("noise floor is high" in w for w in m.warnings), m.warnings


def test_a_sweep_shorter_than_the_rt60_or_a_short_gap_is_refused():
    # an exponentially decaying noise tail with RT60 1.2 s after a direct path (cheaper to make
    # than a simulated room this live)
    t = np.arange(int(1.5 * FS)) / FS
    h = 0.01 * np.random.default_rng(0).standard_normal(len(t)) * 10 ** (-3 * t / 1.2)
    h[0] = 0.1
    with pytest.raises(DecayError, match=r"sweep \(0.8 s\) is shorter than the room's RT60"):
        measure_rir(FakeRoom([h], LAT), CFG.replace(sweep_s=0.8, gap_s=3.0), 2.0)
    with pytest.raises(DecayError, match="gap"):
        measure_rir(FakeRoom([h], LAT), CFG.replace(sweep_s=2.0, gap_s=0.6), 2.0)


def test_repeats_that_disagree_are_measured_again_or_aligned():
    h = simulate(SETUP.size_m, SETUP.mic_m, (3.0, 2.5, 1.6), 0.3)
    x, offsets = take_signal(CFG)
    # 10 ms of audio inserted between the two sweeps, in every attempt: refused after 2 retries
    room = FakeRoom([h], LAT, jump_at=int(offsets[1]) - 100, jump=160)
    said = []
    with pytest.raises(TimelineError, match="dropped or inserted audio"):
        measure_rir(room, CFG, 2.0, say=said.append)
    assert room.calls == 3 and len(said) == 2
    # a drift of 20 samples (1.25 ms, two clocks): the repeats are aligned, with a warning
    rec = FakeRoom([h], LAT, jump_at=int(offsets[1]) - 100, jump=20)(x, FS)
    m = analyse_take(rec, CFG, 2.0, latency_s=LAT / FS)
    assert m.repeat_spread_samples == pytest.approx(20, abs=1)
    assert any("aligned before averaging" in w for w in m.warnings)
    assert abs(m.rt60_s / rt60_s(h[int(direct_path_index(h)):], FS) - 1) < 0.1


def test_latency_from_a_take_at_the_microphone():
    m = measure_rir(FakeRoom([identity()], LAT), CFG, 0.0)
    assert latency_from(m) == pytest.approx(LAT / FS, abs=0.5 / FS)
    assert m.rt60_s < 0.1 and m.drr_db > 20  # an ideal loop: no room


def test_room_setup_and_distances():
    assert parse_distances("0.5, 1 1.5") == [0.5, 1.0, 1.5]
    with pytest.raises(ValueError, match="twice"):
        parse_distances("1,1")
    with pytest.raises(ValueError, match="numbers"):
        parse_distances("one")
    with pytest.raises(ValueError, match="outside the room"):
        RoomSetup("x", (5, 4, 2.7), (5.5, 1, 1))
    with pytest.raises(ValueError, match=r"distance 9 m is outside the room: its farthest corner is "
                                         r"5\.\d\d m"):
        SETUP.check_distance(9.0)
    assert assign_splits([1, 2]) == ["train", "train"]
    s = assign_splits([3, 0.5, 1, 1.5, 2, 2.5, 4])
    assert s.count("test") == 2 and s[2] == "test" and s[5] == "test"  # 1 m and 2.5 m


def _opts(tmp_path, distances=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0), **kw):
    kw.setdefault("interactive", False)
    return CalibrateOptions(out=tmp_path / "my_room", setup=SETUP, cfg=CFG,
                            distances=list(distances), **kw)


def test_a_run_writes_a_consistent_folder(tmp_path):
    from realtime_tse.train.measured import MeasuredRIRs
    from realtime_tse.train.rooms import load_room_toml
    dists = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    rirs = room_rirs(SETUP, dists, 0.35)
    room = FakeRoom([identity()] + rirs, LAT)
    said = []
    out = run_calibration(_opts(tmp_path, dists, measure_latency=True), room, say=said.append)
    assert out == tmp_path / "my_room" and room.calls == 7
    assert not work_dir_for(out).exists()  # the work folder became the result
    assert sorted(p.name for p in out.iterdir()) == ["calibration.json", "plot.png", "rirs",
                                                     "rirs.csv", "room.toml"]
    bank = MeasuredRIRs(out / "rirs.csv")
    assert len(bank) == 6 and [m["distance"] for m in bank.meta] == dists
    assert len(bank.indices("train")) == 4 and len(bank.indices("test")) == 2
    assert bank.meta_of(0)["sample_rate"] == FS and bank.rooms == ["lab"]
    spec = load_room_toml(out / "room.toml")
    rep = json.loads((out / "calibration.json").read_text())
    assert spec.room_min == SETUP.size_m and spec.mic == SETUP.mic_m and spec.name == "lab"
    assert spec.rt60_min == pytest.approx(rep["rt60_median_s"], abs=1e-3)
    assert rep["latency_s"] == pytest.approx(LAT / FS, abs=1e-4)
    truth = [rt60_s(h[int(direct_path_index(h)):], FS) for h in rirs]
    for t, true_rt, d in zip(rep["takes"], truth, dists):
        assert abs(t["rt60_s"] / true_rt - 1) < 0.1, (t, true_rt)
        assert t["path_m"] == pytest.approx(d, abs=0.05)
    assert rep["simulated"]["rt60_s"] > 0 and len(rep["simulated"]["drr_db"]) == 6
    assert (out / "plot.png").stat().st_size > 10_000
    assert any("next:" in line for line in said)


def test_a_vanished_device_leaves_nothing_half_written_and_a_rerun_resumes(tmp_path):
    dists = [0.5, 1.0, 2.0]
    rirs = room_rirs(SETUP, dists, 0.3)
    opts = _opts(tmp_path, dists)
    with pytest.raises(AudioDeviceError, match="stopped mid-sweep"):
        run_calibration(opts, FakeRoom(rirs, LAT, fail_at=2), say=lambda s: None)
    work = work_dir_for(opts.out)
    assert not opts.out.exists()
    assert sorted(p.name for p in (work / "rirs").iterdir()) == ["d0.50m_p1.wav", "d1.00m_p1.wav"]
    assert not list(work.rglob("*.tmp*"))
    # the same run again measures only the missing take
    room = FakeRoom(rirs[2:], LAT)
    said = []
    out = run_calibration(opts, room, say=said.append)
    assert room.calls == 1 and any("2 of 3 takes already measured" in s for s in said)
    assert len((out / "rirs.csv").read_text().splitlines()) == 4
    # an existing result is not overwritten without force, and a foreign folder never
    with pytest.raises(FileExistsError, match="--force"):
        Session(out, SETUP, CFG, dists)
    assert run_calibration(_opts(tmp_path, dists, force=True), FakeRoom(rirs, LAT),
                           say=lambda s: None) == out
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not a calibration folder"):
        Session(other, SETUP, CFG, dists, force=True)


def test_bad_set_up_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="outside the room"):
        run_calibration(_opts(tmp_path, [1.0, 8.0]), FakeRoom([identity()]), say=print)
    assert not work_dir_for(tmp_path / "my_room").exists()
    with pytest.raises(ValueError, match="at least two RIRs"):
        run_calibration(_opts(tmp_path, [1.0]), FakeRoom([identity()], LAT), say=print)
    # other sweep settings than the unfinished takes': a clear message
    with pytest.raises(ValueError, match="other sweep settings.*--restart"):
        Session(tmp_path / "my_room", SETUP, CFG.replace(repeats=3), [1.0])


def test_interactive_run_asks_again_after_a_clipped_take(tmp_path):
    h = room_rirs(SETUP, [1.0, 2.0], 0.3)
    room = FakeRoom([30 * h[0], h[0], h[1]], LAT)  # the first take clips
    prompts = []

    def ask(p):
        prompts.append(p)
        return ""

    said = []
    opts = _opts(tmp_path, [1.0, 2.0], latency_s=LAT / FS)
    opts.interactive = True
    out = run_calibration(opts, room, ask=ask, say=said.append)
    assert room.calls == 3 and out.is_dir()
    assert "Put the loudspeaker 1 m from the microphone" in prompts[0]
    assert any("clipped" in s for s in said) and "measure again" in prompts[1]
    with pytest.raises(Stop):  # q stops; the finished takes stay
        run_calibration(_opts(tmp_path / "b", [1.0, 2.0], interactive=True),
                        FakeRoom(h, LAT), ask=lambda p: "q", say=print)


def test_room_toml_is_read_and_checked(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('size = [5.0, 4.0, 2.7]\nmic = [2.5, 0.6, 0.9]\nrt60 = 0.4\nn_rirs = 500\n')
    s = read_room_toml(p)
    assert s.name == "r" and s.rt60_guess_s == 0.4 and s.extra == {"n_rirs": 500}
    p.write_text('size = [5.0, 4.0]\nmic = [2.5, 0.6, 0.9]\n')
    with pytest.raises(ValueError, match="size: must be a list of 3 numbers"):
        read_room_toml(p)


def test_cli_errors_are_one_line_and_write_nothing(tmp_path, monkeypatch, capsys):
    # Modules that copy `find_device` at import (`from .devices import find_device`) are imported
    # before the stand-in goes in: one imported for the first time while it is in place keeps it
    # after the test (realtime_tse.audio.streams did, and a later test of the window then found no
    # default device). Checked at the end.
    from realtime_tse.audio import devices, streams as audio_io
    from realtime_tse.calibration import playrec
    from realtime_tse.cli.main import main
    real_find_device = devices.find_device

    def no_device(spec, kind="input"):
        raise AudioDeviceError(f"no default {kind} device. Available {kind} devices:\n  (none)")

    monkeypatch.setattr(devices, "find_device", no_device)
    out = tmp_path / "room"
    base = ["calibrate", "--out", str(out), "--room-size", "5", "4", "2.7", "--mic", "1", "1", "1",
            "--distances", "1,2", "--yes"]
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "realtime-tse: error: no default input device" in err and "Traceback" not in err
    assert not out.exists() and not work_dir_for(out).exists()
    assert main(base[:3] + ["--distances", "1", "--yes"]) == 1
    assert "--room TOML or both --room-size and --mic" in capsys.readouterr().err
    toml = tmp_path / "r.toml"
    toml.write_text("size = [5, 4, 2.7]\nmic = [1, 1, 1]\nrt60 = 1.5\n")
    assert main(["calibrate", "--out", str(out), "--room", str(toml), "--sweep-s", "1", "--yes"]) == 1
    assert "shorter than the room's RT60 (1.5 s" in capsys.readouterr().err
    assert main(base[:-3] + ["--distances", "1,12", "--yes"]) == 1
    assert "outside the room" in capsys.readouterr().err
    assert audio_io.find_device is real_find_device and playrec.find_device is real_find_device


def test_a_dropout_in_one_sweep_is_caught():
    h = simulate(SETUP.size_m, SETUP.mic_m, (3.0, 2.5, 1.6), 0.3)
    x, offsets = take_signal(CFG)
    rec = FakeRoom([h], LAT)(x, FS)
    i = int(offsets[1]) + LAT + int(1.2 * FS)
    rec[i:i + int(0.03 * FS)] = 0.0  # 30 ms of the second sweep lost (its top octave: -21 dB)
    with pytest.raises(TimelineError, match="different RIRs"):
        analyse_take(rec, CFG, 2.0)
