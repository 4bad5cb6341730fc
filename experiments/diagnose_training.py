"""Diagnostics behind the recipe choices in experiments/FINDINGS.md ("Why PIT first" and after).

    python experiments/diagnose_training.py probe  [--gap 2.5]      # is near-vs-far visible locally?
    python experiments/diagnose_training.py nearer [--steps 600]    # can the net extract the nearer talker?
    python experiments/diagnose_training.py upit [--steps 8000] [--causal]  # how fast does a classic separator learn here?
    python experiments/diagnose_training.py order --checkpoint RUN/last.safetensors  # token figures by talker gap
    python experiments/diagnose_training.py between --checkpoint CKPT [--gap 2.0]  # level between the talkers
    python experiments/diagnose_training.py solo --checkpoint CKPT   # one talker alone: level by query and distance
    python experiments/diagnose_training.py locate [--steps 1500]     # can a causal LSTM tell a lone talker's distance?
    python experiments/diagnose_training.py cue [--clip 1] [--speech DIR]  # how much a clip's statistics say about it
    python experiments/diagnose_training.py head --checkpoint CKPT   # what the distance head knows

``probe``: on D1 mixtures (8 kHz, 1 s, talkers at least ``--gap`` m apart) it reports the SI-SDRi of
the oracle ideal ratio mask of the nearer talker (what a magnitude mask could reach) and of a small
MLP trained on 400 mixtures to predict that mask from local log-magnitude context (7 frames x 3 bins
around each bin). ``nearer``: trains ``lite-causal-bs`` for ``--steps`` steps of 8 x 1 s with
negative SI-SDR to output the nearer talker (query = its distance, so the query carries no choice)
and prints validation SI-SDRi every 100 steps. ``upit``: a classic uPIT-BLSTM separator (2 x BLSTM
256 on normalised log-magnitude, two sigmoid masks, 2.5 M parameters, offline) trained with PIT on
SI-SDR on the same mixtures (talkers >= ``--gap`` m apart, 4 mixtures of 1 s per step, the audio of
one paired 8-row step), to calibrate how much audio a separator needs on this data. All need the speech corpus (``--speech``) and build
or reuse the D1 bank of 4,000 RIRs.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _samplers(speech: str, gap: float):
    from realtime_tse.train.cli import load_room, prepare_data
    _, _, s, _ = prepare_data(load_room("d1"), speech, None, 4000, 1, 8000, 1.0, 0, progress=False)
    for k in ("train", "val"):
        s[k].min_gap_m = gap
    return s["train"], s["val"]


def _nearer(sampler, start: int, n: int):
    """(mix [n, N], nearer talker [n, N], farther talker [n, N], nearer distance [n])."""
    mix, near, far, d = [], [], [], []
    for k in range(n):
        m = sampler.sample_at(start + k, presence=True)
        t = int(np.argmin(m.distances))
        mix.append(m.mix), near.append(m.sources[t]), far.append(m.sources[1 - t]), d.append(m.distances[t])
    return (torch.tensor(np.stack(mix)), torch.tensor(np.stack(near)), torch.tensor(np.stack(far)),
            torch.tensor(d, dtype=torch.float32))


def _load_net(path: str, with_meta: bool = False):
    """A checkpoint's network on the CPU in eval mode (and its metadata with ``with_meta``)."""
    from realtime_tse.models.checkpoint import load_checkpoint
    net, meta = load_checkpoint(path, device="cpu")
    net.eval()
    return (net, meta) if with_meta else net


def _context(spec: torch.Tensor) -> torch.Tensor:
    """[B, T, F] complex -> [B, T, F, 23]: log power of 7 frames x 3 bins relative to the bin itself,
    its own log power and its frequency position."""
    lm = torch.log10(spec.abs() ** 2 + 1e-8)
    b, t, f = lm.shape
    pad = torch.nn.functional.pad(lm, (1, 1, 6, 0), value=-8.0)
    c = torch.stack([pad[:, 6 - dt:6 - dt + t, 1 + df:1 + df + f] for dt in range(7) for df in (-1, 0, 1)], -1)
    pos = torch.linspace(0, 1, f)[None, None, :, None].expand(b, t, f, 1)
    return torch.cat([c - c[..., 4:5], lm[..., None], pos], -1)


