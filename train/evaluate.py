"""Evaluation in the paper's terms (Tables I, II and III) plus what those metrics hide (SPEC.md).

Per repeat (seeded test mixtures from the test splits of the RIR bank and the speech corpus):

* presence queries (a talker within ``r_spk``): SDR and PESQ (wide-band, 16 kHz; the output and
  reference are resampled to 16 kHz when the model runs at another rate) over all of them; SDRi
  and SI-SDRi over single-talker queries only: with both talkers in range the target is the
  mixture itself, whose SDR is infinite, so SDRi is undefined there (their SDR is reported apart);
* absence queries: iSDR of eq. 9 (lower is better; depends on the level, -25 to -20 dBFS here) and
  the output level relative to the input, ``10 log10(|x_hat|^2 / |y|^2)``;
* distance estimation (Table III): d_q scanned over 0 to 5 m (``d_max``) in 0.5 m steps, the
  normalised iSDR per query (:func:`realtime_tse.models.detection.scan_levels`, the level the app's radar
  shows), read by the one detector :func:`realtime_tse.models.detection.detect_talkers`:

  - the paper's indicator (sum of the levels within a 1 m window): MAE of the highest peak to the
    closest talker (``mae_m``), the two highest peaks matched to the two talkers (mean error of the
    better assignment, ``two_peak_err_m``), and both figures for a constant 2.5 m guess;
  - the app's detector (the talkers the window and CLI show): the share of true talkers with a
    detected talker within ``DETECT_TOL_M`` = 0.5 m (``det_found``), detected talkers farther than
    that from every true talker per mixture (``det_false``), mixtures where nothing was detected
    (``det_none``), and the two-peak error of the detected talkers where any were
    (``det_two_err_m``).

Mean and standard deviation over ``repeats`` (5 in the paper) are reported.
"""
from __future__ import annotations

import numpy as np
import torch

from realtime_tse.models.detection import detect_talkers, scan_levels
from realtime_tse.models.metrics import isdr, relative_level, sdr, si_sdr

PAPER_D1 = {"sdr": 12.47, "sdri": 8.83, "pesq": 2.40, "isdr": 9.59, "mae_m": 0.26}
DETECT_TOL_M = 0.5  # a detected talker within this of a true one counts as found


def _pesq(est: np.ndarray, ref: np.ndarray, sr: int) -> float:
    try:
        from pesq import pesq
    except ImportError:
        return float("nan")
    if sr != 16000:
        import soxr
        est, ref = soxr.resample(est, sr, 16000), soxr.resample(ref, sr, 16000)
    try:
        return float(pesq(16000, ref.astype(np.float64), est.astype(np.float64), "wb"))
    except Exception:  # silent reference or too short: PESQ undefined
        return float("nan")


def match_two(peaks: list, distances) -> float:
    """Mean error (m) of up to two peaks assigned to the two talkers (the better assignment)."""
    d = list(map(float, distances))
    p = list(peaks) + [peaks[0]] * (2 - len(peaks)) if peaks else [np.nan, np.nan]
    a = (abs(p[0] - d[0]) + abs(p[1] - d[1])) / 2
    b = (abs(p[0] - d[1]) + abs(p[1] - d[0])) / 2
    return float(min(a, b))


def detector_counts(talkers_m: list, distances, tol_m: float = DETECT_TOL_M) -> tuple[int, int]:
    """How the detected talkers meet the true ones (metres).

    Returns:
        ``(found, false)``: true talkers with a detected talker within ``tol_m``, and detected
        talkers farther than ``tol_m`` from every true talker.
    """
    t = np.asarray(talkers_m, dtype=np.float64)
    d = np.asarray(distances, dtype=np.float64)
    if t.size == 0:
        return 0, 0
    gap = np.abs(t[:, None] - d[None, :])  # [detected, true]
    return int(np.sum(gap.min(0) <= tol_m)), int(np.sum(gap.min(1) > tol_m))


