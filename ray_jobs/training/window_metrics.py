"""Per-task NE and calibration over the last N training batches of one worker.

The definitions are torchrec.metrics' (`ne.get_ne_states` / `ne.compute_ne`,
`calibration.get_calibration_states` / `calibration.compute_calibration`, eta 1e-12): NE is the
weighted cross entropy of the predictions over the entropy of the window's base rate (1 = no
better than always predicting the base rate; lower is better), calibration is the sum of
predictions over the sum of labels (1 = calibrated). The window is ours: the last N
steps' sufficient statistics, summed when read.

Those few lines are restated here (`step_states`, `window_figures`) rather than imported:
importing `torchrec.metrics` imports torchmetrics, which imports scipy.signal and matplotlib,
1.4 s of the 5.5 s that `python -X importtime -c "import ray_jobs.training.loop"` took on the
2-core machine, paid by every training worker of every job and trial. The tests check them
against torchrec.metrics' functions (and against sklearn).

Why not `RecMetricModule` / `NEMetric` / `CalibrationMetric` themselves: they run on CPU, and
`local_compute()` reads one rank's window without a collective, but their update is torchmetrics'
per-task Python (tasks as dicts of [B] tensors, a deque of states per window state). Timed on
this 2-core machine (1 thread, 2 tasks, 512 rows, after warm-up): NE + calibration update
0.65-2.9 ms per step fused (FUSED_TASKS_COMPUTATION), 0.9-10 ms unfused, 0.13-0.37 ms with
`fused_update_limit=10` (which then moves its window in chunks of 10 batches); the window here
costs 0.04-0.05 ms on the same synthetic tensors, against a 10-17 ms train step. Their window is
also counted in samples divided by the world size, not in batches, and their state is not in our
checkpoints; this window is (`state`/`load`), so a resumed run's curves are the uninterrupted run's.

In the train step (the sharded PEPNet / SharedBottom step of `benchmarks.step_breakdown`,
tiny synthetic data, batch 512, 1 thread, with and without the window interleaved over 7 rounds,
on this 2-core machine at load 25-60): `update` 0.20-0.32 ms per step (median), compute +
TensorBoard write 2.1 ms per 50 steps, i.e. 1-3% of a 7-31 ms step; the steps' own with/without
ratio (x0.87-x1.27) was machine noise, larger than the effect.

Rank 0 reports its own shard's window (no collective in the step loop): the rows of an epoch are
shuffled across workers, so one worker's window estimates the global one.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Sequence

import torch

from modules.model import StepOutput

ETA = 1e-12  # torchrec.metrics' default clamp of predictions and of the base rate
# the sufficient statistics of one step, per task, in this order
_STATES = ("cross_entropy_sum", "weighted_num_samples", "pos_labels", "neg_labels", "calibration_num")


def step_states(predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """One step's sufficient statistics [len(_STATES), T] (float64), from predictions, labels
    and weights in torchrec's [T, B] layout: `ne.get_ne_states` (cross entropy in bits, the
    predictions clamped to [ETA, 1 - ETA]) and `calibration.get_calibration_states`' numerator."""
    p, y, w = predictions.double(), labels.double(), weights.double()
    clamped = p.clamp(min=ETA, max=1 - ETA)
    cross_entropy = -w * y * torch.log2(clamped) - w * (1.0 - y) * torch.log2(1.0 - clamped)
    return torch.stack([cross_entropy.sum(-1), w.sum(-1), (w * y).sum(-1), (w * (1.0 - y)).sum(-1), (p * w).sum(-1)])


def window_figures(total: torch.Tensor) -> dict[str, torch.Tensor]:
    """NE, calibration and mean BCE (nats) [T] from summed `step_states` [len(_STATES), T]:
    `ne.compute_ne` and `calibration.compute_calibration` (0 where a task has no positive)."""
    ce, samples, pos, neg, num = total
    base_rate = (pos / samples.clamp(min=ETA)).clamp(min=ETA, max=1 - ETA)
    base_entropy = -pos * torch.log2(base_rate) - neg * torch.log2(1.0 - base_rate)
    return {"ne": ce / base_entropy,
            "calibration": torch.where(pos <= 0.0, 0.0, num / pos).double(),
            "loss": ce * math.log(2.0) / samples.clamp_min(ETA)}  # torchrec's cross entropy is in bits


