"""Room calibration: measure a room impulse response (RIR) with an exponential sine sweep.

One *take* plays ``repeats`` sweeps through the loudspeaker and records the microphone on the same
clock (a play-record callable, :mod:`realtime_tse.calibration.playrec`; tests pass a double)::

    [lead_s silence][sweep][gap_s silence][sweep][gap_s silence] ...

then (:func:`analyse_take`):

1. checks the level (:func:`check_levels`): clipping, silence, too quiet, the noise floor (measured
   in the lead-in silence); a clipped or silent take, or one drowned in noise, raises
   :class:`LevelError` with what to fix;
2. deconvolves each repeat (pyroomacoustics' ``experimental.deconvolution.deconvolve``: division
   by the sweep's spectrum, bins 40 dB below its peak left out, then a zero-phase band-pass inside
   the sweep's band, :func:`deconvolve_rir`), checks that the repeats' direct paths arrive within
   5 ms of each other (more: the audio stream dropped or inserted audio, :class:`TimelineError`),
   aligns them on the first one's (two device clocks, or a sound server, make the delay drift by
   a few samples per second), averages them (the noise falls by 10 log10(repeats) dB) and checks
   that every repeat's first 50 ms lie within -30 dB of the average, or within 10 dB of what the
   noise alone explains (else a dropout in one sweep: :class:`TimelineError`; :func:`measure_rir`
   plays such takes again);
3. finds the direct path, cuts the RIR where its decay meets the noise floor (:func:`trim_rir`),
   and measures RT60 (pyroomacoustics ``measure_rt60``, the Schroeder decay fitted from -5 dB over
   30 dB and extrapolated to 60 dB: T30), DRR (the figures are :mod:`realtime_tse.models.acoustics`)
   and, when the loop latency is known, the direct-path distance ``(delay - latency) * c`` as a
   check on the tape measure. A decay that does not reach the noise floor within the gap, or an
   RT60 longer than the sweep, raises :class:`DecayError`.

The loop latency (output buffer + converters + input buffer) is the direct-path delay of a take with
the loudspeaker at the microphone (:func:`latency_from`).

Written RIRs start ``PREROLL_S`` (2.5 ms, the 40 samples at 16 kHz that the simulated banks keep
before the direct path, see ``train/rir_simulation.py``) before the sound left the loudspeaker: the direct
path sits at ``tape distance / c + PREROLL_S``, so the RIR agrees with its distance label whatever
the loop latency (the delay-derived distance is only a check). All RIRs of a session keep one scale
(deconvolved against the sweep as played), so their levels compare across distances as long as no
volume is touched.

Units: seconds (s), samples, metres (m), dB; signals float, full scale 1.0. c = 343 m/s
(pyroomacoustics' constant). References: A. Farina, "Simultaneous measurement of impulse response
and distortion with a swept-sine technique" (AES 2000) for the sweep; ISO 3382 for T30 and the
Schroeder integral.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from realtime_tse.models.acoustics import SPEED_OF_SOUND, decay_end, direct_path_index, drr_db, power_db, rt60_s

from .playrec import PlayRecord

__all__ = ["SweepConfig", "LevelReport", "RIRMeasurement", "CalibrationError", "LevelError",
           "DecayError", "TimelineError", "make_sweep", "take_signal", "check_levels",
           "deconvolve_rir", "trim_rir", "analyse_take", "measure_rir", "latency_from",
           "SPEED_OF_SOUND", "PREROLL_S"]

PREROLL_S = 0.0025         # s kept before the direct path's emission time
CLIP_LEVEL = 0.98          # |sample| at or above this counts as clipped (-0.18 dBFS)
SILENT_DB = 6.0            # sweep less than this above the noise floor: nothing arrived
NOISY_DB = 15.0            # ... less than this: too noisy to measure (error)
ADVISE_SNR_DB = 30.0       # ... less than this: a warning with the fix
QUIET_DBFS = -45.0         # sweep RMS below this at the input: a warning (turn up)
DECONV_FLOOR_DB = 40.0     # dB: spectrum bins this far below the sweep's peak are left out
MAX_SPREAD_S = 0.005       # s: repeats of a take whose delays differ more: audio was dropped
MAX_REPEAT_DIFF_DB = -30.0  # dB: repeats whose early RIRs differ more (and 10 dB over the noise)


class CalibrationError(ValueError):
    """A take that cannot give a trustworthy RIR; the message says what to fix."""


class LevelError(CalibrationError):
    """Clipped, silent or noise-drowned recording."""


class DecayError(CalibrationError):
    """The room's decay does not fit the sweep or the gap (sweep shorter than the RT60, ...)."""


