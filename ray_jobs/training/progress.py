"""Rank 0's progress bar: steps, samples/s, ETA, the per-task losses of the running epoch and
the windowed per-task NE and calibration (`window_metrics`).

The bar is Ray's `tqdm_ray`: the worker sends its state through its stdout and the driver draws
one real tqdm bar from it (a plain tqdm in a worker would print a new line per refresh). The
per-N-steps progress line is still written, to the worker's log file only
(`<run dir>/logs/worker-0.log`).
"""

from __future__ import annotations

import logging
from typing import Sequence

from ray.experimental.tqdm_ray import tqdm

from ray_jobs.training.epoch import EpochStats
from ray_jobs.training.window_metrics import WindowMetrics

# A logger of its own, not propagating to `seesaw` (whose handler prints): the file only.
file_log = logging.getLogger("seesaw_progress")


class EpochProgress:
    """One epoch's bar on rank 0 (a no-op on the other ranks).

    `total_steps`: the expected number of steps (the split's rows / global batch, or
    max_steps_per_epoch); a hint for the ETA only. `window`: its NE and calibration end the bar.
    """

    def __init__(self, rank: int, epoch: int, epochs: int, total_steps: int, tasks: Sequence[str],
                 world_size: int, log_every: int, window: WindowMetrics | None = None) -> None:
        self._on, self._window = rank == 0, window
        self._epoch, self._epochs, self._tasks = epoch, epochs, list(tasks)
        self._world_size, self._log_every = world_size, max(1, log_every)
        self._bar = tqdm(desc=self._desc(None), total=total_steps, unit="step") if self._on else None

    def _desc(self, stats: EpochStats | None) -> str:
        head = f"epoch {self._epoch + 1}/{self._epochs}"
        if stats is None or stats.steps < 2:  # the first step's time is inside time-to-first-batch
            return head
        m = stats.metrics(self._world_size)
        losses = " ".join(f"{t} {v:.3f}" for t, v in zip(self._tasks, stats.mean_task_losses()))
        window = f" | {self._window.format()}" if self._window is not None and self._window.steps else ""
        return f"{head} | {m['train_samples_per_s']:,.0f} samples/s | loss {losses}{window}"

    def step(self, stats: EpochStats) -> None:
        """After each step: the bar moves; every `log_every` steps the full line goes to the log file."""
        if not self._on:
            return
        if stats.steps % self._log_every == 0 or stats.steps == 2:
            self._bar.set_description(self._desc(stats))
            m = stats.metrics(self._world_size)
            file_log.info("%s step %d | input wait %.0f%% sync wait %.0f%%", self._desc(stats), stats.steps,
                          100 * m["input_wait_fraction"], 100 * m["sync_wait_fraction"])
        self._bar.update(1)

    def close(self, stats: EpochStats) -> None:
        if self._on:
            self._bar.set_description(self._desc(stats))
            self._bar.close()
