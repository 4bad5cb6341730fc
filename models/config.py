"""Model configuration: one dataclass, its presets, JSON round trip.

Presets
-------
``paper``
    Exactly the network of Shi, Yen and Nakadai (arXiv 2412.20144, Sec. II-B and III-B): 16 kHz,
    32 ms frames / 16 ms hop (512 / 256 samples, F = 257), D = 64, H = 64, 4 DQ + 4 TS blocks,
    DEG 32-64-D, bidirectional LSTMs on both axes, global layer norm in the encoder, sigmoid
    magnitude mask. About 1.25 M parameters. Offline only.
``paper-causal``
    The paper's sizes made causal for live use (SPEC.md, "Causal streaming variant"): time LSTMs
    unidirectional with the distance token prepended, convolutions causal in time, per-frame
    normalisation, plus per-channel FiLM conditioning in every DQ block (see ``film``).
``lite-lstm``
    The causal form of the paper's LSTM+DEG baseline (Table II) at 8 kHz: 2 one-directional LSTM
    layers of 256 units on per-frame normalised log-spectra, the DEG token concatenated to every
    frame and scaling/shifting the last LSTM output (FiLM), a sigmoid magnitude mask; about 1.1 M
    parameters. Not the DQ/TS net: it exists because on a CPU it trains about ten times faster per
    step and separated where the lite DQ/TS variants did not (``experiments/FINDINGS.md``);
    the network of the shipped model (``assets/models/lite-lstm-d1.safetensors``).
``lite-causal``
    The small live model for CPUs: 8 kHz (32 ms frames of 256 samples, 16 ms hop), D = 32, H = 32,
    a 64-unit causal time LSTM, 2 DQ + 2 TS. The paper size takes 17 to 21 ms per 16 ms frame on
    this CPU (not real time, PLATFORM.md). At 8 kHz a training step of this model took 16 to 20 s
    against 44 to 62 s at 16 kHz (batch 8 x 2 s, 2 shared cores), and CPU training time is what
    limits quality here; the engine resamples to and from the device rate.

Choices the paper leaves open (written down here, SPEC.md decides the rest)
-----------------------------------------------------------------------------
* ``distance_scale``: the DEG input is ``d_q / distance_scale``; 1 m in every preset, i.e. the
  paper's raw distance in metres (a 5 m scale halved the query effect below at initialisation).
* ``film``: the paper's token alone moves the output by only about -60 to -70 dB between
  d_q = 0.5 m and 4 m at initialisation (measured, tests/test_models_net.py; PLATFORM.md saw the
  same after training). With ``film=True`` each DQ block first scales and shifts every
  time-frequency embedding, ``h[d, t, f] * (1 + gc[d] + gf[f]) + bc[d] + bf[f]``, with per-channel
  and per-bin terms from a third DEG: about -20 to -26 dB at initialisation. ``paper`` keeps
  ``film=False``.
* ``time_hidden``: a causal time LSTM is one-directional, so the live presets may give it more
  units than ``hidden``.
* ``band_widths``: bins merged into bands before the DQ/TS blocks and split back before the
  decoder (:mod:`realtime_tse.models.bands`), so the LSTMs run on K bands instead of F bins; ``()`` keeps the
  paper's per-bin blocks. ``lite-causal-bs`` uses :func:`realtime_tse.models.bands.default_band_widths`.
* ``input_compress``: the magnitude of the mixture STFT fed to the encoder is raised to this power
  (phase kept); 1.0 = the paper's raw real/imag input. Compression to 0.5 is the usual way to keep
  quiet bins visible; the mask is always applied to the uncompressed STFT.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from . import latency

CONFIG_VERSION = 1

ARCHS = ("dqts", "lstm_deg")
MASKS = ("sigmoid_mag",)
NORMS = ("gln", "frame")


@dataclass
class ModelConfig:
    """Every setting needed to rebuild a model. Units: Hz, samples, metres.

    Raises:
        ValueError: from :meth:`validate` for inconsistent settings.
    """

    preset: str = "paper"
    arch: str = "dqts"              # "dqts" (DQTSNet, models/net.py) or "lstm_deg" (LSTMDEG, models/lstm_deg.py)
    version: int = CONFIG_VERSION
    sample_rate: int = 16000        # Hz
    n_fft: int = 512                # samples per frame (32 ms at 16 kHz)
    hop: int = 256                  # samples (16 ms at 16 kHz)
    d_model: int = 64               # D, channels of each TF embedding
    hidden: int = 64                # H, hidden units per LSTM direction
    time_hidden: int = 0            # causal time-LSTM units (0 = hidden); unidirectional, so wider
    n_dq: int = 4                   # Distance Query blocks
    n_ts: int = 4                   # Temporal-Spectral blocks
    deg_units: tuple = (32, 64)     # DEG hidden layers; the last layer outputs D
    causal: bool = False
    norm: str = "gln"               # encoder norm: "gln" (global, paper) or "frame" (causal)
    film: bool = False
    mask: str = "sigmoid_mag"
    input_compress: float = 1.0
    distance_scale: float = 1.0     # metres; DEG input = d_q / distance_scale
    r_spk: float = 0.5              # metres, speaker range of eq. 3
    d_min: float = 0.0              # metres, query range the model was trained for
    d_max: float = 5.0
    baseline_layers: int = 4        # lstm_deg only
    baseline_hidden: int = 256      # lstm_deg only (per direction)
    film_every_layer: bool = False  # lstm_deg with film: FiLM by the token after every LSTM layer
    distance_bins: int = 0          # lstm_deg: a training-only head naming the talkers' distances
    distance_bin_m: float = 0.5     # metres per bin of that head (bin k: [k, k + 1) x distance_bin_m)
    reprime_frames: int = 32        # frames re-run on a query change when streaming (0.5 s at 16 ms)
    band_widths: tuple = ()         # bins per band (sum F); () = one position per bin (the paper)
    extra: dict = field(default_factory=dict)

    # -- derived -----------------------------------------------------------------------------
    @property
    def n_freq(self) -> int:
        """Number of STFT bins F = n_fft / 2 + 1."""
        return self.n_fft // 2 + 1

    @property
    def n_pos(self) -> int:
        """Positions along frequency inside the DQ/TS blocks: the bands when ``band_widths`` is
        set, else the F bins."""
        return len(self.band_widths) if self.band_widths else self.n_freq

    @property
    def frame_s(self) -> float:
        """Frame length in seconds."""
        return self.n_fft / self.sample_rate

    @property
    def hop_s(self) -> float:
        """Hop in seconds."""
        return self.hop / self.sample_rate

    def algorithmic_latency_s(self, block_samples: int) -> float:
        """The algorithmic latency (seconds) of streaming in blocks of ``block_samples`` samples:
        the block plus the model's look-ahead, ``(block + n_fft - hop) / sample_rate``. An input
        sample waits for its block to fill, and a hop of output is final only when the frame after
        it has arrived (``n_fft - hop`` more samples). The one definition
        (:func:`realtime_tse.models.latency.algorithmic_latency_s`, as the networks' own
        ``stream_delay`` and ``algorithmic_latency_s``): the streamer, the live engine, the CLI and
        the window all report this figure (64 ms blocks of the 8 kHz presets: 64 + 32 - 16 = 80 ms). Buffering for blocks of any length, devices and sound servers add
        to it and are reported apart.

        Raises:
            ValueError: ``block_samples`` not positive.
        """
        return latency.algorithmic_latency_s(self, block_samples)

    # -- validation / presets / JSON -----------------------------------------------------------
    def validate(self) -> "ModelConfig":
        """Check consistency; returns self. Raises ValueError naming the bad field."""
        if self.version != CONFIG_VERSION:
            raise ValueError(f"unknown config version {self.version!r} (this code reads {CONFIG_VERSION})")
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; expected one of {ARCHS}")
        if self.mask not in MASKS:
            raise ValueError(f"unknown mask {self.mask!r}; expected one of {MASKS}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; expected one of {NORMS}")
        if self.n_fft != 2 * self.hop:
            raise ValueError(f"n_fft must be 2 * hop (50% overlap sqrt-Hann), got {self.n_fft}, {self.hop}")
        if self.causal and self.norm != "frame":
            raise ValueError("a causal model needs norm='frame'")
        if not (0 <= self.d_min < self.d_max):
            raise ValueError(f"bad distance range [{self.d_min}, {self.d_max}] m")
        if self.sample_rate <= 0 or self.d_model <= 0 or self.hidden <= 0:
            raise ValueError("sample_rate, d_model and hidden must be positive")
        if self.input_compress <= 0 or self.input_compress > 1:
            raise ValueError("input_compress must be in (0, 1]")
        if self.distance_bins < 0 or self.distance_bin_m <= 0:
            raise ValueError(f"distance_bins must be >= 0 and distance_bin_m positive, got "
                             f"{self.distance_bins}, {self.distance_bin_m}")
        if self.distance_bins and self.arch != "lstm_deg":
            raise ValueError("the distance head (distance_bins) exists for arch lstm_deg only")
        if self.band_widths:
            from .bands import check_band_widths
            check_band_widths(self.band_widths, self.n_freq)
        return self

    @staticmethod
    def preset_names() -> tuple:
        return tuple(_PRESETS)

    @classmethod
    def preset(cls, name: str, **overrides) -> "ModelConfig":
        """Build a named preset ("paper", "paper-causal", "lite-causal", "baseline").

        Raises:
            ValueError: unknown preset name.
        """
        if name not in _PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {tuple(_PRESETS)}")
        kw = dict(_PRESETS[name])
        kw.update(overrides)
        return cls(preset=name, **kw).validate()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["deg_units"] = list(self.deg_units)
        d["band_widths"] = list(self.band_widths)
        return d

    def to_json(self) -> str:
        """Serialise to a JSON string (stored in checkpoint metadata)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Rebuild from :meth:`to_dict` output. Raises ValueError on unknown keys or version."""
        d = dict(d)
        if d.get("version") != CONFIG_VERSION:
            raise ValueError(f"unknown config version {d.get('version')!r} (this code reads {CONFIG_VERSION})")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}")
        if "deg_units" in d:
            d["deg_units"] = tuple(d["deg_units"])
        if "band_widths" in d:
            d["band_widths"] = tuple(int(w) for w in d["band_widths"])
        return cls(**d).validate()

    @classmethod
    def from_json(cls, s: str) -> "ModelConfig":
        """Inverse of :meth:`to_json`. Raises ValueError on bad JSON, keys or version."""
        try:
            d = json.loads(s)
        except json.JSONDecodeError as e:
            raise ValueError(f"config is not valid JSON: {e}") from e
        if not isinstance(d, dict):
            raise ValueError("config JSON must be an object")
        return cls.from_dict(d)


_PRESETS: dict[str, dict] = {
    "paper": dict(),
    "paper-causal": dict(causal=True, norm="frame", film=True, input_compress=0.5),
    "lite-causal": dict(causal=True, norm="frame", film=True, input_compress=0.5,
                        sample_rate=8000, n_fft=256, hop=128,
                        d_model=32, hidden=32, time_hidden=64, n_dq=2, n_ts=2),
    "baseline": dict(arch="lstm_deg", n_dq=0, n_ts=0),
}
# The causal LSTM+DEG (models/lstm_deg.py): 2 one-directional LSTM layers of 256 on per-frame
# log-spectra and their per-bin changes, the DEG token on every frame and as FiLM; 1.14 M parameters.
_PRESETS["lite-lstm"] = dict(arch="lstm_deg", causal=True, norm="frame", film=True, sample_rate=8000, n_fft=256,
                             hop=128, d_model=32, n_dq=0, n_ts=0, baseline_layers=2, baseline_hidden=256)
# lite-causal with the band-split front end (33 bands instead of 129 bins at 8 kHz)
_PRESETS["lite-causal-bs"] = dict(_PRESETS["lite-causal"], band_widths=(
    2,) * 16 + (4,) * 8 + (8,) * 8 + (1,))