class TimelineError(CalibrationError):
    """The repeats of one take disagree on the delay: the audio stream dropped or inserted audio."""


@dataclass(frozen=True)
class SweepConfig:
    """How one take sounds. Units: Hz, seconds, dBFS.

    Attributes:
        sample_rate: Hz of playback, recording and the written RIRs.
        sweep_s: length of one exponential sweep (s); at least the room's RT60.
        f_lo_hz, f_hi_hz: sweep band (Hz); f_hi_hz None = Nyquist.
        fade_s: Hann fade in and out of the sweep (s).
        level_dbfs: peak level of the played sweep (dBFS).
        repeats: sweeps per take, averaged.
        gap_s: silence after each sweep (s): must hold the loop latency plus the room's decay.
        lead_s: silence before the first sweep (s): the noise floor is measured there.
    """

    sample_rate: int = 48000
    sweep_s: float = 3.0
    f_lo_hz: float = 40.0
    f_hi_hz: float | None = None
    fade_s: float = 0.02
    level_dbfs: float = -12.0
    repeats: int = 3
    gap_s: float = 1.5
    lead_s: float = 1.0

    def __post_init__(self):
        fs = self.sample_rate
        if not 8000 <= fs <= 192000:
            raise ValueError(f"sample_rate {fs} Hz: use 8000 to 192000 Hz")
        if not self.sweep_s >= 0.5:
            raise ValueError(f"sweep_s {self.sweep_s} s: a sweep needs at least 0.5 s")
        f_hi = self.f_hi_hz if self.f_hi_hz is not None else fs / 2
        if not 1.0 <= self.f_lo_hz < f_hi <= fs / 2:
            raise ValueError(f"sweep band {self.f_lo_hz:g} to {f_hi:g} Hz: need 1 <= f_lo < f_hi "
                             f"<= {fs / 2:g} Hz (half the sample rate)")
        if not 0 <= self.fade_s < self.sweep_s / 4:
            raise ValueError(f"fade_s {self.fade_s} s: between 0 and a quarter of the sweep")
        if not -60.0 <= self.level_dbfs <= -1.0:
            raise ValueError(f"level {self.level_dbfs} dBFS: use -60 to -1 dBFS")
        if not 1 <= self.repeats <= 32:
            raise ValueError(f"repeats {self.repeats}: use 1 to 32")
        if not self.gap_s >= 0.2:
            raise ValueError(f"gap_s {self.gap_s} s: at least 0.2 s (latency + the room's decay)")
        if not self.lead_s >= 0.2:
            raise ValueError(f"lead_s {self.lead_s} s: at least 0.2 s (the noise floor is measured "
                             "there)")

    @property
    def sweep_n(self) -> int:
        return int(np.floor(self.sweep_s * self.sample_rate))

    @property
    def gap_n(self) -> int:
        return int(round(self.gap_s * self.sample_rate))

    @property
    def lead_n(self) -> int:
        return int(round(self.lead_s * self.sample_rate))

    @property
    def band_hz(self) -> tuple[float, float]:
        """The band the RIRs are kept in (Hz): 1.5 x f_lo to 0.9 x f_hi (or Nyquist)."""
        hi = self.f_hi_hz if self.f_hi_hz is not None else self.sample_rate / 2
        return 1.5 * self.f_lo_hz, 0.9 * hi

    @property
    def take_s(self) -> float:
        """Length of one take in seconds."""
        return self.lead_s + self.repeats * (self.sweep_s + self.gap_s)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SweepConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def replace(self, **changes) -> "SweepConfig":
        return dataclasses.replace(self, **changes)


@dataclass
class LevelReport:
    """Levels of one take's recording (dBFS = 20 log10 of the amplitude re full scale 1.0).

    peak_dbfs: highest sample. clipped: samples at or above CLIP_LEVEL. sweep_dbfs: RMS over the
    sweeps and their gaps, per second of sweep. noise_dbfs: RMS of the lead-in silence.
    snr_db: sweep_dbfs - noise_dbfs. advice: warnings with their fix (the take is still usable).
    """

    peak_dbfs: float
    clipped: int
    sweep_dbfs: float
    noise_dbfs: float
    snr_db: float
    advice: list[str] = field(default_factory=list)


