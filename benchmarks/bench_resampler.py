"""The live path's resampler (``realtime_tse/audio/resample.py``): delay and quality per filter phase.

    .venv/bin/python benchmarks/bench_resampler.py [--out benchmarks/results/resampler.json]

For each phase (``linear``: the filter the live path used before; ``minimum``: the same magnitude
response, minimum phase, the default now) and each pair of rates the live path resamples between
(8 kHz model <-> 48 / 44.1 / 16 kHz devices):

- the delay: the stated ``delay_s``, the group delay at 250 Hz ... 3.5 kHz, and the lag at which
  the demo's speech through the filter correlates best with the speech itself (what the loopback
  benchmarks' cross-correlation sees, 0.01 ms resolution);
- the magnitude response: the pass band's ripple (0 to 0.9 x the lower Nyquist frequency, dB)
  and the stop band's rejection (from the lower Nyquist frequency on, dB);
- speech: the SI-SDR (dB) of the demo's near talker at 8 kHz sent up to 48 kHz and back (aligned
  by the two stated delays), of the demo mixture at 48 kHz brought down to 8 kHz against soxr's
  'VHQ' (aligned by the stated delay), and of what the shipped model extracts at 1 m and 3 m when
  its input came down from 48 kHz through the filter and its output goes back up, against the
  same extraction with soxr 'VHQ' both ways (offline, aligned by the stated delays); beside each
  SI-SDR the log-spectral distance (dB), which phase does not change: a minimum-phase filter
  keeps the magnitude response and moves the phase near the band edge, which SI-SDR counts as
  error.

Needs no sound server; a few seconds of CPU.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEMO = REPO / "assets" / "demo"
PAIRS = [(8000, 48000), (48000, 8000), (8000, 44100), (44100, 8000), (8000, 16000), (16000, 8000)]
GD_HZ = [250.0, 500.0, 1000.0, 2000.0, 3000.0, 3500.0]


def si_sdr(est: np.ndarray, ref: np.ndarray) -> float:
    """Scale-invariant SDR (dB) of ``est`` against ``ref`` (1-D, same length)."""
    a = float(np.dot(est, ref) / np.dot(ref, ref))
    e = est - a * ref
    return float(10 * np.log10(np.sum((a * ref) ** 2) / np.sum(e ** 2)))


def shift(x: np.ndarray, d: float) -> np.ndarray:
    """``x`` delayed by ``d`` samples (fractional, FFT phase shift, zero-padded), same length."""
    n = len(x)
    nfft = 1 << int(np.ceil(np.log2(n + 8192)))
    f = np.fft.rfftfreq(nfft)
    return np.fft.irfft(np.fft.rfft(x, nfft) * np.exp(-2j * np.pi * f * d), nfft)[:n]


def speech_lag_ms(x: np.ndarray, y: np.ndarray, rate_in: int, rate_out: int) -> float:
    """The lag (ms) at which ``y`` (at ``rate_out``) best matches ``x`` (at ``rate_in``): the
    cross-correlation's peak within 0 to 20 ms, refined by a parabola through its neighbours."""
    from realtime_tse.model import resample  # noqa: PLC0415
    ref = resample(x, rate_in, rate_out).astype(np.float64)
    n = min(len(ref), len(y))
    ref, y = ref[:n], y[:n].astype(np.float64)
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    c = np.fft.irfft(np.fft.rfft(y, nfft) * np.conj(np.fft.rfft(ref, nfft)), nfft)
    c = c[: int(0.02 * rate_out)]
    k = int(np.argmax(c))
    frac = 0.0
    if 0 < k < len(c) - 1:
        a, b, d = c[k - 1], c[k], c[k + 1]
        frac = 0.5 * (a - d) / (a - 2 * b + d)
    return round((k + frac) / rate_out * 1e3, 3)


def log_spectral_distance_db(est: np.ndarray, ref: np.ndarray, rate: int) -> float:
    """The mean over frames of the RMS dB difference of ``est``'s and ``ref``'s magnitude spectra
    (32 ms frames, 100 Hz to 0.875 x Nyquist, frames within 40 dB of the loudest): a figure that
    phase does not change."""
    from scipy.signal import stft  # noqa: PLC0415
    f, _, a = stft(est, rate, nperseg=int(0.032 * rate))
    _, _, b = stft(ref, rate, nperseg=int(0.032 * rate))
    band = (f >= 100) & (f <= 0.875 * rate / 2)
    pa, pb = np.abs(a[band]) ** 2 + 1e-12, np.abs(b[band]) ** 2 + 1e-12
    e = pb.sum(0)
    keep = e > e.max() * 1e-4
    d = 10 * np.log10(pa[:, keep] / pb[:, keep])
    return float(np.mean(np.sqrt(np.mean(d ** 2, axis=0))))


