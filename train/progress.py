"""What a person running ``tse-train`` sees: progress against the budget given, and one closing line.

A wall-clock budget (``--minutes``) is shown as seconds of that budget, counted from when the
command started (RIR simulation included), with the steps done and an estimate of the steps the
budget will reach at the speed measured so far. A step budget is shown as steps. Nothing here
estimates the configured epochs when a budget was given.
"""
from __future__ import annotations

import math
import time


class BudgetProgress:
    """Progress bar (tqdm, to stderr) of a training run against its budget.

    Args:
        start_step: the step the run starts at (a resumed run's step).
        stop_step: the step budget's end (the configured epochs when no step budget was given).
        deadline: wall-clock end of a time budget (``time.time()`` seconds) or None.
        started_at: when the budget started (``time.time()`` seconds; default: now). Time before it,
            such as RIR simulation, is part of the budget.
        enabled: False shows nothing (``describe`` still works).
        clock: the time source (seconds), replaceable for tests.
    """

    def __init__(self, start_step: int, stop_step: int, deadline: float | None = None,
                 started_at: float | None = None, enabled: bool = True, clock=time.time):
        self.clock = clock
        self.start_step = self.step = int(start_step)
        self.stop_step = int(stop_step)
        self.deadline = deadline
        self.started_at = clock() if started_at is None else float(started_at)
        self.t_first = clock()          # when this run's first step began
        self.loss: float | None = None
        self.bar = None
        if enabled:
            from tqdm import tqdm
            if deadline is None:
                self.bar = tqdm(total=self.stop_step - self.start_step, unit="step", desc="training")
            else:
                budget = max(deadline - self.started_at, 0.0)
                self.bar = tqdm(total=round(budget), initial=min(round(self.clock() - self.started_at),
                                                                 round(budget)),
                                unit="s", desc="training", bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s "
                                                                      "[{elapsed}{postfix}]")

    def seconds_per_step(self) -> float:
        """Mean wall-clock seconds per step of this run so far (validation included); nan before
        the first step."""
        done = self.step - self.start_step
        return (self.clock() - self.t_first) / done if done > 0 else math.nan

    def expected_stop_step(self) -> int | None:
        """The step the run is expected to end at: the step budget, or for a time budget, the steps
        done plus the remaining seconds at the speed so far (capped by the step budget). None while
        a time budget has no measured step yet."""
        if self.deadline is None:
            return self.stop_step
        sps = self.seconds_per_step()
        if not math.isfinite(sps) or sps <= 0:
            return None
        left = max(self.deadline - self.clock(), 0.0)
        return min(self.stop_step, self.step + int(left // sps))

    def describe(self) -> str:
        """The progress figures as text, e.g. ``step 12 of ~26, 6.8 s/step, loss -3.21``."""
        end = self.expected_stop_step()
        sps = self.seconds_per_step()
        parts = [f"step {self.step}" + ("" if end is None else
                                        f" of {'~' if self.deadline is not None else ''}{end}")]
        if math.isfinite(sps):
            parts.append(f"{sps:.1f} s/step")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.2f}")
        return ", ".join(parts)

    def update(self, step: int, loss: float | None = None) -> None:
        """Record that ``step`` steps are done (in all, not this run) and the recent training loss."""
        self.step, self.loss = int(step), loss
        if self.bar is None:
            return
        if self.deadline is None:
            self.bar.n = self.step - self.start_step
        else:
            self.bar.n = min(round(self.clock() - self.started_at), self.bar.total)
        self.bar.set_postfix_str(self.describe(), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def verdict(metrics: dict) -> str:
    """What the validation figures say, in words: "not separating yet" below 1 dB single-talker
    SI-SDRi, "starting to separate" from 1 dB, "separating" from 3 dB (the quality floor in ``docs/model-card.md``)."""
    si = metrics.get("si_sdri_single", math.nan)
    if not math.isfinite(si):
        return "no single-talker validation queries"
    if si >= 3.0:
        return "separating"
    if si >= 1.0:
        return "starting to separate"
    return "not separating yet"


def summary_line(metrics: dict, step: int, steps_run: int, run_dir) -> str:
    """The one line ``tse-train`` ends with, e.g. ``not separating yet: SI-SDRi -0.2 dB on validation,
    absence output -15.1 dB re input; step 1,550 (25 this run); runs/x/last.safetensors``."""
    if not metrics:
        return f"nothing trained (step {step:,}); no checkpoint written this run"
    si = metrics.get("si_sdri_single", math.nan)
    ab = metrics.get("absence_level_db", math.nan)
    figures = [f"SI-SDRi {si:.1f} dB on validation"] if math.isfinite(si) else []
    if math.isfinite(ab):
        figures.append(f"absence output {ab:.1f} dB re input")
    head = verdict(metrics) + (": " + ", ".join(figures) if figures else "")
    return f"{head}; step {step:,} ({steps_run:,} this run); checkpoints in {run_dir}"