@dataclass
class RIRMeasurement:
    """One measured RIR and its figures.

    Attributes:
        distance_m: the tape distance given for the take (m).
        rir: float32 [L], the trimmed RIR (direct path at ``direct_s``).
        sample_rate: Hz.
        delay_s: direct-path delay in the recording (loop latency + travel time), s.
        direct_s: where the direct path sits in ``rir`` (s).
        rt60_s: T30 extrapolated to 60 dB (s). drr_db: direct-to-reverberant ratio (dB).
        path_m: direct-path distance from the delay (m), None when the latency is unknown.
        latency_s: the loop latency used (s) or None.
        pnr_db: peak-to-noise ratio of the deconvolved RIR (dB): the decay's dynamic range.
        levels: :class:`LevelReport`. warnings: what the user should know (strings).
        repeat_spread_samples: largest difference of the repeats' direct-path positions.
    """

    distance_m: float
    rir: np.ndarray
    sample_rate: int
    delay_s: float
    direct_s: float
    rt60_s: float
    drr_db: float
    path_m: float | None
    latency_s: float | None
    pnr_db: float
    levels: LevelReport
    warnings: list[str] = field(default_factory=list)
    repeat_spread_samples: float = 0.0

    def summary(self) -> dict:
        """JSON-able figures (no samples)."""
        d = {k: getattr(self, k) for k in ("distance_m", "sample_rate", "delay_s", "direct_s",
                                           "rt60_s", "drr_db", "path_m", "latency_s", "pnr_db",
                                           "repeat_spread_samples")}
        d["rir_samples"] = int(len(self.rir))
        d["levels"] = dataclasses.asdict(self.levels)
        d["warnings"] = list(self.warnings)
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


# ----------------------------------------------------------------------------------- signals
def make_sweep(cfg: SweepConfig) -> np.ndarray:
    """The exponential (log) sine sweep of ``cfg``, ascending, faded, scaled to ``level_dbfs`` peak:
    float64 [cfg.sweep_n] (pyroomacoustics ``experimental.signals.exponential_sweep``)."""
    from pyroomacoustics.experimental.signals import exponential_sweep
    s = exponential_sweep(cfg.sweep_s, cfg.sample_rate, f_lo=cfg.f_lo_hz, f_hi=cfg.f_hi_hz,
                          fade=cfg.fade_s or None, ascending=True)
    return s * (10.0 ** (cfg.level_dbfs / 20.0) / np.max(np.abs(s)))


def take_signal(cfg: SweepConfig) -> tuple[np.ndarray, np.ndarray]:
    """One take's signal and where each sweep starts: (float32 [lead + R * (sweep + gap)] samples,
    int64 [R] start sample of each sweep)."""
    s = make_sweep(cfg)
    period = len(s) + cfg.gap_n
    x = np.zeros(cfg.lead_n + cfg.repeats * period, np.float32)
    offsets = cfg.lead_n + period * np.arange(cfg.repeats, dtype=np.int64)
    for o in offsets:
        x[o:o + len(s)] = s
    return x, offsets