def probe(a) -> None:
    from realtime_tse.models.metrics import si_sdr
    from realtime_tse.models.stft import istft, stft
    tr, va = _samplers(a.speech, a.gap)
    x, s, i, _ = _nearer(tr, 0, 400)
    xv, sv, iv, _ = _nearer(va, 50000, 64)
    sx, ss, si = (stft(z, 256, 128) for z in (x, s, i))
    vx, vs, vi = (stft(z, 256, 128) for z in (xv, sv, iv))
    n = xv.shape[-1]
    base = si_sdr(xv, sv)
    irm = lambda a_, b_: a_.abs() / (a_.abs() + b_.abs() + 1e-8)  # noqa: E731
    print(f"gap >= {a.gap} m: oracle IRM SI-SDRi {float((si_sdr(istft(vx * irm(vs, vi), 256, 128, n), sv) - base).mean()):+.2f} dB")
    f, fv = _context(sx), _context(vx)
    flat = f.reshape(-1, f.shape[-1])
    mu, sd = flat.mean(0), flat.std(0) + 1e-6
    mlp = torch.nn.Sequential(torch.nn.Linear(flat.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 1))
    opt = torch.optim.Adam(mlp.parameters(), 3e-3)
    w = (sx.abs() ** 2).reshape(-1)
    w, y, ff = w / w.mean(), irm(ss, si).reshape(-1), (flat - mu) / sd
    for _ in range(1500):
        k = torch.randint(0, ff.shape[0], (4096,))
        loss = (w[k] * (torch.sigmoid(mlp(ff[k])[:, 0]) - y[k]) ** 2).mean()
        opt.zero_grad(), loss.backward(), opt.step()
    with torch.no_grad():
        mask = torch.sigmoid(mlp((fv - mu) / sd)[..., 0])
    print(f"gap >= {a.gap} m: local log-magnitude probe SI-SDRi "
          f"{float((si_sdr(istft(vx * mask, 256, 128, n), sv) - base).mean()):+.2f} dB")


def nearer(a) -> None:
    from realtime_tse.models.config import ModelConfig
    from realtime_tse.models.metrics import si_sdr
    from realtime_tse.models.net import build_model
    tr, va = _samplers(a.speech, a.gap)
    torch.manual_seed(0)
    net = build_model(ModelConfig.preset("lite-causal-bs"))
    opt = torch.optim.Adam(net.parameters(), a.lr)
    val = [_nearer(va, 50000 + 8 * k, 8) for k in range(4)]
    t0 = time.time()
    for step in range(a.steps + 1):
        if step % 100 == 0:
            net.eval()
            with torch.no_grad():
                g = [float((si_sdr(net(x, d), s) - si_sdr(x, s)).mean()) for x, s, _, d in val]
            net.train()
            print(f"step {step} ({time.time() - t0:.0f} s): validation SI-SDRi {np.mean(g):+.2f} dB", flush=True)
        x, s, _, d = _nearer(tr, 8 * step, 8)
        loss = -si_sdr(net(x, d), s).mean()
        opt.zero_grad(), loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()