def evaluate_once(net, sampler, n_mixtures: int, device, start: int = 0, scan: bool = True,
                  scan_mixtures: int | None = None, on_mixture=None) -> dict:
    """One repeat over ``n_mixtures`` seeded mixtures (``sampler.sample_at(start + k)``).
    Presence/absence follows the sampler's ``p_presence``. ``on_mixture()``, if given, is called
    after each mixture (progress). Returns per-metric means."""
    sr = net.cfg.sample_rate
    rows = {k: [] for k in ("sdr", "sdri", "pesq", "sdr_both", "si_sdri_single",
                            "sdri_single", "isdr", "absence_level_db")}
    dist_err, two_err, const_err, const_two = [], [], [], []
    det_found, det_false, det_none, det_two = [], [], [], []
    grid = np.arange(0.0, net.cfg.d_max + 1e-9, 0.5)
    n_scan = n_mixtures if scan_mixtures is None else min(scan_mixtures, n_mixtures)
    # the scanned mixtures are spread evenly over the repeat (a scan costs ~20 mixtures' time on CPU,
    # so a steady pace keeps the progress bar's estimate honest)
    scanned = set(np.linspace(0, n_mixtures, n_scan, endpoint=False).astype(int).tolist()) if n_scan else set()
    net.eval()
    for k in range(n_mixtures):
        m = sampler.sample_at(start + k)
        mix = torch.from_numpy(m.mix)
        with torch.no_grad():
            est = net(mix[None].to(device), torch.tensor([m.d_q], device=device))[0].float().cpu()
        tgt = torch.from_numpy(m.target)
        if m.kind == "absence":
            rows["isdr"].append(float(isdr(est, mix)))
            rows["absence_level_db"].append(float(relative_level(est, mix)))
        else:
            s = float(sdr(est, tgt))
            rows["sdr"].append(s)
            rows["pesq"].append(_pesq(est.numpy(), m.target, sr))
            if m.kind == "single":
                s0 = float(sdr(mix, tgt))
                rows["sdri"].append(s - s0)
                rows["sdri_single"].append(s - s0)
                rows["si_sdri_single"].append(float(si_sdr(est, tgt) - si_sdr(mix, tgt)))
            else:  # both talkers in range: the target is the mixture, SDR(y) is infinite
                rows["sdr_both"].append(s)
        if scan and k in scanned:
            lv = scan_levels(net, mix.to(device), grid)
            dbfs = float(10 * np.log10(np.mean(np.square(m.mix, dtype=np.float64)) + 1e-20))
            det = detect_talkers(lv, grid, input_dbfs=dbfs)
            peaks = det.peaks_m
            dist_err.append(float(np.min(np.abs(m.distances - peaks[0]))))
            two_err.append(match_two(peaks, m.distances))
            found, false = detector_counts(det.talkers_m, m.distances)
            det_found.append(found / len(m.distances))
            det_false.append(false)
            det_none.append(float(not det.talkers_m))
            if det.talkers_m:
                det_two.append(match_two(det.talkers_m, m.distances))
            const_err.append(float(np.min(np.abs(m.distances - 2.5))))
            const_two.append(match_two([2.5, 2.5], m.distances))
        if on_mixture is not None:
            on_mixture()
    out = {k: float(np.nanmean(v)) if len(v) else float("nan") for k, v in rows.items()}
    out["n_presence"] = len(rows["sdr"])
    out["n_absence"] = len(rows["isdr"])
    out["n_both"] = len(rows["sdr_both"])
    if dist_err:
        out.update(mae_m=float(np.mean(dist_err)), two_peak_err_m=float(np.mean(two_err)),
                   const_2p5_mae_m=float(np.mean(const_err)), const_2p5_two_err_m=float(np.mean(const_two)),
                   det_found=float(np.mean(det_found)), det_false=float(np.mean(det_false)),
                   det_none=float(np.mean(det_none)),
                   det_two_err_m=float(np.mean(det_two)) if det_two else float("nan"))
    return out


def evaluate(net, sampler, n_mixtures: int = 100, repeats: int = 5, device="cpu", scan: bool = True,
             scan_mixtures: int | None = None, progress: bool = True) -> dict:
    """Table I / III style report: {"mean": {...}, "std": {...}, "repeats": [...]} over ``repeats``
    disjoint seeded sets of ``n_mixtures`` test mixtures each. ``progress`` shows a bar over all
    ``repeats * n_mixtures`` mixtures (stderr) with the repeat in progress."""
    from tqdm import tqdm

    reps = []
    bar = tqdm(total=repeats * n_mixtures, disable=not progress, desc="mixtures", unit="mix")
    for r in range(repeats):
        bar.set_postfix_str(f"repeat {r + 1}/{repeats}")
        reps.append(evaluate_once(net, sampler, n_mixtures, device, start=r * n_mixtures, scan=scan,
                                  scan_mixtures=scan_mixtures, on_mixture=lambda: bar.update(1)))
    bar.close()
    keys = reps[0].keys()
    def finite(k):  # NaN where no repeat had such a query (nanmean would warn on an all-NaN list)
        v = np.asarray([r[k] for r in reps], dtype=float)
        return v[np.isfinite(v)]
    mean = {k: float(finite(k).mean()) if finite(k).size else float("nan") for k in keys}
    std = {k: float(finite(k).std()) if finite(k).size else float("nan") for k in keys}
    return {"mean": mean, "std": std, "repeats": reps}


def format_report(name: str, rep: dict, paper: dict | None = None) -> str:
    """Plain-text table of an :func:`evaluate` report (Table I + III layout)."""
    m, s = rep["mean"], rep["std"]
    f = lambda k: f"{m[k]:6.2f} ± {s[k]:4.2f}" if k in m and np.isfinite(m[k]) else "   n/a"  # noqa: E731
    lines = [f"{'model':28s} {'SDR (dB)':>14s} {'SDRi (dB)':>14s} {'PESQ':>14s} {'iSDR (dB)':>14s}",
             f"{name:28s} {f('sdr'):>14s} {f('sdri'):>14s} {f('pesq'):>14s} {f('isdr'):>14s}"]
    if paper:
        lines.append(f"{'paper (D1, 4DQ+4TS)':28s} {paper['sdr']:14.2f} {paper['sdri']:14.2f} "
                     f"{paper['pesq']:14.2f} {paper['isdr']:14.2f}")
    lines += ["",
              f"single-talker queries: SDRi {f('sdri_single')} dB, SI-SDRi {f('si_sdri_single')} dB",
              f"both talkers in range: SDR {f('sdr_both')} dB (n={m.get('n_both', 0):.0f}; SDRi undefined)",
              f"absence queries: output level re input {f('absence_level_db')} dB"]
    if "mae_m" in m:
        lines += [f"distance: MAE (highest peak) {f('mae_m')} m, two peaks matched {f('two_peak_err_m')} m;"
                  f" constant 2.5 m guess: {f('const_2p5_mae_m')} m / {f('const_2p5_two_err_m')} m",
                  f"detector (what the app shows): talkers found within {DETECT_TOL_M:g} m "
                  f"{f('det_found')} (share), false {f('det_false')} per mixture, none detected "
                  f"{f('det_none')} (share), two-peak error {f('det_two_err_m')} m"]
    return "\n".join(lines)