# ----------------------------------------------------------------------------------- levels
def check_levels(rec: np.ndarray, cfg: SweepConfig) -> LevelReport:
    """Level checks of one take's recording ``rec`` (float [M], M = len(take_signal(cfg)[0])).

    Raises:
        LevelError: clipped (turn down), silent (nothing arrived: cable, volume, device, mute) or
            the sweep less than ``NOISY_DB`` above the noise floor (quieter room, louder sweep).
    Returns the :class:`LevelReport`, with advice for a quiet sweep or a high noise floor.
    """
    r = np.asarray(rec, dtype=np.float64)
    if not np.all(np.isfinite(r)):
        raise LevelError("the recording holds NaN/Inf samples: the input device is faulty")
    lead = cfg.lead_n
    noise = r[int(0.1 * lead):lead]
    after = r[lead:]
    peak = float(np.max(np.abs(r))) if len(r) else 0.0
    clipped = int(np.count_nonzero(np.abs(r) >= CLIP_LEVEL))
    noise_db = power_db(np.mean(noise ** 2)) if len(noise) else -200.0
    sweep_db = power_db(np.sum(after ** 2) / max(cfg.repeats * cfg.sweep_n, 1))
    rep = LevelReport(peak_dbfs=power_db(peak ** 2), clipped=clipped, sweep_dbfs=sweep_db,
                      noise_dbfs=noise_db, snr_db=sweep_db - noise_db)
    fig = (f"peak {rep.peak_dbfs:.1f} dBFS, sweep {rep.sweep_dbfs:.1f} dBFS, noise floor "
           f"{rep.noise_dbfs:.1f} dBFS")
    if clipped >= 2:
        raise LevelError(f"the recording clipped ({clipped} samples at full scale; {fig}): turn the "
                         "microphone gain or the loudspeaker volume down, or play the sweep softer "
                         f"(--level-db {cfg.level_dbfs - 6:g})")
    if peak == 0.0 or sweep_db < -100.0 or rep.snr_db < SILENT_DB:
        raise LevelError(f"the recording stayed silent ({fig}): nothing of the sweep reached the "
                         "microphone. Is the loudspeaker connected and turned up, the right input "
                         "and output device chosen, the microphone unmuted?")
    if rep.snr_db < NOISY_DB:
        raise LevelError(f"the sweep is only {rep.snr_db:.0f} dB above the noise floor ({fig}): "
                         "make the room quieter (fans, traffic) or the sweep louder (loudspeaker "
                         "volume, microphone gain)")
    if sweep_db < QUIET_DBFS:
        rep.advice.append(f"the sweep arrives quietly ({rep.sweep_dbfs:.0f} dBFS): turn the "
                          "loudspeaker volume or the microphone gain up for a cleaner RIR")
    if rep.snr_db < ADVISE_SNR_DB:
        rep.advice.append(f"the noise floor is high ({rep.noise_dbfs:.0f} dBFS, "
                          f"{rep.snr_db:.0f} dB below the sweep): a quieter room, a louder sweep "
                          "or more --repeats give a cleaner decay")
    return rep


# ----------------------------------------------------------------------------------- RIR
def deconvolve_rir(y: np.ndarray, sweep: np.ndarray, length: int, fs: int,
                   band_hz: tuple[float, float]) -> np.ndarray:
    """The RIR whose convolution with ``sweep`` gives ``y``: float64 [length].

    ``y``: recording that starts when the sweep starts (float [>= len(sweep)]). pyroomacoustics
    ``experimental.deconvolution.deconvolve`` divides by the sweep's spectrum (linear, zero padded),
    leaving out bins ``DECONV_FLOOR_DB`` below its peak (outside the sweep's band); that hard edge
    rings for hundreds of ms (an ideal loop measured 0.5 s of "RT60"), so the result is band-passed
    (4th-order Butterworth, zero phase: scipy ``sosfiltfilt``) to ``band_hz`` (low, high Hz) inside
    the sweep's band; the ideal loop then measures 0.03 s.
    """
    from pyroomacoustics.experimental.deconvolution import deconvolve
    from scipy.signal import butter, sosfiltfilt
    n = len(y) + len(sweep) - 1
    n += n % 2
    spec = np.abs(np.fft.rfft(np.asarray(sweep, np.float32), n=n)) / np.sqrt(n)
    thresh = float(spec.max()) * 10.0 ** (-DECONV_FLOOR_DB / 20.0)
    h = np.asarray(deconvolve(y, sweep, length=int(length), thresh=thresh), dtype=np.float64)
    sos = butter(4, [float(band_hz[0]), float(band_hz[1])], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, h)


def _shift(h: np.ndarray, k: int) -> np.ndarray:
    """``h`` delayed by ``k`` samples (advanced when negative), zero filled, same length."""
    out = np.zeros_like(h)
    if k >= 0:
        out[k:] = h[:len(h) - k]
    else:
        out[:k] = h[-k:]
    return out