def filter_row(a: int, b: int, phase: str, speech: dict) -> dict:
    import scipy.signal as ss  # noqa: PLC0415

    from realtime_tse.audio.resample import PolyphaseStream, prototype  # noqa: PLC0415
    h, L, delay_s = prototype(a, b, phase=phase)
    fs = a * L
    edge = 0.5 * min(a, b)
    w, H = ss.freqz(h / L, worN=1 << 20, fs=fs)
    db = 20 * np.log10(np.abs(H) + 1e-30)
    gd = ss.group_delay((h, [1.0]), w=np.array(GD_HZ), fs=fs)[1] / fs * 1e3
    y = PolyphaseStream(a, b, phase=phase).resample_chunk(speech[a])
    return {"in_rate": a, "out_rate": b, "phase": phase, "taps_per_output": len(h) // L,
            "delay_ms": round(delay_s * 1e3, 3),
            "group_delay_ms": {f"{hz:g}": round(float(g), 3) for hz, g in zip(GD_HZ, gd)},
            "speech_lag_ms": speech_lag_ms(speech[a], y, a, b),
            "passband_ripple_db": round(float(np.ptp(db[w <= 0.9 * edge])), 4),
            "stopband_rejection_db": round(float(-db[w >= edge].max()), 1)}


def speech_rows(phase: str, model) -> dict:
    from realtime_tse.audio.resample import PolyphaseStream  # noqa: PLC0415
    from realtime_tse.model import resample  # noqa: PLC0415
    mix, sr = sf.read(DEMO / "demo_mix.wav", dtype="float64")
    near, _ = sf.read(DEMO / "demo_near.wav", dtype="float64")
    far, _ = sf.read(DEMO / "demo_far.wav", dtype="float64")
    core8 = slice(8000, -8000)
    core48 = slice(48000, -48000)
    out = {}
    # 8 kHz -> 48 kHz -> 8 kHz, the near talker
    x8 = resample(near, sr, 8000).astype(np.float64)
    up, down = PolyphaseStream(8000, 48000, phase=phase), PolyphaseStream(48000, 8000, phase=phase)
    y = down.resample_chunk(up.resample_chunk(x8)).astype(np.float64)
    ref8 = shift(x8, (up.delay_s + down.delay_s) * 8000)
    out["round_trip_8k_48k_8k_si_sdr_db"] = round(si_sdr(y[core8], ref8[core8]), 1)
    out["round_trip_8k_48k_8k_log_spectral_distance_db"] = round(
        log_spectral_distance_db(y[core8], ref8[core8], 8000), 3)
    # 48 kHz -> 8 kHz against soxr VHQ
    m48 = resample(mix, sr, 48000).astype(np.float64)
    import soxr  # noqa: PLC0415
    ideal = soxr.resample(m48, 48000, 8000, quality="VHQ")
    m8 = PolyphaseStream(48000, 8000, phase=phase).resample_chunk(m48).astype(np.float64)
    out["down_48k_8k_si_sdr_vs_soxr_vhq_db"] = round(si_sdr(
        m8[core8], shift(ideal, down.delay_s * 8000)[: len(m8)][core8]), 1)
    # the model between the two: 48 kHz in, 48 kHz out, against soxr VHQ both ways (offline)
    if model is not None:
        m8_ideal = resample(m48, 48000, 8000)
        for name, d in (("near_1m", 1.0), ("far_3m", 3.0)):
            est8 = model.extract(m8.astype(np.float32), d, sample_rate=8000, progress=False)
            est48 = PolyphaseStream(8000, 48000, phase=phase).resample_chunk(est8).astype(np.float64)
            ideal48 = resample(model.extract(m8_ideal, d, sample_rate=8000, progress=False), 8000,
                               48000).astype(np.float64)
            n = min(len(est48), len(ideal48))
            ideal48 = shift(ideal48[:n], (up.delay_s + down.delay_s) * 48000)
            out[f"model_{name}_si_sdr_vs_soxr_vhq_db"] = round(si_sdr(est48[:n][core48], ideal48[core48]), 1)
            out[f"model_{name}_log_spectral_distance_vs_soxr_vhq_db"] = round(
                log_spectral_distance_db(est48[:n][core48], ideal48[core48], 48000), 3)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "resampler.json"))
    ap.add_argument("--no-model", action="store_true", help="leave out the model's extraction")
    a = ap.parse_args(argv)
    from realtime_tse.file_write import write_json_atomic  # noqa: PLC0415
    from realtime_tse.model import default_model_path, load_model, resample  # noqa: PLC0415
    mix, sr = sf.read(DEMO / "demo_mix.wav", dtype="float64")
    mix = mix[: 6 * sr]
    speech = {r: resample(mix, sr, r).astype(np.float32) for r in (8000, 16000, 44100, 48000)}
    model = None
    if not a.no_model and default_model_path().is_file():
        model = load_model(default_model_path(), device="cpu")
    filters, quality = [], {}
    for phase in ("linear", "minimum"):
        for x, y in PAIRS:
            r = filter_row(x, y, phase, speech)
            filters.append(r)
            print(f"{phase:<8} {x:>6} -> {y:<6} delay {r['delay_ms']:6.3f} ms  speech lag "
                  f"{r['speech_lag_ms']:5.2f} ms  group delay {r['group_delay_ms']}  ripple "
                  f"{r['passband_ripple_db']:.4f} dB  stop {r['stopband_rejection_db']:.1f} dB")
        quality[phase] = speech_rows(phase, model)
        print(f"{phase:<8} {quality[phase]}")
    write_json_atomic(a.out, {
        "what": "the live resampler's delay and quality per filter phase (linear: before; minimum: now)",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(),
        "load_average": os.getloadavg(), "filters": filters, "speech": quality})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
