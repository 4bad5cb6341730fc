"""Speech corpora: dry utterances grouped by speaker, speaker-disjoint splits.

Paper III-A: speech from LibriLight with 128 / 48 / 64 different speakers for training, validation
and testing (240 speakers). This project's corpus is speechocean762 (``../shared/data/speechocean762``,
220 speaker folders of 16 kHz FLAC plus ``utterances.csv``; CC BY 4.0, credit it), read in place,
never copied into the repository.

Two ways in:

* ``SpeechCorpus.from_folder(root)``: every audio file soundfile can read (wav, flac, ogg, aiff, ...)
  below ``root``; the speaker is the *top-level* folder under ``root``, so both ``speaker/file.flac``
  and LibriSpeech's ``speaker/chapter/file.flac`` work. Files lying directly in ``root`` are an error.
* ``SpeechCorpus.from_csv(path)``: columns ``path,speaker`` (more columns are ignored); relative paths
  are relative to the CSV's folder.

``load(i, sample_rate)`` returns float32 mono in [-1, 1]: multi-channel files are averaged, other
rates resampled with soxr (high quality). Errors are ``CorpusError`` (a ValueError) naming the file.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SpeechCorpus", "CorpusError", "AUDIO_EXTENSIONS", "PAPER_SPEAKER_SPLIT"]

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".au", ".caf",
                              ".w64", ".rf64", ".mp3", ".opus"})
PAPER_SPEAKER_SPLIT = (128, 48, 64)  # train / val / test speakers in the paper


class CorpusError(ValueError):
    """An empty corpus, a bad CSV, or an audio file that cannot be read."""


@dataclass(frozen=True)
class Utterance:
    path: Path
    speaker: str


class SpeechCorpus:
    """A list of utterances (``path``, ``speaker``).

    Attributes:
        utterances: list of :class:`Utterance`.
        speakers: sorted list of speaker ids.
        name: where it came from (for messages).
    """

    def __init__(self, utterances: list[Utterance], name: str = "corpus"):
        if not utterances:
            raise CorpusError(f"{name}: no utterances")
        self.utterances = list(utterances)
        self.name = name
        self.speakers = sorted({u.speaker for u in self.utterances})
        self._by_speaker: dict[str, list[int]] = {}
        for i, u in enumerate(self.utterances):
            self._by_speaker.setdefault(u.speaker, []).append(i)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_folder(cls, root: str | Path) -> "SpeechCorpus":
        """All audio files below ``root``; speaker = top-level folder name under ``root``.

        Raises CorpusError if ``root`` is missing, holds no audio files, or has audio files directly
        in it (no speaker folder).
        """
        root = Path(root)
        if not root.is_dir():
            raise CorpusError(f"speech folder not found: {root}")
        files = sorted(p for p in root.rglob("*")
                       if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(root).parts))
        if not files:
            raise CorpusError(f"{root}: no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) found "
                              "in speaker folders")
        loose = [p for p in files if p.parent == root]
        if loose:
            raise CorpusError(f"{root}: {len(loose)} audio file(s) lie directly in the folder "
                              f"(e.g. {loose[0].name}); put each speaker's files in a folder named "
                              "after the speaker")
        utts = [Utterance(p, p.relative_to(root).parts[0]) for p in files]
        return cls(utts, name=str(root))

    @classmethod
    def from_csv(cls, path: str | Path) -> "SpeechCorpus":
        """Utterances from a CSV with columns ``path,speaker`` (paths relative to the CSV's folder).

        Raises CorpusError for a missing file, missing columns, empty rows or a listed file that
        does not exist.
        """
        path = Path(path)
        if not path.is_file():
            raise CorpusError(f"corpus CSV not found: {path}")
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            cols = set(reader.fieldnames or [])
            if not {"path", "speaker"} <= cols:
                raise CorpusError(f"{path}: needs columns 'path' and 'speaker', has "
                                  f"{sorted(cols)}")
            utts = []
            for line, row in enumerate(reader, start=2):
                p, spk = (row.get("path") or "").strip(), (row.get("speaker") or "").strip()
                if not p or not spk:
                    raise CorpusError(f"{path}: line {line}: empty path or speaker")
                fp = Path(p) if Path(p).is_absolute() else path.parent / p
                if not fp.is_file():
                    raise CorpusError(f"{path}: line {line}: audio file not found: {fp}")
                utts.append(Utterance(fp, spk))
        if not utts:
            raise CorpusError(f"{path}: no rows")
        return cls(utts, name=str(path))

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.utterances)

    def __repr__(self) -> str:
        return f"SpeechCorpus({self.name!r}, {len(self)} utterances, {len(self.speakers)} speakers)"

    def speaker_of(self, i: int) -> str:
        return self.utterances[i].speaker

    def utterances_of(self, speaker: str) -> list[int]:
        """Indices of one speaker's utterances (KeyError if unknown)."""
        return list(self._by_speaker[speaker])

    def merged(self, other: "SpeechCorpus") -> "SpeechCorpus":
        """This corpus and ``other`` together (e.g. extra training voices beside a corpus's train
        split). Raises CorpusError when a speaker id appears in both (two people under one name)."""
        common = set(self.speakers) & set(other.speakers)
        if common:
            raise CorpusError(f"{other.name}: speaker ids also in {self.name}: {sorted(common)[:5]}")
        return SpeechCorpus(self.utterances + other.utterances, name=f"{self.name} + {other.name}")

    def subset(self, speakers, name: str | None = None) -> "SpeechCorpus":
        """A corpus with only the given speakers' utterances."""
        keep = set(speakers)
        return SpeechCorpus([u for u in self.utterances if u.speaker in keep],
                            name=name or f"{self.name}[{len(keep)} speakers]")

    def split(self, seed: int = 0, ratios=PAPER_SPEAKER_SPLIT
              ) -> tuple["SpeechCorpus", "SpeechCorpus", "SpeechCorpus"]:
        """Speaker-disjoint train / validation / test corpora.

        ``ratios``: three numbers >= 0 (normalised), default the paper's 128:48:64 speakers. Speakers
        are shuffled with ``default_rng(seed)`` and cut by the cumulative ratios; every split with a
        positive ratio gets at least one speaker. Raises CorpusError when there are fewer speakers
        than non-empty splits.
        """
        r = np.asarray(ratios, dtype=float)
        if r.shape != (3,) or (r < 0).any() or r.sum() <= 0:
            raise ValueError(f"ratios must be three numbers >= 0, got {ratios!r}")
        n = len(self.speakers)
        need = int((r > 0).sum())
        if n < need:
            raise CorpusError(f"{self.name}: {n} speaker(s) cannot fill {need} disjoint splits")
        order = np.random.default_rng(seed).permutation(n)
        counts = np.floor(r / r.sum() * n).astype(int)
        # hand out the remainder by largest fractional part, then make sure non-empty ratios get one
        frac = r / r.sum() * n - counts
        for k in np.argsort(-frac)[: n - counts.sum()]:
            counts[k] += 1
        for k in range(3):
            if r[k] > 0 and counts[k] == 0:
                counts[int(np.argmax(counts))] -= 1
                counts[k] += 1
        cuts = np.cumsum(counts)
        parts = np.split(order, cuts[:2])
        names = ("train", "val", "test")
        out = []
        for part, nm in zip(parts, names):
            spk = [self.speakers[j] for j in part]
            if spk:
                out.append(self.subset(spk, name=f"{self.name}:{nm}"))
            else:
                out.append(_EmptyCorpus(f"{self.name}:{nm}"))
        return tuple(out)  # type: ignore[return-value]

    def load(self, i: int, sample_rate: int | None = None) -> np.ndarray:
        """Utterance ``i`` as float32 mono [N] at ``sample_rate`` (None: the file's own rate).

        Raises CorpusError when the file cannot be read or is empty.
        """
        import soundfile as sf

        p = self.utterances[i].path
        try:
            x, sr = sf.read(str(p), dtype="float32", always_2d=True)
        except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / OSError
            raise CorpusError(f"cannot read audio file {p}: {e}") from e
        if x.shape[0] == 0:
            raise CorpusError(f"audio file {p} is empty")
        x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
        if sample_rate is not None and int(sample_rate) != sr:
            import soxr
            x = soxr.resample(x, sr, int(sample_rate), quality="HQ")
        return np.ascontiguousarray(x, dtype=np.float32)


class _EmptyCorpus(SpeechCorpus):
    """A split with no speakers (ratio 0)."""

    def __init__(self, name: str):  # noqa: D401 - deliberately skips the non-empty check
        self.utterances, self.name, self.speakers, self._by_speaker = [], name, [], {}
