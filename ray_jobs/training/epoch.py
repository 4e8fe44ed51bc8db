"""One training epoch of one worker: lockstep steps over its batches, timed.

Timing separates compute (a batch in hand to its step done), input wait (the input pipeline's
next batch) and sync wait (lockstep's per-step collective, i.e. the slowest worker).
"""

from __future__ import annotations

import contextlib
import resource
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torchrec.distributed.model_parallel import DistributedModelParallel
from torchrec.distributed.train_pipeline import TrainPipelineSparseDist

from modules.batch import Batch
from modules.model import StepOutput
from ray_jobs.training.lockstep import lockstep
from ray_jobs.training.window_metrics import WindowMetrics


@dataclass
class EpochStats:
    """Timing of one worker's epoch. Compute time runs from a batch in hand to its step done;
    input wait is the time spent waiting for the input pipeline's next batch (after the first);
    sync wait is the time spent in lockstep's per-step collective, i.e. waiting for the slowest
    worker (0 for a single worker)."""

    steps: int = 0
    first_batch_s: float = 0.0
    wait_s: list[float] = field(default_factory=list)  # per step; 0 for the first
    sync_s: list[float] = field(default_factory=list)  # per step; 0 for the first
    step_s: list[float] = field(default_factory=list)
    batch_rows: list[int] = field(default_factory=list)
    loss_sum: torch.Tensor | None = None
    skipped: int = 0  # batches consumed untrained when resuming mid-epoch
    telemetry_sum: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. SMES expert load

    @property
    def position(self) -> int:
        """Batches of this epoch done, counting those trained before a resume."""
        return self.skipped + self.steps

    def mean_task_losses(self) -> list[float]:
        return (self.loss_sum / max(self.steps, 1)).tolist() if self.loss_sum is not None else []

    def metrics(self, world_size: int, skip: int = 0) -> dict[str, float]:
        """Throughput and step-time statistics, leaving out the first `skip` (warm-up) steps."""
        wait, step = np.asarray(self.wait_s[skip:]), np.asarray(self.step_s[skip:])
        sync = np.asarray(self.sync_s[skip:])
        busy = max(float(wait.sum() + sync.sum() + step.sum()), 1e-9)
        samples = sum(self.batch_rows[skip:])
        step = step if step.size else np.zeros(1)
        return {
            "train_steps": self.steps,
            "train_samples_per_s": samples * world_size / busy,
            "train_samples_per_s_per_worker": samples / busy,
            "step_ms_p50": float(np.percentile(step, 50) * 1e3),
            "step_ms_p90": float(np.percentile(step, 90) * 1e3),
            "input_wait_fraction": float(wait.sum()) / busy,
            "sync_wait_fraction": float(sync.sum()) / busy,
            "time_to_first_batch_s": self.first_batch_s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "train_loss": float(sum(self.mean_task_losses())),
            **{f"telemetry/{k}": (v / max(self.steps, 1)).tolist() for k, v in self.telemetry_sum.items()},
        }


@dataclass(frozen=True)
class EpochTime:
    """Where one epoch's wall time went on this worker, in seconds (metrics.json's `epochs`).

    `wall`: the epoch's start (its shards asked for) to its checkpoint reported. `train_compute`:
    the train steps, a batch in hand to its step done (the per-step hooks included: the progress
    bar, the curves, a mid-epoch checkpoint); the first step's compute is inside its wait for the
    first batch, so it is counted as the median step. `eval_forward`: the
    validation forwards. `overhead` is the rest: the input pipeline's waits (the epoch's first
    batch above all), lockstep's waits for a slower worker, the evaluation's batch waits, metrics and gathering, the checkpoint saved
    and reported, the curves written (issue 19's target: <= 1 s for splits that fit in memory).
    """

    epoch: int  # 1-based
    wall: float
    train_compute: float
    train_input_wait: float
    eval_forward: float
    eval_total: float
    checkpoint: float

    @property
    def overhead(self) -> float:
        return self.wall - self.train_compute - self.eval_forward

    @staticmethod
    def of(epoch: int, wall: float, stats: EpochStats, eval_forward: float, eval_total: float,
           checkpoint: float) -> "EpochTime":
        steps = np.asarray(stats.step_s[1:]) if stats.steps > 1 else np.zeros(1)
        first_compute = min(float(np.median(steps)), stats.first_batch_s) if stats.steps else 0.0
        return EpochTime(epoch, wall, float(steps.sum()) + first_compute,
                         stats.first_batch_s - first_compute + float(sum(stats.wait_s)),
                         eval_forward, eval_total, checkpoint)

    def as_dict(self) -> dict[str, float]:
        """Every field and the overhead, rounded to milliseconds, with an `_s` suffix."""
        values = {"wall": self.wall, "train_compute": self.train_compute, "train_input_wait": self.train_input_wait,
                  "eval_forward": self.eval_forward, "eval_total": self.eval_total, "checkpoint": self.checkpoint,
                  "overhead": self.overhead}
        return {"epoch": self.epoch, **{f"{k}_s": round(v, 3) for k, v in values.items()}}