class WindowMetrics:
    """NE, calibration and mean BCE per task over the last `window` steps.

    The window holds only the steps it has seen (a deque of at most `window` [S, T] rows), so a
    window longer than the run (`train.log_every` 10**6: progress lines off) costs what the run's
    steps cost, not `window` rows: a preallocated ring of 10**6 rows was an 80 MB tensor whose
    `state()` JSON took 20-25 s per checkpoint (seen in the shuffle-quality test's epochs).

    Args:
        tasks: task names, in the order of the logits' columns.
        window: how many of the latest steps count (the steps between two progress lines).
    """

    def __init__(self, tasks: Sequence[str], window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1 step, got {window}")
        self.tasks, self.window = list(tasks), window
        self._rows: deque[torch.Tensor] = deque(maxlen=window)  # each [len(_STATES), T] float64, oldest first
        self._steps = 0  # steps seen since the start (or the last reset)

    def update(self, out: StepOutput) -> None:
        """Adds one step: out.logits [B, T], out.labels [B, T], out.weight [B] (0: padding rows)."""
        if out.labels is None or out.weight is None:
            raise ValueError("StepOutput without labels/weight: the model's step must carry them "
                             "(modules.model.step_output)")
        self.update_tensors(torch.sigmoid(out.logits.float()), out.labels, out.weight)

    def update_tensors(self, predictions: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor) -> None:
        """Adds one step from probabilities [B, T], labels [B, T] and row weights [B]."""
        if predictions.shape[1] != len(self.tasks):
            raise ValueError(f"predictions have {predictions.shape[1]} tasks, expected {len(self.tasks)}: {self.tasks}")
        preds = predictions.detach().t()  # torchrec's layout: [T, B]; step_states converts to float64
        self._rows.append(step_states(preds, labels.detach().t(), weight.detach().expand_as(preds)))  # [S, T]
        self._steps += 1

    def state(self) -> dict | None:
        """The window as JSON (a checkpoint's progress), so that a resumed run's window is the
        uninterrupted run's; None when empty."""
        if not self._rows:
            return None
        return {"window": self.window, "steps": self._steps, "rows": torch.stack(list(self._rows)).cpu().tolist()}

    def load(self, state: dict | None) -> None:
        """Back to a `state()`; None (or a window of another length, or an older layout): starts empty."""
        self._rows.clear()
        self._steps = 0
        if state is None or state.get("window") != self.window or "rows" not in state:
            return
        self._rows.extend(torch.tensor(state["rows"], dtype=torch.float64).unbind(0))
        self._steps = int(state["steps"])

    @property
    def steps(self) -> int:
        """How many steps the window holds now (at most `window`)."""
        return len(self._rows)

    def compute(self) -> dict[str, list[float]]:
        """{"ne": [T], "calibration": [T], "loss": [T] (mean BCE, nats)} over the window; {} when empty."""
        if not self._rows:
            return {}
        device = self._rows[-1].device
        total = torch.stack([row.to(device) for row in self._rows]).sum(0)  # [S, T]
        return {name: values.tolist() for name, values in window_figures(total).items()}

    def as_metrics(self, prefix: str = "train_window") -> dict[str, float]:
        """Flat `{prefix}_ne/<task>`, `{prefix}_calibration/<task>` for a report / metrics.json."""
        values = self.compute()
        return {f"{prefix}_{name}/{task}": v for name in ("ne", "calibration") if name in values
                for task, v in zip(self.tasks, values[name])}

    def format(self) -> str:
        """Compact for a console line: 'NE 0.912 0.954 cal 1.02 0.97' (tasks in order); '' when empty."""
        values = self.compute()
        if not values:
            return ""
        ne = " ".join(f"{v:.3f}" for v in values["ne"])
        cal = " ".join(f"{v:.2f}" for v in values["calibration"])
        return f"NE {ne} cal {cal}"
