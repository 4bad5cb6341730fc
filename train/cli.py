"""Command lines ``tse-train`` and ``tse-eval``.

    tse-train ROOM --speech DIR --out RUN_DIR [--train-config T.toml] [--minutes M | --steps S] [--resume]
    tse-train [ROOM] --measured RIRS.csv --init CKPT --speech DIR --out RUN_DIR [--r-spk M] [--lr LR]
    tse-eval CKPT --scenario ROOM --speech DIR [--json OUT.json] [--baseline CKPT]
    tse-eval CKPT --measured RIRS.csv --speech DIR [--json OUT.json]

``ROOM`` is a paper preset (d1, d2, d3) or a TOML file describing your own room (see
:func:`realtime_tse.train.rooms.load_room_toml`). ``--speech`` is a folder of audio files with one sub-folder per
speaker (LibriSpeech layout works) or a CSV with columns ``path,speaker``. The speakers are split
into disjoint train / validation / test sets (the paper's 128:48:64 proportions, fixed seed), so
``tse-eval`` tests on speakers the model never heard.

Measured RIRs (``--measured``: a CSV read by :class:`realtime_tse.train.measured.MeasuredRIRs`, e.g. the
``rirs.csv`` that ``realtime-tse calibrate`` writes) replace the simulated bank: ``tse-train``
fine-tunes on their train split (``--init CKPT``: weights only, a fresh optimiser from step 0, the
checkpoint's model config; the paper's D4 starts from its D3 model) and validates on their val split,
or on the train RIRs with the validation speakers when the val split holds fewer than two RIRs of
one room; ``tse-eval --measured`` tests on their test split. ``r_spk`` (eq. 3) is ``--r-spk``, else
the init checkpoint's (the model was trained for it), else the ROOM's, else 0.5 m (the paper used
0.1 m for D4's dense real RIRs).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import tomllib
from pathlib import Path

CPU_RECIPE = Path(__file__).resolve().parent / "configs" / "lite_lstm_d1.toml"  # the shipped network's
# tse-eval's default (mixtures per repeat, scanned mixtures per repeat). On CPU a distance scan (11
# query distances over a 4 s mixture) costs about 10 s with the shipped lite model on one loaded core
# and each other mixture 0.5 s, so 5 repeats of the CPU default take about 4 minutes.
GPU_EVAL = (100, None)
CPU_EVAL = (20, 4)
DEFAULT_BANK_ROOT = Path(os.environ.get("REALTIME_TSE_CACHE", Path.home() / ".cache" / "realtime-tse")) / "rirs"


def load_room(spec: str):
    """A paper preset name or a room TOML path -> RoomSpec. Raises ValueError / FileNotFoundError."""
    from realtime_tse.train.rooms import load_room_toml, room_preset
    if spec.lower() in ("d1", "d2", "d3"):
        return room_preset(spec.lower())
    return load_room_toml(spec)


def load_speech(path: str):
    from realtime_tse.train.corpus import SpeechCorpus
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return SpeechCorpus.from_csv(p)
    return SpeechCorpus.from_folder(p)


def bank_dir_for(room, n_rirs: int) -> Path:
    key = hashlib.sha1(json.dumps({**room.to_dict(), "n_rirs": n_rirs}, sort_keys=True, default=str).encode())
    return DEFAULT_BANK_ROOT / f"{room.name}-{n_rirs}-{key.hexdigest()[:10]}"


def prepare_data(room, speech: str, bank: str | None, n_rirs: int | None, workers: int, sample_rate: int,
                 clip_s: float, seed: int, split_seed: int = 0, progress: bool = True,
                 test_all_speakers: bool = False, extra_train_speech=()):
    """Build (or reuse) the RIR bank and split the speech. Returns (room, bank, samplers dict, info).

    ``test_all_speakers``: the test sampler draws from every speaker of ``speech`` instead of its
    test split (for a corpus no model was trained on, e.g. ``scripts/make_tts_corpus.py``'s voices);
    train and validation keep their splits. ``extra_train_speech``: speech folders or CSVs whose
    every speaker joins the train split only (more voices, e.g. ``scripts/make_festival_corpus.py``);
    the split of ``speech`` stays as it is, so its validation and test speakers stay unheard."""
    from realtime_tse.train.mixtures import MixtureSampler
    from realtime_tse.train.rirbank import RIRBank, build_bank
    if n_rirs:
        room = room.replace(n_rirs=int(n_rirs))
    out = Path(bank) if bank else bank_dir_for(room, room.n_rirs)
    build_bank(room, out, workers=workers, progress=progress)
    rb = RIRBank(out)
    corpus = load_speech(speech)
    tr, va, te = corpus.split(seed=split_seed)
    n_main_train = len(tr.speakers)
    for extra in extra_train_speech:
        tr = tr.merged(load_speech(extra))
    if test_all_speakers:
        te = corpus
    samplers = {}
    for name, corp, extra in (("train", tr, 0), ("val", va, 1), ("test", te, 2)):
        samplers[name] = MixtureSampler(rb, rb.indices(name), corp, sample_rate, clip_s, r_spk=room.r_spk,
                                        seed=seed * 10 + extra)
    info = {"room": room.name, "rir_bank": str(out), "n_rirs": len(rb), "speech": str(speech),
            "speakers": {"train": len(tr.speakers), "val": len(va.speakers), "test": len(te.speakers)},
            "test_speakers": list(te.speakers)[:300]}
    if extra_train_speech:
        info["extra_train_speech"] = [str(e) for e in extra_train_speech]
        info["speakers"]["train_extra"] = len(tr.speakers) - n_main_train
    return room, rb, samplers, info


def _has_pair(rb, idx) -> bool:
    """Whether some room of ``rb`` holds two RIRs among ``idx`` (a mixture needs two)."""
    return any(len(v) >= 2 for v in rb.groups(idx).values()) if len(idx) else False


def prepare_measured(csv_path: str, speech: str, sample_rate: int, clip_s: float, seed: int,
                     r_spk: float, split_seed: int = 0):
    """Measured RIRs and the speech split -> (bank, samplers dict, info, notes).

    ``samplers["test"]`` is None when the CSV's test split holds no two RIRs of one room; the
    validation sampler uses the train RIRs when the val split has no such pair (``notes`` says so).
    Raises realtime_tse.train.measured.MeasuredRIRError (a ValueError) for a bad CSV, ValueError when the train
    split holds no two RIRs of one room.
    """
    from realtime_tse.train.measured import MeasuredRIRs
    from realtime_tse.train.mixtures import MixtureSampler
    rb = MeasuredRIRs(csv_path)
    idx = {name: rb.indices(name) for name in ("train", "val", "test")}
    if not _has_pair(rb, idx["train"]):
        raise ValueError(f"{rb.csv_path}: the train split holds {len(idx['train'])} RIR(s) and no two "
                         "of one room: a mixture needs two (measure more distances or positions)")
    notes = []
    if not _has_pair(rb, idx["val"]):
        idx["val"] = idx["train"]
        notes.append("validating on the training RIRs with the validation speakers (the measured "
                     "val split holds no two RIRs of one room)")
    corpus = load_speech(speech)
    tr, va, te = corpus.split(seed=split_seed)
    samplers = {}
    for name, corp, extra in (("train", tr, 0), ("val", va, 1), ("test", te, 2)):
        samplers[name] = (MixtureSampler(rb, idx[name], corp, sample_rate, clip_s, r_spk=r_spk,
                                         seed=seed * 10 + extra)
                          if _has_pair(rb, idx[name]) else None)
    info = {"room": ",".join(r or rb.csv_path.parent.name for r in rb.rooms),
            "measured_rirs": str(rb.csv_path), "n_rirs": len(rb),
            "rirs": {k: int(len(v)) for k, v in idx.items()}, "r_spk": r_spk, "speech": str(speech),
            "speakers": {"train": len(tr.speakers), "val": len(va.speakers), "test": len(te.speakers)},
            "test_speakers": list(te.speakers)[:300]}
    return rb, samplers, info, notes


def _measured_r_spk(a, init_cfg, room) -> float:
    if a.r_spk is not None:
        return float(a.r_spk)
    if init_cfg is not None:
        return float(init_cfg.r_spk)
    return float(room.r_spk) if room is not None else 0.5


def train_main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tse-train", description="Train a distance-based TSE model for a room.")
    ap.add_argument("room", nargs="?", help="d1 | d2 | d3 | my_room.toml (optional with --measured)")
    ap.add_argument("--speech", required=True, help="speech folder (one sub-folder per speaker) or CSV")
    ap.add_argument("--out", required=True, help="run folder (checkpoints, log.csv)")
    ap.add_argument("--train-config", help="TOML with [train] (and [train.model]) settings")
    ap.add_argument("--extra-speech", action="append", default=[], metavar="DIR",
                    help="more voices for training only: every speaker of DIR joins the train split "
                         "(repeatable; e.g. scripts/make_festival_corpus.py's folder)")
    ap.add_argument("--model-preset", help="lite-causal (default) | paper-causal | paper | baseline")
    ap.add_argument("--minutes", type=float, help="wall-clock budget")
    ap.add_argument("--steps", type=int, help="step budget")
    ap.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.safetensors")
    ap.add_argument("--bank", help="RIR bank folder (default: a cache folder per room)")
    ap.add_argument("--n-rirs", type=int, help="override the room's number of RIRs")
    ap.add_argument("--workers", type=int, default=2, help="processes simulating RIRs")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--measured", metavar="RIRS.csv",
                    help="train on measured RIRs (e.g. realtime-tse calibrate's rirs.csv) instead of "
                         "a simulated bank")
    ap.add_argument("--init", metavar="CKPT", help="fine-tune: start from this checkpoint's weights "
                                                  "(fresh optimiser, step 0)")
    ap.add_argument("--r-spk", type=float, help="speaker range (m) of the measured data (default: "
                                                "the init checkpoint's, else the room's)")
    ap.add_argument("--lr", type=float, help="learning rate (default: the recipe's)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.room is None and not a.measured:
        ap.error("ROOM is required (a preset or a TOML) unless --measured is given")
    if a.extra_speech and a.measured:
        ap.error("--extra-speech goes with a simulated room (measured RIRs keep their speech split)")
    if a.r_spk is not None and not a.r_spk > 0:
        ap.error("--r-spk must be > 0 m")
    t_start = time.time()   # a --minutes budget counts from here: RIR simulation is part of it
    say = (lambda msg: None) if a.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        import torch

        from realtime_tse.train.progress import summary_line
        from realtime_tse.train.trainer import TrainConfig, Trainer
        from realtime_tse.models.config import ModelConfig
        recipe = a.train_config
        if recipe is None and not torch.cuda.is_available():
            recipe = CPU_RECIPE
        tdict = {}
        if recipe:
            with open(recipe, "rb") as f:
                tdict = tomllib.load(f).get("train", {})
        cfg = TrainConfig.from_dict(tdict)
        if a.model_preset:
            cfg.model_preset = a.model_preset
        if a.threads:
            cfg.threads = a.threads
        if a.lr is not None:
            cfg.lr = a.lr
        if a.train_config is None and recipe:
            say(f"no GPU here: training with the CPU recipe {_shown(recipe)} ({cfg.model_preset}, batch "
                f"{cfg.batch} x {cfg.clip_s:g} s); --train-config chooses another")
        init_cfg = None
        if a.init:
            from realtime_tse.models.checkpoint import read_metadata
            init_cfg = read_metadata(a.init)[0]
            if a.model_preset or cfg.model:
                say(f"fine-tuning keeps the model of {a.init} ({init_cfg.preset}, "
                    f"{init_cfg.sample_rate} Hz): --model-preset and [train.model] are not used")
        sr = (init_cfg or ModelConfig.preset(cfg.model_preset, **cfg.model)).sample_rate
        room = load_room(a.room) if a.room else None
        overrides = {}
        if a.measured:
            from realtime_tse.train.measured import MeasuredRoom
            r_spk = _measured_r_spk(a, init_cfg, room)
            rb, samplers, info, notes = prepare_measured(a.measured, a.speech, sr, cfg.clip_s,
                                                         cfg.seed, r_spk)
            for n in notes:
                say(n)
            if room is None:
                far = max(m["distance"] for m in rb.meta)
                room = MeasuredRoom(info["room"], r_spk, far, str(a.measured))
            elif room.r_spk != r_spk:   # the model (trained from scratch) learns the data's r_spk
                room = room.replace(r_spk=r_spk)
            if init_cfg is not None and r_spk != init_cfg.r_spk:
                overrides["r_spk"] = r_spk
            if not a.init:
                say("training from scratch on measured RIRs: a few measured RIRs are little data; "
                    "--init CKPT fine-tunes a model trained on a simulated bank (the paper's D4)")
        else:
            room, rb, samplers, info = prepare_data(room, a.speech, a.bank, a.n_rirs, a.workers, sr,
                                                    cfg.clip_s, cfg.seed, progress=not a.quiet,
                                                    extra_train_speech=a.extra_speech)
            if init_cfg is not None and a.r_spk is not None:
                overrides["r_spk"] = float(a.r_spk)
        t_data = time.time() - t_start
        trainer = Trainer(cfg, room, samplers["train"], samplers["val"], a.out, provenance={"data": info},
                          resume=a.resume, init=a.init, init_overrides=overrides)
        if a.resume and trainer.resumed_step is not None:
            say(f"resuming from step {trainer.resumed_step:,} ({Path(a.out) / 'last.safetensors'})")
        elif a.resume:
            say(f"nothing to resume in {a.out} (no last.safetensors): starting at step 0")
        what = f"fine-tuning {a.init}" if a.init else f"training {cfg.model_preset}"
        say(f"{what} on {room.name} ({len(rb)} {'measured ' if a.measured else ''}RIRs, "
            f"{info['speakers']['train']} training speakers) -> {a.out}")
        if a.minutes is not None:
            left = 60 * a.minutes - (time.time() - t_start)
            say(f"budget {a.minutes:.3g} min from the start: {_mmss(t_data)} went into data preparation "
                f"(RIR bank, cached for later runs), {_mmss(max(left, 0))} left for training")
        step0 = trainer.state["step"]
        m = trainer.run(minutes=a.minutes, steps=a.steps, progress=not a.quiet, started_at=t_start)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"tse-train: error: {e}", file=sys.stderr)
        return 2
    if not m and a.minutes is not None and t_data >= 60 * a.minutes:
        print(f"nothing trained: the {a.minutes:.3g}-minute budget went into data preparation ({_mmss(t_data)}); "
              f"the RIR bank is cached, so the same command trains for its whole budget next time")
    else:
        print(summary_line(m, trainer.state["step"], trainer.state["step"] - step0, a.out))
    return 0


def _mmss(seconds: float) -> str:
    """Seconds as ``M min SS s`` (e.g. ``3 min 44 s``)."""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def _shown(path) -> str:
    """A path relative to the working directory when it lies below it, else absolute."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def eval_main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tse-eval", description="Table I / II / III style evaluation.")
    ap.add_argument("ckpt", help="checkpoint (.safetensors)")
    ap.add_argument("--scenario", help="d1 | d2 | d3 | my_room.toml")
    ap.add_argument("--measured", metavar="RIRS.csv", help="test on the test split of measured RIRs "
                                                          "instead of a scenario")
    ap.add_argument("--r-spk", type=float, help="speaker range (m) with --measured (default: the model's)")
    ap.add_argument("--speech", required=True, help="speech folder or CSV (its test split is used)")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--baseline", help="a second checkpoint (e.g. the LSTM+DEG baseline) for Table II")
    ap.add_argument("--mixtures", type=int, help=f"test mixtures per repeat (default {GPU_EVAL[0]} on a GPU, "
                                                  f"{CPU_EVAL[0]} on CPU)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scan-mixtures", type=int, help="mixtures per repeat used for distance estimation "
                                                      f"(default all on a GPU, {CPU_EVAL[1]} on CPU)")
    ap.add_argument("--clip-s", type=float, default=4.0)
    ap.add_argument("--bank")
    ap.add_argument("--n-rirs", type=int)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--p-presence", type=float, default=0.7, help="share of presence queries")
    ap.add_argument("--all-speakers", action="store_true",
                    help="test on every speaker of --speech, not its test split (a corpus the model "
                         "never heard, e.g. scripts/make_tts_corpus.py's voices)")
    ap.add_argument("--swap-pairs", type=int, default=20,
                    help="voice pairs of the position-swap test (realtime_tse.train.swaptest; 0 = skip it)")
    ap.add_argument("--swap-only", action="store_true",
                    help="run only the position-swap test (no Table I / III figures)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.swap_pairs < 0 or (a.swap_only and a.swap_pairs == 0):
        ap.error("--swap-pairs must be > 0 (>= 0 without --swap-only)")
    if (a.scenario is None) == (a.measured is None):
        ap.error("give one of --scenario ROOM or --measured RIRS.csv")
    if a.all_speakers and a.measured:
        ap.error("--all-speakers goes with --scenario (measured RIRs keep their speech split)")
    try:
        import torch

        from realtime_tse.models.checkpoint import load_checkpoint
        from realtime_tse.train.evaluate import PAPER_D1, evaluate, format_report
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if a.mixtures is None:
            a.mixtures = GPU_EVAL[0] if device == "cuda" else CPU_EVAL[0]
            if device == "cpu" and a.scan_mixtures is None:
                a.scan_mixtures = CPU_EVAL[1]
            if device == "cpu" and not a.quiet:
                print(f"no GPU here: {a.repeats} repeats x {a.mixtures} mixtures, distance scan on "
                      f"{min(a.scan_mixtures, a.mixtures)} of each (--mixtures / --scan-mixtures for more)",
                      file=sys.stderr, flush=True)
        net, meta = load_checkpoint(a.ckpt, device=device)
        if a.measured:
            r_spk = float(a.r_spk) if a.r_spk is not None else float(net.cfg.r_spk)
            rb, samplers, info, _notes = prepare_measured(a.measured, a.speech, net.cfg.sample_rate,
                                                          a.clip_s, 12345, r_spk)
            if samplers["test"] is None:
                raise ValueError(f"{a.measured}: its test split holds {info['rirs']['test']} RIR(s) and no "
                                 "two of one room, so there is nothing to test on (realtime-tse "
                                 "calibrate marks every third RIR as test from six RIRs on; or set "
                                 "split=test in the CSV)")
            scenario = f"measured:{info['room']}"
        else:
            room = load_room(a.scenario)
            room, rb, samplers, info = prepare_data(room, a.speech, a.bank, a.n_rirs, a.workers,
                                                    net.cfg.sample_rate, a.clip_s, seed=12345,
                                                    progress=not a.quiet, test_all_speakers=a.all_speakers)
            scenario = room.name
        sampler = samplers["test"]
        sampler.p_presence = a.p_presence
        models = [(Path(a.ckpt).stem, net)]
        if a.baseline:
            b, _ = load_checkpoint(a.baseline, device=device)
            if b.cfg.sample_rate != net.cfg.sample_rate:
                raise ValueError("the baseline and the model must share one sample rate")
            models.append((Path(a.baseline).stem, b))
        report = {"scenario": scenario, "data": info, "mixtures_per_repeat": a.mixtures,
                  "scan_mixtures_per_repeat": a.scan_mixtures or a.mixtures,
                  "repeats": a.repeats, "clip_s": a.clip_s, "p_presence": a.p_presence, "models": {}}
        from realtime_tse.train.swaptest import format_swap, swap_test
        for name, m in models:
            rep = {}
            if not a.swap_only:
                rep = evaluate(m, sampler, a.mixtures, a.repeats, device, scan_mixtures=a.scan_mixtures,
                               progress=not a.quiet)
                print(format_report(name, rep, PAPER_D1 if scenario == "d1" else None))
            if a.swap_pairs:
                try:
                    rep["swap"] = swap_test(m, sampler, a.swap_pairs, device=device)
                    print(format_swap(name, rep["swap"]))
                except RuntimeError as e:   # a room too small for two talkers >= 1 m apart
                    rep["swap"] = {"skipped": str(e)}
                    print(f"{name}: position-swap test skipped: {e}")
            report["models"][name] = rep
            print()
        if a.json:
            Path(a.json).parent.mkdir(parents=True, exist_ok=True)
            Path(a.json).write_text(json.dumps(report, indent=2))
    except (ValueError, FileNotFoundError, RuntimeError) as e:  # CheckpointError is a ValueError
        print(f"tse-eval: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":   # python -m realtime_tse.train.cli ... runs tse-train (used by scripts/train_gpu.sh)
    sys.exit(train_main())
