"""Where an epoch's wall time goes (`training.epoch.EpochTime`) and the time-to-result table's
overhead rows, against the same sums done by hand."""

from __future__ import annotations

import time

import pytest

from ray_jobs.benchmarks.time_to_result import epoch_overheads
from ray_jobs.core.timeline import Stopwatch
from ray_jobs.training.epoch import EpochStats, EpochTime


def test_the_first_steps_compute_is_the_median_step_and_the_rest_of_its_wait_is_input_wait():
    stats = EpochStats(steps=4, first_batch_s=1.0, wait_s=[0.0, 0.05, 0.05, 0.0], step_s=[0.0, 0.1, 0.3, 0.2])
    timed = EpochTime.of(2, wall=3.0, stats=stats, eval_forward=0.4, eval_total=0.7, checkpoint=0.5)
    assert timed.train_compute == pytest.approx(0.1 + 0.3 + 0.2 + 0.2)
    assert timed.train_input_wait == pytest.approx(1.0 - 0.2 + 0.1)
    assert timed.overhead == pytest.approx(3.0 - 0.8 - 0.4)
    assert timed.as_dict() == {"epoch": 2, "wall_s": 3.0, "train_compute_s": 0.8, "train_input_wait_s": 0.9,
                               "eval_forward_s": 0.4, "eval_total_s": 0.7, "checkpoint_s": 0.5, "overhead_s": 1.8}


def test_a_first_batch_faster_than_the_median_step_is_all_compute():
    stats = EpochStats(steps=3, first_batch_s=0.05, wait_s=[0.0] * 3, step_s=[0.0, 0.2, 0.2])
    timed = EpochTime.of(1, wall=1.0, stats=stats, eval_forward=0.0, eval_total=0.0, checkpoint=0.0)
    assert timed.train_compute == pytest.approx(0.45) and timed.train_input_wait == pytest.approx(0.0)


def test_a_stopwatch_sums_only_the_time_inside_its_blocks():
    clock = Stopwatch()
    for _ in range(2):
        with clock:
            time.sleep(0.02)
        time.sleep(0.05)  # outside: not counted
    assert 0.04 <= clock.seconds < 0.09


def test_the_later_epochs_overhead_is_their_mean_and_the_first_stands_alone():
    def epoch(n: int, overhead: float, wall: float) -> dict[str, float]:
        return {"epoch": n, "overhead_s": overhead, "wall_s": wall, "train_input_wait_s": overhead / 2,
                "eval_total_s": 0.5, "eval_forward_s": 0.25, "checkpoint_s": 0.1}

    rows = epoch_overheads([epoch(1, 5.0, 9.0), epoch(2, 1.0, 3.0), epoch(3, 2.0, 4.0)])
    assert rows["epoch 1 overhead s"] == 5.0 and rows["epochs 2+ overhead s"] == pytest.approx(1.5)
    assert rows["epochs 2+ wall s"] == pytest.approx(3.5) and rows["epochs 2+: train input wait s"] == pytest.approx(0.75)
    assert rows["epochs 2+: eval outside forward s"] == pytest.approx(0.25)
    assert epoch_overheads([]) == {}


def test_a_process_start_lies_between_its_launch_and_its_first_line():
    """`process_started` in a fresh process against the launcher's clock before it started it
    and the child's own clock at its first line (psutil's create_time, up to 1 s early on
    Linux, failed the lower bound)."""
    import subprocess
    import sys

    code = "import time; first = time.time(); from ray_jobs.core.timeline import process_started; print(process_started(), first)"
    launched = time.time()
    started, first_line = map(float, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                    check=True).stdout.split())
    assert launched - 0.02 <= started <= first_line  # 20 ms: the clock-tick resolution of /proc/self/stat