class _UPITBLSTM(torch.nn.Module):
    """[B, N] mixture -> [B, 2, N]: two masked copies (log-magnitude in, two sigmoid masks out).
    ``causal``: one-directional LSTMs and per-frame feature normalisation (a live separator)."""

    def __init__(self, n_freq: int = 129, hidden: int = 256, causal: bool = False):
        super().__init__()
        self.causal = causal
        self.rnn = torch.nn.LSTM(n_freq, hidden, 2, batch_first=True, bidirectional=not causal)
        self.out = torch.nn.Linear(hidden if causal else 2 * hidden, 2 * n_freq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from realtime_tse.models.stft import istft, stft
        spec = stft(x, 256, 128)
        f = torch.log10(spec.abs() ** 2 + 1e-8)
        axes = (2,) if self.causal else (1, 2)   # per frame, or over the whole clip
        f = (f - f.mean(axes, keepdim=True)) / (f.std(axes, keepdim=True) + 1e-5)
        b, t, nf = spec.shape
        m = torch.sigmoid(self.out(self.rnn(f)[0])).reshape(b, t, 2, nf).permute(0, 2, 1, 3)
        return istft((spec[:, None] * m).reshape(-1, t, nf), 256, 128, x.shape[-1]).reshape(b, 2, -1)


def upit(a) -> None:
    from realtime_tse.models.metrics import si_sdr
    tr, va = _samplers(a.speech, a.gap)
    torch.manual_seed(0)
    net = _UPITBLSTM(causal=a.causal)
    print(f"params {sum(p.numel() for p in net.parameters())} causal={a.causal}", flush=True)
    opt = torch.optim.Adam(net.parameters(), a.lr)

    def batch(s, start, n):
        ms = [s.sample_at(start + k, presence=True) for k in range(n)]
        return torch.tensor(np.stack([m.mix for m in ms])), torch.tensor(np.stack([m.sources for m in ms]))

    def pit(est, src):
        return torch.maximum(si_sdr(est, src).mean(1), si_sdr(est, src.flip(1)).mean(1))

    val = [batch(va, 50000 + 4 * k, 4) for k in range(8)]
    t0 = time.time()
    for step in range(a.steps + 1):
        if step % 100 == 0:
            with torch.no_grad():
                g = [float((pit(net(x), s) - si_sdr(x[:, None].expand_as(s), s).mean(1)).mean()) for x, s in val]
            print(f"step {step} ({time.time() - t0:.0f} s): validation PIT SI-SDRi {np.mean(g):+.2f} dB", flush=True)
        x, s = batch(tr, 4 * step, 4)
        loss = -pit(net(x), s).mean()
        opt.zero_grad(), loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()


def order(a) -> None:
    """Token figures of a checkpoint by talker gap: for validation mixtures of two talkers (any gap)
    queried at the two tokens, the SI-SDRi under the better assignment (separation) and under the
    distance order (first token = the nearer talker), and at the talkers' own distances."""
    from realtime_tse.models.metrics import si_sdr
    net, meta = _load_net(a.checkpoint, with_meta=True)
    q = meta["provenance"]["train_config"].get("pit_queries") or [0.5, 4.5]
    _, va = _samplers(a.speech, a.gap)   # --gap 0: every validation pair
    rows = []
    with torch.no_grad():
        for k in range(a.mixtures):
            m = va.sample_at(70000 + k, presence=True)
            x = torch.tensor(m.mix)[None].expand(2, -1)
            src = torch.tensor(np.stack(m.sources))
            near = int(np.argmin(m.distances))
            base = si_sdr(x, src)
            two = net(x, torch.tensor([float(v) for v in q]))
            same, cross = (si_sdr(two, src) - base).mean(), (si_sdr(two, src.flip(0)) - base.flip(0)).mean()
            own = (si_sdr(net(x, torch.tensor(m.distances, dtype=torch.float32)), src) - base).mean()
            rows.append((abs(m.distances[0] - m.distances[1]), float(max(same, cross)),
                         float(same if near == 0 else cross), float(own)))
    r = np.array(rows)
    print(f"{a.checkpoint}: {len(r)} mixtures; SI-SDRi in dB (tokens {q} m)")
    print("gap (m)     n  separation  token order  own distances  nearer token right")
    for lo, hi in ((0, 1), (1, 2), (2, 3), (3, 5)):
        s = r[(r[:, 0] >= lo) & (r[:, 0] < hi)]
        if len(s):
            print(f"{lo}-{hi}   {len(s):5d}  {s[:, 1].mean():+9.2f}  {s[:, 2].mean():+10.2f}  {s[:, 3].mean():+12.2f}"
                  f"  {100 * np.mean(s[:, 2] >= s[:, 1] - 1e-9):5.0f} %")
    print(f"all   {len(r):5d}  {r[:, 1].mean():+9.2f}  {r[:, 2].mean():+10.2f}  {r[:, 3].mean():+12.2f}"
          f"  {100 * np.mean(r[:, 2] >= r[:, 1] - 1e-9):5.0f} %")


def between(a) -> None:
    """Output level (dB re the mixture) of a checkpoint at queries on the talkers, midway between
    them and outside them, on validation mixtures whose talkers are at least ``--gap`` m apart. A
    model that has learnt to bracket the talkers rather than to pick them is loud midway (the scan's
    profile is then a plateau from the nearer to the farther talker, with its peak in the middle)."""
    from realtime_tse.models.metrics import relative_level
    net = _load_net(a.checkpoint)
    _, va = _samplers(a.speech, a.gap)
    rows = []
    with torch.no_grad():
        for k in range(a.mixtures):
            m = va.sample_at(80000 + k, presence=True)
            lo, hi = sorted(float(d) for d in m.distances)
            qs = [lo, hi, (lo + hi) / 2, max(lo - 1.0, 0.0), hi + 1.0]
            y = net(torch.tensor(m.mix)[None].expand(len(qs), -1), torch.tensor(qs))
            lev = relative_level(y, torch.tensor(m.mix))
            rows.append([hi - lo] + lev.tolist())
    r = np.array(rows)
    print(f"{a.checkpoint}: {len(r)} mixtures, talkers >= {a.gap} m apart; output level re mixture (dB)")
    print("nearer talker  farther talker  midway  1 m nearer than the nearer  1 m beyond the farther")
    print("  ".join(f"{v:+8.1f}" for v in r[:, 1:].mean(0)))


def solo(a) -> None:
    """One talker alone (each source of validation mixtures, any distance): the output level (dB re
    the input) for queries 0 to 5 m, averaged per 1 m band of the talker's distance, and the mean
    absolute error of the loudest query against the talker's distance. A model that localises has
    its loud queries move with the talker; one that has only learnt where talkers usually stand
    answers every talker alike."""
    from realtime_tse.models.metrics import relative_level
    net = _load_net(a.checkpoint)
    _, va = _samplers(a.speech, 0.0)
    qs = np.arange(0.0, 5.01, 0.25)
    bands, err = {}, []
    with torch.no_grad():
        for k in range(a.mixtures // 2):
            m = va.sample_at(90000 + k, presence=True)
            for t in range(2):
                y = net(torch.tensor(m.sources[t])[None].expand(len(qs), -1), torch.tensor(qs, dtype=torch.float32))
                lev = relative_level(y, torch.tensor(m.sources[t])).numpy()
                bands.setdefault(min(int(m.distances[t]), 4), []).append(lev)
                err.append(abs(qs[int(np.argmax(lev))] - m.distances[t]))
    print(f"{a.checkpoint}: one talker alone; output level re input (dB) by query distance")
    print("talker   n  " + " ".join(f"{q:5.1f}" for q in qs[::2]))
    for b in sorted(bands):
        v = np.mean(bands[b], 0)[::2]
        print(f"{b}-{b + 1} m {len(bands[b]):3d}  " + " ".join(f"{x:5.1f}" for x in v))
    print(f"loudest query vs the talker's distance: MAE {np.mean(err):.2f} m over {len(err)} talkers")


def head(a) -> None:
    """The distance head (``ModelConfig.distance_bins``) on validation mixtures of two talkers (at
    least ``--gap`` m apart, 4 s): per talker, the head's mean probability per bin over the frames
    where the talker is active (``realtime_tse.train.losses.distance_targets``), its expected distance against the
    true one (MAE, beside a constant guess at the mean distance), and the share of mixtures where the
    head puts the nearer talker nearer."""
    from realtime_tse.train.losses import distance_targets
    net = _load_net(a.checkpoint)
    cfg = net.cfg
    _, va = _samplers(a.speech, a.gap)
    va.clip_s, va.n = 4.0, int(4.0 * cfg.sample_rate)
    centres = (np.arange(cfg.distance_bins) + 0.5) * cfg.distance_bin_m
    est, true, order = [], [], []
    with torch.no_grad():
        for k in range(a.mixtures):
            m = va.sample_at(90000 + k, presence=True)
            if not np.all(np.isfinite(m.distances)):
                continue
            _, logits = net(torch.tensor(m.mix)[None], torch.tensor([float(m.d_q)]), with_distance=True)
            p = torch.sigmoid(logits)[0].numpy()                                  # [T, bins]
            e = []
            for t in range(2):
                one = np.full(2, np.inf)
                one[t] = m.distances[t]
                act = distance_targets(torch.tensor(m.sources)[None], torch.tensor(one, dtype=torch.float32)[None],
                                       cfg.n_fft, cfg.hop, cfg.distance_bins, cfg.distance_bin_m)[0].sum(-1).numpy() > 0
                w = p[act[:p.shape[0]]].mean(0) if act.any() else p.mean(0)
                e.append(float((w * centres).sum() / (w.sum() + 1e-9)))
                est.append(e[-1])
                true.append(float(m.distances[t]))
            order.append((e[0] < e[1]) == (m.distances[0] < m.distances[1]))
    est, true = np.array(est), np.array(true)
    print(f"{a.checkpoint}: distance head on {len(order)} mixtures (talkers >= {a.gap} m apart)")
    print(f"expected distance vs true: MAE {np.mean(np.abs(est - true)):.2f} m "
          f"(constant guess {np.mean(np.abs(true - true.mean())):.2f} m), correlation {np.corrcoef(est, true)[0, 1]:.2f}")
    print(f"nearer talker put nearer: {100 * np.mean(order):.0f} %")


def locate(a) -> None:
    """Is a lone talker's distance learnable from the lite-lstm's own causal features? A causal
    LSTM (1 x 128) on ``realtime_tse.models.lstm_deg.frame_features`` regresses the talker's distance on every
    frame (L1), trained on single reverberant talkers of the D1 train split (16 x 1 s per step);
    prints the validation MAE of its last-frame estimate against the constant median guess."""
    from realtime_tse.models.lstm_deg import frame_features
    from realtime_tse.models.stft import stft
    tr, va = _samplers(a.speech, 0.0)

    def batch(s, start, n):
        x, d = [], []
        for k in range(n):
            m = s.sample_at(start + k, presence=True)
            t = k % 2
            x.append(m.sources[t] / (np.sqrt(np.mean(m.sources[t] ** 2)) + 1e-8)), d.append(m.distances[t])
        return torch.tensor(np.stack(x), dtype=torch.float32), torch.tensor(d, dtype=torch.float32)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(2 * 129 + 1 if a.features == "lite" else 130, 128, batch_first=True)
            self.out = torch.nn.Linear(128, 1)

        def forward(self, x):
            spec = stft(x, 256, 128)
            if a.features == "raw":   # log power in units of 10 dB re the clip's loudest bin
                lp = torch.log10(spec.abs() ** 2 + 1e-8)
                lp = (lp - lp.amax((1, 2), keepdim=True)).clamp(min=-8.0)
                feat = torch.cat([lp, lp.mean(-1, keepdim=True)], -1)
            else:
                feat, _ = frame_features(spec)
            return 2.5 + self.out(self.rnn(feat)[0])[..., 0]          # [B, T] metres

    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    vx, vd = batch(va, 50000, 128)
    guess = float(vd.median())
    print(f"validation: {len(vd)} lone talkers; constant {guess:.2f} m guess MAE {float((vd - guess).abs().mean()):.2f} m")
    t0 = time.time()
    for step in range(1, a.steps + 1):
        x, d = batch(tr, step * 16, 16)
        loss = (net(x) - d[:, None]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            with torch.no_grad():
                est = net(vx)[:, -1]
            print(f"step {step:5d}  train L1 {float(loss.detach()):.2f} m  validation MAE (last frame) "
                  f"{float((est - vd).abs().mean()):.2f} m  ({time.time() - t0:.0f} s)", flush=True)


def _decay_stats(x: np.ndarray, n_fft: int) -> np.ndarray:
    """Statistics of one clip where reverberation shows: per quarter of the spectrum, histograms of
    each bin's frame-to-frame log-power change and of the band energy's change (how sounds start
    and die away; a near talker's die away abruptly, a far talker's under a reverberant tail)."""
    from realtime_tse.models.stft import stft
    sp = stft(torch.tensor(x, dtype=torch.float32)[None], n_fft, n_fft // 2)[0]
    lp = (10 * torch.log10(sp.abs() ** 2 + 1e-10)).numpy()
    lp -= lp.max()
    out = []
    for band in np.array_split(np.arange(lp.shape[1]), 4):
        d = np.diff(lp[:, band], axis=0).ravel()
        e = 10 * np.log10((10 ** (lp[:, band] / 10)).mean(1) + 1e-12)
        out += [np.histogram(np.clip(d, -30, 30), bins=12, range=(-30, 30), density=True)[0],
                np.histogram(np.clip(np.diff(e), -20, 20), bins=8, range=(-20, 20), density=True)[0]]
    return np.concatenate(out)


def cue(a) -> None:
    """How much a lone talker's clip says about its distance, without a network: ridge regression
    from :func:`_decay_stats` to the distance, fitted on 900 and tested on 300 other lone talkers
    (D1 test RIRs, every speaker of ``--speech``, ``--clip`` s at 8 kHz). Prints the held-out MAE
    beside the constant-median guess and the correlation of estimate and truth."""
    from realtime_tse.train.cli import load_room, prepare_data
    _, _, s, _ = prepare_data(load_room("d1"), a.speech, None, 4000, 1, 8000, a.clip, 0, progress=False,
                              test_all_speakers=True)
    x, y = [], []
    for k in range(600):
        m = s["test"].sample_at(60000 + k, presence=True)
        for t in range(2):
            x.append(_decay_stats(m.sources[t], 256)), y.append(m.distances[t])
    x, y = np.array(x), np.array(y)
    cut = 900
    mu, sd = x[:cut].mean(0), x[:cut].std(0) + 1e-6
    z = np.c_[(x - mu) / sd, np.ones(len(y))]
    w = np.linalg.solve(z[:cut].T @ z[:cut] + 3.0 * np.eye(z.shape[1]), z[:cut].T @ y[:cut])
    p = z[cut:] @ w
    print(f"{a.speech}, {a.clip:g} s clips: held-out MAE {np.abs(p - y[cut:]).mean():.2f} m, constant "
          f"{np.abs(np.median(y[:cut]) - y[cut:]).mean():.2f} m, correlation {np.corrcoef(p, y[cut:])[0, 1]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("probe", "nearer", "upit", "order", "between", "solo", "locate", "cue", "head"))
    ap.add_argument("--checkpoint", help="order, between, solo, head: a checkpoint")
    ap.add_argument("--mixtures", type=int, default=120, help="order: validation mixtures")
    ap.add_argument("--speech", default="../shared/data/speechocean762")
    ap.add_argument("--gap", type=float, default=None,
                    help="minimum talker distance gap, m (default 2.5; upit 1.0)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--clip", type=float, default=1.0, help="cue: clip length, s")
    ap.add_argument("--features", choices=("lite", "raw"), default="lite",
                    help="locate: the lite-lstm's features or the clip's log power (not causal: re its loudest bin)")
    ap.add_argument("--causal", action="store_true", help="upit: one-directional LSTMs (a live separator)")
    a = ap.parse_args()
    if a.gap is None:
        a.gap = 1.0 if a.what == "upit" else 2.5
    torch.set_num_threads(1)
    {"probe": probe, "nearer": nearer, "upit": upit, "order": order, "between": between, "solo": solo, "locate": locate, "cue": cue,
     "head": head}[a.what](a)


if __name__ == "__main__":
    main()
