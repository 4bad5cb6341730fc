"""Training batches built in DataLoader worker processes, deterministic per example index.

Example ``i`` of a run is ``sampler.sample_at(i)`` drawn under the schedule of its step
``i // batch`` (presence probability, minimum talker gap and near-talker level boost of
:meth:`realtime_tse.train.train_config.TrainConfig.sampler_settings`),
so a resumed run continues the same sequence of mixtures, and the mixing (convolution, cropping,
levels) runs beside the training thread instead of on it.
"""
from __future__ import annotations

import numpy as np
import torch


class ScheduledMixtures(torch.utils.data.Dataset):
    """Map-style dataset: index ``i`` -> one mixture as tensors (``mix``/``target`` [N] float32,
    ``d_q`` scalar metres, ``kind`` str).

    Args:
        sampler: :class:`realtime_tse.train.mixtures.MixtureSampler` (its ``seed`` fixes the sequence).
        batch: examples per step (to map an index to its step).
        schedule: function step -> dict of sampler attributes to set for that step's examples
            (``p_presence``, ``min_gap_m``, ``near_boost_db``, ``p_single``).
        paired: draw examples in pairs of one mixture with two queries
            (:meth:`realtime_tse.train.mixtures.MixtureSampler.sample_paired_at`); needs an even batch.
        swapped: draw examples in swap-consistent groups of four (one voice pair in both position
            orders, each queried at both positions:
            :meth:`realtime_tse.train.mixtures.MixtureSampler.sample_swapped_at`); needs a batch divisible by 4.
    Raises:
        ValueError: paired with an odd batch, swapped with a batch not divisible by 4, or both.
    """

    def __init__(self, sampler, batch: int, schedule, paired: bool = False, swapped: bool = False):
        self.sampler, self.batch = sampler, int(batch)
        self.schedule = schedule
        self.paired, self.swapped = bool(paired), bool(swapped)
        if self.paired and self.swapped:
            raise ValueError("choose paired or swapped examples, not both")
        if self.paired and self.batch % 2:
            raise ValueError(f"paired queries need an even batch, got {batch}")
        if self.swapped and self.batch % 4:
            raise ValueError(f"swap-consistent groups need a batch divisible by 4, got {batch}")

    def __len__(self) -> int:
        return 2 ** 62

    def __getitem__(self, i: int) -> dict:
        step = int(i) // self.batch
        for k, v in self.schedule(step).items():
            setattr(self.sampler, k, float(v))
        if self.swapped:
            m = self.sampler.sample_swapped_at(int(i))
        elif self.paired:
            m = self.sampler.sample_paired_at(int(i))
        else:
            m = self.sampler.sample_at(int(i))
        return {"mix": torch.from_numpy(np.ascontiguousarray(m.mix, dtype=np.float32)),
                "target": torch.from_numpy(np.ascontiguousarray(m.target, dtype=np.float32)),
                "d_q": torch.tensor(m.d_q, dtype=torch.float32), "kind": m.kind,
                "sources": torch.from_numpy(np.ascontiguousarray(m.sources, dtype=np.float32)),
                "distances": torch.tensor(np.asarray(m.distances, dtype=np.float32))}


class _Range(torch.utils.data.Sampler):
    def __init__(self, start: int):
        self.start = int(start)

    def __iter__(self):
        i = self.start
        while True:
            yield i
            i += 1

    def __len__(self) -> int:  # endless; DataLoader only needs it for len()
        return 2 ** 62


def batches(sampler, batch: int, start_step: int, schedule, workers: int = 1,
            paired: bool = False, swapped: bool = False):
    """Endless iterator of training batches from step ``start_step`` on: dicts with ``mix``,
    ``target`` [B, N], ``d_q`` [B], ``kind`` (list of B str), ``sources`` [B, 2, N] and
    ``distances`` [B, 2].

    ``workers`` > 0 builds them in that many worker processes (2 batches prefetched each);
    0 builds them on the calling thread. ``paired``, ``swapped``: see :class:`ScheduledMixtures`.
    """
    ds = ScheduledMixtures(sampler, batch, schedule, paired, swapped)
    kw = dict(prefetch_factor=2, persistent_workers=False) if workers > 0 else {}
    return iter(torch.utils.data.DataLoader(ds, batch_size=batch, sampler=_Range(start_step * batch),
                                            num_workers=int(workers), **kw))