class TimedIterator:
    """Wraps an iterator and accumulates the seconds spent waiting in next()."""

    def __init__(self, iterable: Iterable[Batch]) -> None:
        self._it = iter(iterable)
        self.waited = 0.0

    def __iter__(self) -> "TimedIterator":
        return self

    def __next__(self) -> Batch:
        start = time.perf_counter()
        try:
            return next(self._it)
        finally:
            self.waited += time.perf_counter() - start


def _steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator[Batch],
           device: torch.device, autocast: bool = False, pipelined: bool = True) -> Iterator[StepOutput]:
    """Train steps over `batches` through TorchRec's TrainPipelineSparseDist, yielding each
    step's output.

    The pipeline keeps up to three batches in flight: while batch i runs forward, backward and
    the optimizer, batch i+1's embedding input all-to-all is under way and batch i+2 is copied
    to the device (on CUDA, on side streams). On CPU there are no streams and the copy is a
    no-op, but the same code path runs, so the step that trains on GPUs is the step the CPU
    tests cover. The numbers equal a plain forward/zero_grad/backward/step loop: each batch's
    lookup still happens in its own forward, after the previous update.

    The pipeline rewrites the sharded EBC's forward; it is restored (`detach`) when the steps
    end, so that evaluation afterwards calls the ordinary forward. Up to two batches the
    pipeline had already taken from `batches` are left untrained when the caller stops early.

    A model that is not DMP-wrapped (the collision wrapper `sharding.bounded`, which remaps the
    ids before the EBC, so TorchRec could not pipeline its input; an unsharded model in unit
    tests) takes the plain step: same numbers, no pipeline.

    `pipelined=False` takes the plain step (on any device).

    `autocast`: the forward under bf16 autocast (`train.precision`; CUDA only, refused on CPU
    by the config): matmuls run in bf16, the BCE and the fp32 weights and optimizer are as before.
    """
    def autocast_forward(batch: Batch) -> tuple[torch.Tensor, StepOutput]:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return model(batch)

    if not pipelined or not isinstance(model, DistributedModelParallel):
        forward = autocast_forward if autocast else model
        for batch in batches:
            loss, out = forward(batch.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            yield out
        return
    pipeline = TrainPipelineSparseDist(model, optimizer, device,
                                       custom_model_fwd=autocast_forward if autocast else None)
    try:
        while True:
            try:
                out = pipeline.progress(batches)
            except StopIteration:
                return
            yield out
    finally:
        pipeline.detach()


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[Batch],
                device: torch.device, max_steps: int | None = None,
                on_step: Callable[[EpochStats], None] | None = None, skip: int = 0,
                autocast: bool = False, pipelined: bool = True, window: WindowMetrics | None = None) -> EpochStats:
    """One pass over `batches` in lockstep with the other workers; returns its timing.

    `skip` batches are consumed untrained first (a resumed epoch's already-trained part);
    `max_steps` counts them too. `autocast`: bf16 autocast of the forward (see `_steps`).
    `window`: each step's output is added to it (windowed NE and calibration), before `on_step`.
    """
    model.train()
    stats = EpochStats()
    fed = TimedIterator(batches)  # time in the input pipeline
    synced = TimedIterator(lockstep(fed))  # that plus time in lockstep's collective
    for _ in zip(range(skip), synced):
        pass
    stats.skipped = skip
    t_start = t_last = time.perf_counter()
    # closing: the pipeline restores the model's forward when the loop ends, even on a break
    with contextlib.closing(_steps(model, optimizer, synced, device, autocast, pipelined)) as steps:
        for out in steps:
            now = time.perf_counter()
            wait, sync = fed.waited, synced.waited - fed.waited
            fed.waited = synced.waited = 0.0
            if stats.steps == 0:
                stats.first_batch_s, wait, sync = now - t_start, 0.0, 0.0
                stats.step_s.append(0.0)  # the first step's compute is inside the first-batch time
            else:
                stats.step_s.append(now - t_last - wait - sync)
            stats.wait_s.append(wait)
            stats.sync_s.append(sync)
            t_last = now
            losses = out.task_losses.cpu()
            stats.loss_sum = losses if stats.loss_sum is None else stats.loss_sum + losses
            for name, value in out.telemetry.items():
                value = value.float().cpu()
                stats.telemetry_sum[name] = stats.telemetry_sum[name] + value if name in stats.telemetry_sum else value
            stats.steps += 1
            stats.batch_rows.append(int(out.logits.shape[0]))
            if window is not None:
                window.update(out)
            if on_step is not None:
                on_step(stats)
            if max_steps and skip + stats.steps >= max_steps:
                break
    return stats
