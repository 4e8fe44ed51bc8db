"""A train worker process killed mid-run: Ray Train restarts the group, which resumes from the
latest committed checkpoint and ends with the model an uninterrupted run trains.

The kill is injected, not raced (ray_jobs/fault_injection.py): rank 1 SIGKILLs its own process
right after its kill_at_step-th step, on the first attempt only. kill_at_step is twice the
checkpoint interval, and the kill comes after that step's checkpoint is reported: Ray Train v2
holds at most one unconsumed report per worker (a report blocks until the controller took the
previous one), and every rank reports the second checkpoint only after its first is queued, so
the first checkpoint is committed whatever the timing (the second may be too: the resume starts
at step checkpoint_every or kill_at_step, and both lead to the same model).

Tolerance: exact, with the default shuffle on (`data.shuffle: full`, a new order every epoch).
Weights, optimizer state, each rank's torch RNG, the position in the epoch and the best epoch
so far are checkpointed; each epoch trains on its own Ray dataset shuffled with a seed of
(train.seed, epoch) (`ray_jobs.data.ingest`), and with Ray Data's `preserve_order` (always on
in `SeesawIngest`) the shards stream the same batches in the same order in every attempt, so
skipping the trained batches on resume lands on the same next batch; gloo's reductions and
the CPU kernels are deterministic for a fixed world size.
Without `preserve_order` the split hands file blocks to whichever worker asks first, so even two
uninterrupted runs may train on different shards. Measured on this config: two uninterrupted
runs in the default order differ (val mean AUC 0.6250 vs 0.6227, test mean GAUC 0.5754 vs
0.5794), two with `preserve_order` agree exactly; before the resume restored Adam's moments (sharding/checkpoint.py)
this test failed: test mean AUC 0.6738 resumed vs 0.6731 uninterrupted
(GAUC 0.637 vs 0.622).
"""

from __future__ import annotations

import json
from dataclasses import replace

from ray_jobs.core.run_dir import TENSORBOARD_DIR
from ray_jobs.training.curves import read_scalars
from ray_jobs.training.fault_injection import ENV_VAR
from ray_jobs.training.job import train as run


def test_killed_worker_resumes_and_matches_uninterrupted_run(trained_run, capfd, monkeypatch):
    """`trained_run` (tests/conftest.py) is the uninterrupted run: 2 workers, checkpoints every
    CHECKPOINT_EVERY steps, max_failures 1; this one repeats it with rank 1 killed."""
    uninterrupted_config, uninterrupted = trained_run
    checkpoint_every = uninterrupted_config.train.checkpoint_every_steps
    kill_at_step = 2 * checkpoint_every  # rank 1, mid-way through epoch 1
    config = replace(uninterrupted_config, name="ft")
    monkeypatch.setenv(ENV_VAR, f"1:{kill_at_step}")
    interrupted = run(config, run_name="interrupted")
    out = capfd.readouterr().out
    resumes = [line for line in out.splitlines() if "resumed from checkpoint" in line]
    assert len(resumes) == 1, f"expected exactly one restart; output tail:\n{out[-4000:]}"
    assert any(f"at epoch 1 step {s} " in resumes[0] for s in (checkpoint_every, kill_at_step)), resumes[0]

    got = json.loads((interrupted / "metrics.json").read_text())
    want = json.loads((uninterrupted / "metrics.json").read_text())
    assert got["summary"]["epoch"] == want["summary"]["epoch"] == uninterrupted_config.train.epochs
    for key in ("test_mean_auc", "test_mean_gauc", "test_mean_logloss", "val_mean_auc"):
        assert got["summary"][key] == want["summary"][key], key
    assert json.dumps(got["cells"]) == json.dumps(want["cells"])  # every domain x task cell (NaN-safe)
    assert want["resumes"] == [], "an uninterrupted run records no restart"
    # the curves: the restarted group appends an event file of its own; the training axis (global
    # step) and the window (its ring) are checkpointed, so every curve but the throughput is the
    # uninterrupted run's, step for step
    got_curves, want_curves = read_scalars(interrupted / TENSORBOARD_DIR), read_scalars(uninterrupted / TENSORBOARD_DIR)
    assert len(list((interrupted / TENSORBOARD_DIR).glob("events.out.tfevents.*"))) == 2
    for tag in ("val/mean_auc", "val/auc/click", "train/ne/click", "train/calibration/like", "train/loss"):
        assert got_curves[tag] == want_curves[tag], tag
    assert len(got["resumes"]) == 1 and got["resumes"][0]["epoch"] == 1 and not got["resumes"][0]["epoch_done"]
    assert f"step {got['resumes'][0]['step']} " in resumes[0], (got["resumes"], resumes[0])
    assert "same size" in got["resumes"][0]["reason"], got["resumes"]  # the same driver, the same 2 workers
    assert got["resumes"][0]["world_size_before"] == got["resumes"][0]["world_size_after"] == 2
