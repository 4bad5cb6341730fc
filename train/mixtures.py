"""On-the-fly two-talker mixtures with distance queries (paper II-A eq. 1 to 4, III-A, III-B).

Each mixture ``y = x_1 + x_2`` holds two talkers from *different speakers*, each on a *different RIR
of the same group* (same room, RT60 and microphone: D1 the one room, D2 the same microphone, D3 the
same room; see :mod:`realtime_tse.train.rooms`). ``x_k = s_k * h_k`` is the dry utterance convolved with the RIR
(``scipy.signal.fftconvolve``: FFT convolution, exact and fast for RIRs of thousands of taps), then
cut to ``N = round(clip_s * sample_rate)`` samples at a random offset (zero padded at a random
offset when shorter), then scaled so its RMS over the clip is uniform in [-25, -20] dBFS
(dBFS = 20 log10 RMS, full scale 1.0; paper III-A).

Query rules (SPEC "Data"; paper eq. 3, 4):

* presence (probability ``p_presence``; the paper uses 0.9 for the first half of training, 0.7
  after: set ``sampler.p_presence``): pick talker ``k``, ``d_q = d_k + U(-r_spk, r_spk)`` (clipped at
  0 m, still within ``r_spk`` of ``d_k``); target = sum of every talker with ``|d_j - d_q| <= r_spk``:
  kind "single" (one talker) or "both" (both talkers, target = the whole mixture).
* absence: ``d_q`` uniform over the part of ``[0, d_range]`` farther than ``r_spk`` from every
  talker (``d_range``: the group's largest talker distance, or the sampler's ``d_range``); the pair is
  redrawn when that part is empty. Target = zeros, kind "absence".
* ``min_gap_m`` (curriculum): the two talkers' distances differ by at least this much.

Choices written down: the whole utterance is convolved before cropping, so a clip that starts
mid-utterance carries the reverberant tail of the speech before it; a crop whose RMS is below 5 %
of the whole utterance's (a pause) is redrawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Mixture",
    "MixtureSampler",
    "active_talkers",
    "target_for_query",
    "query_kind",
    "absence_intervals",
    "sample_absence_query",
    "sample_presence_query",
    "rms_dbfs",
    "fit_length",
    "KINDS",
]

KINDS = ("single", "both", "absence")
_EPS = 1e-9


# --------------------------------------------------------------------------- pure rules

def active_talkers(distances, d_q: float, r_spk: float) -> np.ndarray:
    """bool [K]: talkers with ``|d_k - d_q| <= r_spk`` (eq. 3); distances and d_q in metres."""
    d = np.asarray(distances, dtype=float)
    return np.abs(d - float(d_q)) <= float(r_spk) + _EPS


def target_for_query(sources, distances, d_q: float, r_spk: float) -> np.ndarray:
    """Target of query ``d_q``: sum of the reverberant ``sources`` [K, N] of the active talkers.

    Zeros [N] when no talker is within ``r_spk`` of ``d_q`` (eq. 4). Returns float32 [N].
    """
    s = np.asarray(sources, dtype=np.float32)
    act = active_talkers(distances, d_q, r_spk)
    if s.ndim != 2 or s.shape[0] != act.shape[0]:
        raise ValueError(f"sources must be [K, N] with K = len(distances) = {act.shape[0]}, "
                         f"got {s.shape}")
    if not act.any():
        return np.zeros(s.shape[1], dtype=np.float32)
    return s[act].sum(axis=0).astype(np.float32)


def query_kind(active) -> str:
    """"absence" (no active talker), "single" (one) or "both" (two or more)."""
    n = int(np.count_nonzero(active))
    return "absence" if n == 0 else ("single" if n == 1 else "both")


def absence_intervals(distances, r_spk: float, d_hi: float, d_lo: float = 0.0
                      ) -> list[tuple[float, float]]:
    """Parts of ``[d_lo, d_hi]`` farther than ``r_spk`` from every distance: ``[(a, b), ...]``."""
    blocked = sorted((d - r_spk, d + r_spk) for d in np.asarray(distances, dtype=float))
    out, a = [], float(d_lo)
    for lo, hi in blocked:
        if lo > a:
            out.append((a, min(lo, d_hi)))
        a = max(a, hi)
        if a >= d_hi:
            break
    if a < d_hi:
        out.append((a, float(d_hi)))
    # drop empty pieces and keep a hair away from the closed boundaries
    return [(lo + 1e-6, hi - 1e-6) for lo, hi in out if hi - lo > 2e-6]


def sample_absence_query(rng: np.random.Generator, distances, r_spk: float, d_hi: float,
                         d_lo: float = 0.0) -> float | None:
    """``d_q`` uniform over :func:`absence_intervals`, or None when they are empty."""
    iv = absence_intervals(distances, r_spk, d_hi, d_lo)
    if not iv:
        return None
    lens = np.array([b - a for a, b in iv])
    k = int(rng.choice(len(iv), p=lens / lens.sum()))
    return float(rng.uniform(*iv[k]))


def sample_presence_query(rng: np.random.Generator, distances, r_spk: float,
                          k: int | None = None) -> tuple[float, int]:
    """``(d_q, k)``: talker ``k`` (random if None), ``d_q = max(0, d_k + U(-r_spk, r_spk))``."""
    d = np.asarray(distances, dtype=float)
    if k is None:
        k = int(rng.integers(len(d)))
    return max(0.0, float(d[k] + rng.uniform(-r_spk, r_spk))), k


def rms_dbfs(x) -> float:
    """RMS level in dBFS (20 log10 of the RMS, full scale 1.0); -inf for silence."""
    r = float(np.sqrt(np.mean(np.square(np.asarray(x, dtype=np.float64)))))
    return 20.0 * np.log10(r) if r > 0 else float("-inf")


def fit_length(x: np.ndarray, n: int, rng: np.random.Generator, frac: bool = False) -> np.ndarray:
    """Random crop (``len(x) >= n``) or zero pad at a random offset to exactly ``n`` samples.

    ``frac``: draw the offset as a fraction of the free length (``rng.random()``), so that two
    signals of nearly equal length (one utterance through two RIRs) get nearly the same crop."""
    if len(x) >= n:
        s = int(rng.random() * (len(x) - n + 1)) if frac else int(rng.integers(0, len(x) - n + 1))
        return x[s:s + n]
    out = np.zeros(n, dtype=x.dtype)
    s = int(rng.integers(0, n - len(x) + 1))
    out[s:s + len(x)] = x
    return out


# --------------------------------------------------------------------------- sampler

@dataclass
class Mixture:
    """One training example. Arrays float32; distances in metres; levels in dBFS.

    mix [N], target [N], sources [2, N] (reverberant, scaled; ``mix = sources.sum(0)``),
    d_q (m), kind ("single" | "both" | "absence"), distances [2] (m), active bool [2],
    rir_indices, utterances, speakers (per talker), levels_db [2], group, d_range (m).
    """

    mix: np.ndarray
    target: np.ndarray
    d_q: float
    kind: str
    distances: np.ndarray
    sources: np.ndarray
    active: np.ndarray
    rir_indices: tuple[int, int] = (0, 0)
    utterances: tuple[int, int] = (0, 0)
    speakers: tuple[str, str] = ("", "")
    levels_db: np.ndarray = field(default_factory=lambda: np.zeros(2))
    group: int = 0
    d_range: float = 0.0


class MixtureSampler:
    """Draws :class:`Mixture` examples from an RIR bank and a speech corpus.

    Args:
        bank: :class:`realtime_tse.train.rirbank.RIRBank` or :class:`realtime_tse.train.measured.MeasuredRIRs` (anything
            with ``meta_of(i)`` giving ``group``, ``distance``, ``d_range`` and ``rir(i, sr)``).
        bank_indices: the RIR indices to use, e.g. ``bank.indices("train")``.
        corpus: :class:`realtime_tse.train.corpus.SpeechCorpus` with at least two speakers.
        sample_rate: output rate (Hz); RIRs and speech are resampled to it.
        clip_s: clip length in seconds.
        r_spk: speaker distance range (m), eq. 3.
        p_presence: probability of a presence query (mutable attribute, for the schedule).
        min_gap_m: minimum difference of the two talkers' distances (m), mutable (curriculum).
        near_boost_db: dB added to the nearer talker's level after the uniform draw, mutable
            (a training curriculum; 0 = SPEC's equal-level rule).
        p_single: probability that a mixture holds talker 0 alone (mutable; a training option,
            default 0 = always two talkers as in the paper). Talker 1's source is then zeros and
            its distance ``inf`` (never within ``r_spk`` of a query); a query drawn around talker 1
            becomes an absence query, so a paired draw shows one talker queried at its distance
            and away from it.
        seed: seed of ``sample()``'s generator and of ``sample_at()``.
        level_db: RMS range of each reverberant talker (dBFS).
        d_range: upper end of absence queries (m); None: each group's own ``d_range``.
    Raises ValueError when no group holds two RIRs or the corpus has fewer than two speakers.
    """

    def __init__(self, bank, bank_indices, corpus, sample_rate: int, clip_s: float,
                 r_spk: float = 0.5, p_presence: float = 0.9, min_gap_m: float = 0.0,
                 seed: int = 0, level_db: tuple[float, float] = (-25.0, -20.0),
                 d_range: float | None = None):
        self.bank, self.corpus = bank, corpus
        self.sample_rate, self.clip_s = int(sample_rate), float(clip_s)
        self.n = int(round(self.clip_s * self.sample_rate))
        if self.n < 1:
            raise ValueError(f"clip_s={clip_s} gives no samples at {sample_rate} Hz")
        self.r_spk, self.p_presence, self.min_gap_m = float(r_spk), float(p_presence), float(min_gap_m)
        self.near_boost_db, self.p_single = 0.0, 0.0
        self.augment = None   # realtime_tse.train.augment.DryAugment applied to each dry utterance, or None
        self.seed, self.level_db, self.d_range = int(seed), tuple(level_db), d_range
        self.rng = np.random.default_rng(self.seed)
        idx = np.asarray(bank_indices, dtype=np.int64)
        groups: dict[int, list[int]] = {}
        for i in idx:
            groups.setdefault(int(bank.meta_of(int(i))["group"]), []).append(int(i))
        self._groups = {g: np.array(v, dtype=np.int64) for g, v in groups.items() if len(v) >= 2}
        if not self._groups:
            raise ValueError(f"no room/microphone group holds two of the {len(idx)} RIRs given: "
                             "a mixture needs two RIRs of one group")
        self._dist = {g: np.array([bank.meta_of(int(i))["distance"] for i in v])
                      for g, v in self._groups.items()}
        self._grange = {g: float(bank.meta_of(int(v[0]))["d_range"]) for g, v in self._groups.items()}
        self._eligible = np.concatenate(list(self._groups.values()))
        self._group_of = {int(i): g for g, v in self._groups.items() for i in v}
        self._pos_in_group = {int(i): k for g, v in self._groups.items() for k, i in enumerate(v)}
        if len(corpus.speakers) < 2:
            raise ValueError(f"{corpus!r}: a mixture needs two speakers")

    # ------------------------------------------------------------------ internals
    def _pick_pair(self, rng: np.random.Generator, presence: bool) -> tuple[int, int, int]:
        for _ in range(10_000):
            i = int(self._eligible[rng.integers(len(self._eligible))])
            g = self._group_of[i]
            members, dist = self._groups[g], self._dist[g]
            di = dist[self._pos_in_group[i]]
            ok = np.abs(dist - di) >= self.min_gap_m
            ok[self._pos_in_group[i]] = False
            if not ok.any():
                continue
            j = int(members[rng.choice(np.flatnonzero(ok))])
            if not presence:
                dj = dist[self._pos_in_group[j]]
                if not absence_intervals([di, dj], self.r_spk, self._range(g)):
                    continue
            return i, j, g
        raise RuntimeError(f"could not draw a talker pair (min_gap_m={self.min_gap_m}, "
                           f"presence={presence}) after 10000 tries: too few RIRs or a gap too "
                           "large for the rooms")

    def _range(self, g: int) -> float:
        return float(self.d_range) if self.d_range is not None else self._grange[g]

    def _talker(self, rng: np.random.Generator, speaker: str, rir: np.ndarray, frac: bool = False
                ) -> tuple[np.ndarray, int]:
        from scipy.signal import fftconvolve

        utts = self.corpus.utterances_of(speaker)
        for _ in range(20):
            u = int(utts[rng.integers(len(utts))])
            dry = self.corpus.load(u, self.sample_rate)
            if self.augment is not None and self.augment.active:
                from .augment import augment_dry
                dry = augment_dry(dry, rng, self.augment)
            rev = fftconvolve(dry.astype(np.float64), rir.astype(np.float64))
            full_rms = np.sqrt(np.mean(rev ** 2)) if len(rev) else 0.0
            if not full_rms > 0:
                continue
            for _ in range(5):
                x = fit_length(rev, self.n, rng, frac)
                r = np.sqrt(np.mean(x ** 2))
                if r > 0.05 * full_rms * min(1.0, len(rev) / self.n) and r > 1e-7:
                    return x, u
        raise RuntimeError(f"speaker {speaker!r}: no utterance gave a non-silent clip")

    # ------------------------------------------------------------------ public
    def sample(self, rng: np.random.Generator | None = None, presence: bool | None = None,
               talker: int | None = None, query_rng: np.random.Generator | None = None,
               swap_voices: bool = False, voice_seed: tuple | None = None) -> Mixture:
        """One mixture. ``rng``: generator to use (default the sampler's own);
        ``presence``: force a presence (True) or absence (False) query (default: ``p_presence``);
        ``talker``: the talker (0 or 1) a presence query is drawn around (default random);
        ``query_rng``: a separate generator for the query, so that one mixture can be drawn again
        with another query (:meth:`sample_paired_at`);
        ``swap_voices``: put the two drawn voices (speaker, utterance, crop, augmentation, level)
        at each other's positions; ``voice_seed``: a tuple of ints seeding each voice's own
        generator (utterance, crop, augmentation), so that a voice is the same clip at either
        position (:meth:`sample_swapped_at`)."""
        rng = self.rng if rng is None else rng
        if presence is None:
            presence = bool(rng.random() < self.p_presence)
        if query_rng is not None:
            # the mixture must not depend on the query: pick the pair as for presence, and fall
            # back to presence when no absence query fits this pair
            i, j, g = self._pick_pair(rng, True)
        else:
            i, j, g = self._pick_pair(rng, presence)
        spk = rng.choice(len(self.corpus.speakers), size=2, replace=False)
        speakers = (self.corpus.speakers[int(spk[0])], self.corpus.speakers[int(spk[1])])
        sources = np.zeros((2, self.n), dtype=np.float32)
        levels = rng.uniform(self.level_db[0], self.level_db[1], size=2)
        slots = (1, 0) if swap_voices else (0, 1)          # which drawn voice stands at position k
        speakers = (speakers[slots[0]], speakers[slots[1]])
        levels = levels[list(slots)]
        if self.near_boost_db:
            d_i, d_j = self.bank.meta_of(i)["distance"], self.bank.meta_of(j)["distance"]
            levels[0 if d_i <= d_j else 1] += self.near_boost_db
        utts = []
        for k, (ri, sp) in enumerate(zip((i, j), speakers)):
            vrng = rng if voice_seed is None else np.random.default_rng([*voice_seed, slots[k]])
            x, u = self._talker(vrng, sp, self.bank.rir(ri, self.sample_rate), voice_seed is not None)
            x = x * (10.0 ** (levels[k] / 20.0) / np.sqrt(np.mean(x ** 2)))
            sources[k] = x.astype(np.float32)
            utts.append(u)
        distances = np.array([self.bank.meta_of(i)["distance"], self.bank.meta_of(j)["distance"]])
        if self.p_single > 0 and rng.random() < self.p_single:   # talker 0 alone
            sources[1], distances[1] = 0.0, np.inf
            presence, talker = presence and talker != 1, 0
        qrng = rng if query_rng is None else query_rng
        d_q = None if presence else sample_absence_query(qrng, distances, self.r_spk, self._range(g))
        if d_q is None:  # presence, or (paired draw only) no room for an absence query here
            d_q, _ = sample_presence_query(qrng, distances, self.r_spk, k=talker)
        act = active_talkers(distances, d_q, self.r_spk)
        return Mixture(
            mix=sources.sum(axis=0), target=target_for_query(sources, distances, d_q, self.r_spk),
            d_q=float(d_q), kind=query_kind(act), distances=distances, sources=sources, active=act,
            rir_indices=(i, j), utterances=(utts[0], utts[1]), speakers=speakers,
            levels_db=levels, group=g, d_range=self._range(g))

    def sample_at(self, k: int, presence: bool | None = None) -> Mixture:
        """Mixture number ``k``: deterministic from ``(seed, k)`` (fixed validation/test sets,
        map-style datasets, one generator per data-loader worker not needed)."""
        return self.sample(np.random.default_rng([self.seed, 1, int(k)]), presence=presence)

    def sample_paired_at(self, k: int) -> Mixture:
        """Example ``k`` of a paired sequence: examples ``2m`` and ``2m + 1`` hold the *same*
        mixture ``m``, queried around talker 0 and talker 1 respectively (each an absence query
        instead with probability ``1 - p_presence``). One batch then shows the network the same
        input with two queries and two different targets, so only the query can tell them apart.
        Deterministic from ``(seed, k)``."""
        m, j = divmod(int(k), 2)
        qrng = np.random.default_rng([self.seed, 4, m, j])
        presence = bool(qrng.random() < self.p_presence)
        return self.sample(np.random.default_rng([self.seed, 3, m]), presence=presence, talker=j,
                           query_rng=qrng)

    def sample_swapped_at(self, k: int) -> Mixture:
        """Example ``k`` of a swap-consistent sequence: examples ``4m .. 4m + 3`` share one pair of
        positions (RIRs) and one pair of voices (speaker, utterance, crop, augmentation, level).
        ``4m`` and ``4m + 1`` are the rendering with voice A at the first position, queried around
        position 0 and position 1; ``4m + 2`` and ``4m + 3`` the rendering with the voices swapped,
        queried with the *same* two queries. A query then means a position, never a voice: whoever
        stands there is the target, so a network that answers by voice is wrong in one rendering of
        every pair. Each query pair is an absence query instead with probability ``1 - p_presence``
        (the same absence query in both renderings). Deterministic from ``(seed, k)``."""
        m, r = divmod(int(k), 4)
        swap, j = divmod(r, 2)
        qrng = np.random.default_rng([self.seed, 6, m, j])     # the same query in both renderings
        presence = bool(qrng.random() < self.p_presence)
        return self.sample(np.random.default_rng([self.seed, 5, m]), presence=presence, talker=j,
                           query_rng=qrng, swap_voices=bool(swap), voice_seed=(self.seed, 7, m))

    def sample_batch(self, n: int, start: int | None = None) -> dict:
        """``n`` mixtures as torch tensors: ``mix`` [B,N], ``target`` [B,N], ``d_q`` [B],
        ``distances`` [B,2], ``sources`` [B,2,N] (float32) and ``kind`` (list of str).

        ``start``: use ``sample_at(start + b)`` (deterministic) instead of the running generator.
        """
        import torch

        ms = [self.sample() if start is None else self.sample_at(start + b) for b in range(n)]
        return {
            "mix": torch.from_numpy(np.stack([m.mix for m in ms])),
            "target": torch.from_numpy(np.stack([m.target for m in ms])),
            "d_q": torch.tensor([m.d_q for m in ms], dtype=torch.float32),
            "distances": torch.tensor(np.stack([m.distances for m in ms]), dtype=torch.float32),
            "sources": torch.from_numpy(np.stack([m.sources for m in ms])),
            "kind": [m.kind for m in ms],
        }
