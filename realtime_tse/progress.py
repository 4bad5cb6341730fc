"""Progress bars of the offline operations (extract, scan, streamed file extraction): tqdm on
stderr, shown only on a terminal and only for audio long enough to wait for."""
from __future__ import annotations

PROGRESS_MIN_S = 10.0  # offline extract / scan show a progress bar (on a terminal) from this length


def progress_bar(total: float, enabled: bool | None, desc: str, unit: str = "s"):
    """A tqdm progress bar on stderr over ``total`` units (audio seconds by default).

    Args:
        total: the bar's total (rounded to 0.01).
        enabled: True / False; None: only on a terminal (tqdm's ``disable=None``).
        desc: the label in front of the bar.
        unit: the unit shown after the counts.
    Returns:
        a ``tqdm`` instance (a context manager; ``update(n)`` advances it).
    """
    from tqdm.auto import tqdm  # noqa: PLC0415
    return tqdm(total=round(float(total), 2), disable=None if enabled is None else not enabled,
                desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} {unit} "
                           "[{elapsed}<{remaining}]")


def show_progress(progress: bool | None, seconds: float) -> bool | None:
    """The ``enabled`` for :func:`progress_bar`: ``progress`` None (auto) shows no bar for audio
    shorter than ``PROGRESS_MIN_S`` (10 s) and, from that length, one only on a terminal."""
    if progress is None and seconds < PROGRESS_MIN_S:
        return False
    return progress
