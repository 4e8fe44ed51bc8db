"""TensorBoard curves of a run: `<run dir>/tensorboard/`, written by rank 0 only.

`tensorboard --logdir <run dir>/tensorboard` (or a runs directory, to see runs side by side)
shows them. Every scalar's step is the run's global train step (batches trained since the
start of the run, across epochs; checkpointed, so a resumed run continues the same axis):

    train/loss, train/loss/<task>       windowed mean BCE (nats) over the last `train.log_every` steps
    train/ne/<task>, train/calibration/<task>   windowed NE and calibration (`window_metrics`)
    train/samples_per_s                 the running epoch's throughput (all workers)
    val/<metric>                        each epoch's validation figures at the epoch's last step:
                                        val/mean_auc, val/mean_gauc, val/mean_logloss, val/auc/<task>, ...
    epoch                               the epoch (1-based) each epoch end belongs to

A resumed run (worker or driver restart) opens a new event file in the same directory with
`purge_step` = the step it resumed from: TensorBoard then drops the steps the lost attempt had
written past that checkpoint, so the curves show each step once (and, the window being
checkpointed too, with the uninterrupted run's values). `read_scalars` reads the
files back without TensorFlow or TensorBoard (tests, reports).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Mapping

from tensorboardX import SummaryWriter
from tensorboardX.proto.event_pb2 import Event

from ray_jobs.core.run_dir import TENSORBOARD_DIR


class Curves:
    """Rank 0's TensorBoard writer (a no-op on the other ranks).

    Args:
        run_dir: the run directory; the event files go to `run_dir/tensorboard/`.
        rank: this worker's rank.
        purge_step: the global step this attempt starts from (0 for a fresh run).
    """

    def __init__(self, run_dir: str | Path, rank: int, purge_step: int = 0) -> None:
        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        self._writer = None
        if rank == 0:  # flush_secs: a person watching a run sees it move
            self._writer = SummaryWriter(logdir=str(self.log_dir), purge_step=purge_step or None, flush_secs=10)

    def scalars(self, step: int, values: Mapping[str, float | None]) -> None:
        """Each `tag: value` at `step`; None (an undefined metric, e.g. GAUC without groups) is left out."""
        if self._writer is None:
            return
        for tag, value in values.items():
            if value is not None:
                self._writer.add_scalar(tag, float(value), step)

    def train(self, step: int, window: Mapping[str, list[float]], tasks: list[str], samples_per_s: float) -> None:
        """The training window (`WindowMetrics.compute()`) and throughput at `step`."""
        values: dict[str, float | None] = {"train/samples_per_s": samples_per_s}
        if window:
            values["train/loss"] = sum(window["loss"])
            for name in ("loss", "ne", "calibration"):
                values.update({f"train/{name}/{t}": v for t, v in zip(tasks, window[name])})
        self.scalars(step, values)

    def validation(self, step: int, epoch: int, metrics: Mapping[str, Any]) -> None:
        """An epoch's `val_*` metrics (the epoch report's keys) at the epoch's last `step`."""
        values = {f"val/{k[len('val_'):]}": v for k, v in metrics.items() if k.startswith("val_")}
        self.scalars(step, {**values, "epoch": epoch})
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def read_scalars(log_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files in `log_dir`, `tag -> [(step, value)]` in file then write
    order (files sort by their creation time stamp). Reads the TFRecord framing
    (length, its CRC, the Event proto, its CRC) directly; the CRCs are not checked."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    files = sorted(Path(log_dir).glob("events.out.tfevents.*"))
    if not files:
        raise FileNotFoundError(f"{log_dir}: no TensorBoard event files (events.out.tfevents.*)")
    for path in files:
        data = path.read_bytes()
        offset = 0
        while offset + 12 <= len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            event = Event.FromString(data[offset + 12: offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars
