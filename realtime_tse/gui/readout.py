"""What the window shows of the engine (a part of :class:`realtime_tse.gui.app.MainWindow`): the
meters and the status bar from each tick's stats, the profile, radar and detected talkers from a
distance scan, and what the loaded model is."""
from __future__ import annotations

import html
import math

import numpy as np

from ..model_card import MODEL_CARD, measured_line, network_text
from .engine_host import describe_room

__all__ = ["show_stats", "rates_text", "show_scan", "show_model"]


def show_stats(win, st) -> None:
    """The level meters and the status bar from one :class:`realtime_tse.live.stats.LiveStats`."""
    win.in_meter.set_level(st.input_level_db)
    win.out_meter.set_level(st.output_level_db)
    dev = st.device
    win.st_device.setText(f"compute: {'CUDA' if dev.startswith('cuda') else dev.upper()}")
    win.st_rtf.setText(f"RTF {st.rtf:.2f}" if math.isfinite(st.rtf) else "RTF \u2014")
    a = st.algorithmic_latency_ms if math.isfinite(st.algorithmic_latency_ms) else 0.0
    t = st.total_latency_ms
    if not math.isfinite(t):
        t = a + st.device_latency_ms
    path = {"jack": ", PipeWire JACK", "alsa": ", ALSA"}.get(st.get("audio_path"), "")
    win.st_latency.setText(f"latency {t:.0f} ms ({a:.0f} algorithmic + {t - a:.0f} "
                           f"buffers and devices{path})")
    win.st_xruns.setText(f"xruns {st.xruns}")
    win.st_rates.setText(rates_text(st))


def _khz(rate: int) -> str:
    return f"{rate / 1000:g} kHz"


def rates_text(st) -> str:
    """The status bar's sample rates in plain words, from a
    :class:`realtime_tse.live.stats.LiveStats`: the rate of what is listened to (the input file's,
    or the input device's), whether it is resampled for the model, and the playback's rate where
    it differs, e.g. "input 16 kHz, resampled to 8 kHz for the model" or "input 48 kHz,
    resampled to 8 kHz for the model, output 44.1 kHz". Without a stream: the model's rate."""
    src, model, out = st.source_sample_rate, st.model_sample_rate, st.output_sample_rate
    if not src:
        return f"model {_khz(model)}"
    text = f"input {_khz(src)}" + (", the model's rate" if src == model
                                   else f", resampled to {_khz(model)} for the model")
    if out and out != src:
        text += f", output {_khz(out)}"
    return text


def show_scan(win, scan) -> None:
    """Profile + radar from one ScanResult, with the detector's talkers (``scan.talkers_m``,
    :func:`realtime_tse.models.detection.detect_talkers`: a peak standing ``MIN_CONTRAST_DB`` above the
    profile's median; none on silence or a flat profile)."""
    from realtime_tse.models.detection import MIN_CONTRAST_DB  # noqa: PLC0415
    d = np.asarray(scan.distances_m, dtype=float)
    lv = np.asarray(scan.isdr_db, dtype=float)
    if d.size == 0 or d.size != lv.size:
        return
    talkers = [float(p) for p in scan.talkers_m]
    win.profile.set_profile(d, lv, talkers)
    win.radar.set_profile(d, lv, talkers)
    if talkers:
        text = ("Detected talkers: " + ", ".join(f"{p:.1f} m" for p in sorted(talkers))
                + "   (click one on the radar to listen to it)")
    else:
        text = (f"No clear talker: no peak of the profile stands {MIN_CONTRAST_DB:g} dB "
                "above its median")
    win.talkers_label.setText(text)


def show_model(win, model, distance_m: float | None = None) -> None:
    """What the model is (its file, network, rate, distances, training room), one line of its
    measured figures with a link to its model card, and the distance range of the control, radar
    and profile; the query goes to ``distance_m`` (None: it stays where it is, within the new
    range)."""
    cfg = getattr(model, "config", None)
    sr = getattr(model, "sample_rate", getattr(cfg, "sample_rate", 0))
    lo, hi = getattr(model, "distance_range", (getattr(cfg, "d_min", 0.0), getattr(cfg, "d_max", 5.0)))
    r_spk = getattr(cfg, "r_spk", 0.5)
    prov = getattr(model, "provenance", {}) or {}
    path = getattr(model, "path", None)
    name = f"<b>{html.escape(path.name)}</b><br>" if path is not None else ""
    win.model_info.setText(
        f"{name}{html.escape(network_text(cfg, prov))}<br>{sr / 1000:g} kHz &middot; "
        f"distances {lo:g}\u2013{hi:g} m &middot; talker range \u00b1{r_spk:g} m<br>"
        f"{html.escape(describe_room(prov))}")
    win.model_figures.setText(f"{html.escape(measured_line(prov))} &middot; "
                              f"<a href=\"{MODEL_CARD}\">model card</a>")
    win.distance.set_range(lo, hi)
    win.distance.set_value(distance_m if distance_m is not None else win.distance.value())
    win.radar.set_range(hi, r_spk)
    win.radar.set_query(win.distance.value())
    win.profile.set_range(lo, hi)
    win.profile.set_query(win.distance.value())