def trim_rir(h: np.ndarray, fs: int, onset: float, start: int) -> tuple[np.ndarray, dict]:
    """Cut a deconvolved RIR ``h`` (float [G], its last 10% noise only) to ``h[start:end]``, where
    ``end`` is where its decay meets the noise floor (:func:`decay_end`), with a 5 ms half-Hann fade
    out; samples before 0 (a negative ``start``) are zeros.

    Returns (float32 [end - start], info) with ``end`` (samples in h), ``noise_db`` (the noise
    floor, dB re the direct path's peak power) and ``pnr_db`` (peak-to-noise ratio, dB).
    Raises DecayError when the decay has not reached the floor near the end of h (the gap after
    the sweep is shorter than latency + decay).
    """
    h = np.asarray(h, dtype=np.float64)
    g = len(h)
    end, noise = decay_end(h, fs, onset)
    peak = float(np.max(h ** 2))
    end = max(end, int(onset) + int(0.005 * fs))
    if end >= int(0.85 * g):
        raise DecayError(f"the RIR has not decayed into the noise floor {g / fs:.2f} s after the "
                         "sweep: the gap after each sweep is too short for this room and this loop "
                         f"latency (then use a longer --gap-s, e.g. {2 * g / fs:.1f}), or the audio "
                         "dropped out during the sweep (then measure again)")
    out = np.zeros(end - start, np.float64)
    lo = max(start, 0)
    out[lo - start:] = h[lo:end]
    nf = min(int(0.005 * fs), len(out) // 4)
    if nf > 1:
        out[-nf:] *= np.hanning(2 * nf)[nf:]
    info = {"end": end, "noise_db": power_db(noise / peak if peak > 0 else 0.0),
            "pnr_db": power_db(peak / noise) if noise > 0 else 200.0}
    return out.astype(np.float32), info


# ----------------------------------------------------------------------------------- takes
def analyse_take(rec: np.ndarray, cfg: SweepConfig, distance_m: float,
                 latency_s: float | None = None) -> RIRMeasurement:
    """Everything from one take's recording ``rec`` (float [M] aligned with
    ``take_signal(cfg)``): levels, deconvolution, trimming, RT60, DRR, direct-path distance.

    ``distance_m``: tape distance (m; 0 for the latency take). ``latency_s``: the loop latency when
    known (s). Raises LevelError, TimelineError or DecayError (all CalibrationError, with the fix).
    """
    fs = cfg.sample_rate
    levels = check_levels(rec, cfg)
    _x, offsets = take_signal(cfg)
    sweep = make_sweep(cfg)
    period = cfg.sweep_n + cfg.gap_n
    r = np.asarray(rec, dtype=np.float64)
    segs = np.stack([r[o:o + period] for o in offsets])
    warnings = list(levels.advice)
    hs = np.stack([deconvolve_rir(seg, sweep, cfg.gap_n, fs, cfg.band_hz) for seg in segs])
    onsets = np.array([direct_path_index(h) for h in hs])
    spread = float(onsets.max() - onsets.min())
    if spread > MAX_SPREAD_S * fs:
        raise TimelineError(f"the {cfg.repeats} sweeps arrived with delays "
                            f"{', '.join(f'{o / fs * 1000:.1f}' for o in onsets)} ms: the audio "
                            "stream dropped or inserted audio during the take (a busy machine or "
                            "sound server); measure again")
    if spread > 1e-3 * fs:
        warnings.append(f"the delay moved by {spread / fs * 1000:.1f} ms during the take (two "
                        "device clocks, or a sound server adjusting its buffers): the sweeps were "
                        "aligned before averaging; the delay is uncertain by as much "
                        f"({spread / fs * SPEED_OF_SOUND:.2f} m)")
    for k in range(1, len(hs)):  # align every repeat's direct path on the first one's
        hs[k] = _shift(hs[k], int(round(onsets[0] - onsets[k])))
    h = hs.mean(axis=0)
    onset = direct_path_index(h)
    if len(hs) > 1:  # the early RIR (direct sound + 50 ms) of every repeat must agree
        a, b = max(int(onset - 0.0025 * fs), 0), int(onset + 0.05 * fs)
        ref = max(float(np.sum(h[a:b] ** 2)), 1e-30)
        diff = max(float(np.sum((hk[a:b] - h[a:b]) ** 2)) for hk in hs)
        noise = float(np.mean(hs[:, int(0.9 * cfg.gap_n):] ** 2))  # per sample, one repeat
        expected = noise * (b - a) * (len(hs) - 1) / len(hs)       # what the noise alone makes
        worst = diff / ref
        if worst > 10.0 ** (MAX_REPEAT_DIFF_DB / 10.0) and diff > 10.0 * expected:
            raise TimelineError(f"the {cfg.repeats} sweeps gave different RIRs (difference "
                                f"{10 * np.log10(worst):.0f} dB re the RIR): audio dropped out during "
                                "the take (a busy machine or sound server), or something moved; "
                                "measure again")
    delay_s = onset / fs
    path_m = None
    if latency_s is not None:
        path_m = (delay_s - latency_s) * SPEED_OF_SOUND
        if path_m < -0.05:
            warnings.append(f"the direct path arrives {-path_m / SPEED_OF_SOUND * 1000:.1f} ms "
                            "before the loop latency measured at the microphone: the latency "
                            "changed (through a sound server it may change when the stream "
                            "restarts or glitches): measure the latency again")
    # the direct path goes to the tape distance's travel time (the distance label of the RIR)
    start = int(round(onset - (distance_m / SPEED_OF_SOUND + PREROLL_S) * fs))
    rir, info = trim_rir(h, fs, onset, start)
    direct_in_rir = onset - start
    rt = rt60_s(rir[max(int(direct_in_rir), 0):], fs)
    if rt > cfg.sweep_s:
        raise DecayError(f"the sweep ({cfg.sweep_s:g} s) is shorter than the room's RT60 "
                         f"({rt:.2f} s): measure again with --sweep-s {np.ceil(rt * 2):g} and "
                         f"--gap-s {np.ceil(rt * 1.5 + 0.5):g}")
    if rt + delay_s > cfg.gap_s:
        raise DecayError(f"the gap after each sweep ({cfg.gap_s:g} s) is shorter than the loop "
                         f"latency plus the RT60 ({delay_s:.2f} + {rt:.2f} s): measure again with "
                         f"--gap-s {np.ceil((rt + delay_s) * 1.5 + 0.5):g}")
    if info["pnr_db"] < 35.0:
        warnings.append(f"the RIR stands only {info['pnr_db']:.0f} dB above its noise floor: RT60 "
                        "is fitted over less than 30 dB of decay; a louder sweep, a quieter room "
                        "or more --repeats help")
    if path_m is not None and distance_m > 0 and abs(path_m - distance_m) > max(0.15, 0.1 * distance_m):
        warnings.append(f"the delay says {path_m:.2f} m but the tape says {distance_m:.2f} m: check "
                        "the tape, or the loop latency (a sound server's may change between "
                        "streams)")
    return RIRMeasurement(distance_m=float(distance_m), rir=rir, sample_rate=fs, delay_s=delay_s,
                          direct_s=direct_in_rir / fs, rt60_s=rt,
                          drr_db=drr_db(rir, fs, direct_in_rir), path_m=path_m,
                          latency_s=latency_s, pnr_db=info["pnr_db"], levels=levels,
                          warnings=warnings, repeat_spread_samples=spread)


def measure_rir(play_record: PlayRecord, cfg: SweepConfig, distance_m: float,
                latency_s: float | None = None, retries: int = 2, say=None) -> RIRMeasurement:
    """Play one take through ``play_record`` and analyse it (:func:`analyse_take`).

    A take whose repeats disagree (:class:`TimelineError`, a glitch of the audio stream) is played
    again, ``retries`` times at most; ``say(msg)`` is told. Other errors propagate:
    :class:`CalibrationError` (level, decay) and ``AudioDeviceError`` (device gone mid-sweep).
    """
    x, _ = take_signal(cfg)
    for attempt in range(retries + 1):
        rec = np.asarray(play_record(x, cfg.sample_rate), dtype=np.float64)
        if rec.shape != x.shape:
            raise ValueError(f"play_record returned {rec.shape} samples for a {x.shape} signal")
        try:
            return analyse_take(rec, cfg, distance_m, latency_s)
        except TimelineError as e:
            if attempt == retries:
                raise
            if say is not None:
                say(f"{e}; playing the take again")
    raise AssertionError  # unreachable


def latency_from(m: RIRMeasurement, distance_m: float = 0.0) -> float:
    """The loop latency (s) from a take with the loudspeaker ``distance_m`` (m, about 0) from the
    microphone: its direct-path delay minus the travel time."""
    return float(m.delay_s - distance_m / SPEED_OF_SOUND)
