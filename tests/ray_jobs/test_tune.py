"""Ray Tune over distributed trials: strict spaces, ASHA early stopping, resume, best config.

One search (3 trials in order, one at a time) is interrupted like a Ctrl+C while its last trial
is mid-way, then resumed by running it again; the tests below read what it left behind.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from ray.tune.search.variant_generator import generate_variants

from modules.dense.registry import build_arch
from modules.strict import ConfigError
from ray_jobs.core.config import DataConfig, JobConfig, ModelConfig, TrainConfig, WorkersConfig, load_config
from ray_jobs.data.synthetic import PRESETS, dataset_spec
from ray_jobs.core.config import apply_overrides
from ray_jobs.experiments.search import BEST_CONFIG, TRIALS_CSV, TRIALS_MD, SearchOptions, load_space, max_concurrent_trials, search
from ray_jobs.tune import main

SPACES = sorted(p for p in Path("tune_spaces").glob("*.py") if p.stem not in ("__init__", "common"))
METRIC = "val_auc/click"  # click carries the generator's strongest signal; rare tasks are noise on tiny data
EPOCHS = 2
# Embedding learning rates in trial order: good, absurd (ASHA must stop it after epoch 1),
# good (interrupted after epoch 1). The embeddings (domain, user, item) carry most of the signal.
LR = "train.optim.sparse_lr"
LEARNING_RATES = (0.2, 1e-9, 0.1)
SPACE = f"""
from ray import tune
ARCH = "sharedbottom"
def space():
    return {{"{LR}": tune.grid_search({list(LEARNING_RATES)})}}
"""


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_every_space_samples_buildable_models(path):
    arch, space = load_space(path)
    assert all(k.startswith(("model.params.", "train.optim.")) for k in space)
    base = replace(JobConfig(), model=ModelConfig(arch=arch))
    spec = dataset_spec(PRESETS["tiny"])
    for _, variant in itertools.islice(generate_variants({"config": space}), 8):
        config = apply_overrides(base, variant["config"])
        assert config.model.arch == arch and config.model.params
        build_arch(arch, spec, config.model.params)  # e.g. SMES's K_s + K_a <= E holds


def test_apply_overrides_is_strict():
    config = apply_overrides(JobConfig(), {"train.optim.dense_lr": 0.5, "model.params.tower": [32]})
    assert config.train.optim.dense_lr == 0.5 and config.model.params["tower"] == [32]
    for bad in ({"train.optim.dense_lrr": 1e-3},   # no such JobConfig field
                {"train.epochs.x": 1},             # epochs is not a section
                {"model.params.gama": 2.0},        # not a PEPNet param
                {"train.epochs": "three"},         # wrong type
                {"model.params.gamma": "high"}):
        with pytest.raises(ConfigError):
            apply_overrides(JobConfig(), bad)


def test_cli_rejects_a_bad_space_before_starting(tmp_path, capsys):
    space = tmp_path / "typo.py"
    space.write_text('ARCH = "mmoe"\ndef space():\n    return {"model.params.num_expert": 4}\n')
    assert main(["--space", str(space), "--storage", str(tmp_path)]) == 2
    assert "num_expert" in capsys.readouterr().err
    assert main(["--space", str(tmp_path / "missing.py")]) == 2
    assert not (tmp_path / "tune-mmoe").exists()


def test_max_concurrent_trials_fits_the_cluster():
    workers = WorkersConfig(num_workers=2, cpus_per_worker=1.0)  # 2 CPUs + 1 for Ray Data + the trial's own
    assert max_concurrent_trials(workers, {"CPU": 16.0}) == 5
    assert max_concurrent_trials(workers, {"CPU": 2.0}) == 1  # never 0: one trial still runs
    gpu = replace(workers, use_gpu=True)
    assert max_concurrent_trials(gpu, {"CPU": 64.0, "GPU": 8.0}) == 4
    assert max_concurrent_trials(gpu, {"CPU": 64.0}) == 1


def _results(experiment_dir: Path) -> dict[str, str]:
    """trial id -> its result.json text (one JSON line per reported epoch)."""
    return {p.parent.name.removeprefix("trial_"): p.read_text()
            for p in sorted(experiment_dir.glob("trial_*/result.json"))}


def _epochs(result_json: str) -> list[int]:
    return [json.loads(line)["epoch"] for line in result_json.splitlines()]


def _interrupt_after_first_epoch_of(trial_glob: Path, done: threading.Event) -> None:
    """Sends Tune's stop signal (as Ctrl+C would) once a trial's inner run checkpointed epoch 1."""
    while not done.wait(0.05):
        if any(p.joinpath("train", "checkpoint_manager_snapshot.json").exists()
               for p in trial_glob.parent.glob(trial_glob.name)):
            os.kill(os.getpid(), signal.SIGUSR1)
            return


@pytest.fixture(scope="module")
def interrupted_then_resumed(ray_session, tiny_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tune")
    space_path = tmp / "lr_grid.py"
    space_path.write_text(SPACE)
    base = JobConfig(
        name="tune",
        # small batches: the interrupted trial's last epoch (from its epoch-1 checkpoint to its end) must
        # outlast the signal's way to Tune; at 256 rows a one-worker epoch of tiny data took about 1 s
        data=DataConfig(path=str(tiny_data), generate=None, batch_size=64),
        model=ModelConfig(arch="sharedbottom"),
        train=TrainConfig(epochs=EPOCHS, log_every=1000),
        workers=WorkersConfig(num_workers=1),
        runs_dir=str(tmp / "runs"),
    )
    options = SearchOptions(name="grid", storage=str(tmp / "tune"), num_samples=1, metric=METRIC,
                            max_concurrent=1, reduction_factor=2)
    experiment_dir = tmp / "tune" / "grid"

    done = threading.Event()
    watcher = threading.Thread(target=_interrupt_after_first_epoch_of,
                               args=(experiment_dir / "trial_*_00002", done), daemon=True)
    watcher.start()
    try:
        assert search(base, space_path, options) == experiment_dir
    finally:
        done.set()
    before = _results(experiment_dir)
    table_before = pd.read_csv(experiment_dir / TRIALS_CSV)
    best_written_before = (experiment_dir / BEST_CONFIG).exists()

    search(base, space_path, options)  # the same call again resumes the experiment
    return base, experiment_dir, before, table_before, best_written_before


def test_interrupted_search_leaves_an_unfinished_trial(interrupted_then_resumed):
    _, _, before, table, best_written = interrupted_then_resumed
    assert len(before) == 3
    status = dict(zip(table[LR], table["status"]))
    assert status[0.2] == "done" and status[1e-9] == "stopped early"
    assert status[0.1] in ("running", "pending"), "Tune saved the interrupted trial as unfinished"
    assert not best_written, "no best config until every trial has finished"


def test_asha_stops_the_absurd_learning_rate_after_one_epoch(interrupted_then_resumed):
    _, experiment_dir, _, _, _ = interrupted_then_resumed
    table = pd.read_csv(experiment_dir / TRIALS_CSV).set_index(LR)
    assert table.loc[1e-9, "epochs"] == 1 and table.loc[1e-9, "status"] == "stopped early"
    for lr in (0.2, 0.1):
        assert table.loc[lr, "epochs"] == EPOCHS and table.loc[lr, "status"] == "done"
    assert table.loc[1e-9, METRIC] < min(table.loc[0.2, METRIC], table.loc[0.1, METRIC])


def test_resume_keeps_finished_trials_and_completes_the_rest(interrupted_then_resumed):
    _, experiment_dir, before, _, _ = interrupted_then_resumed
    after = _results(experiment_dir)
    assert after.keys() == before.keys(), "the same trials, none started anew"
    last = max(after)  # the third trial, the one interrupted
    for trial_id in set(after) - {last}:
        assert after[trial_id] == before[trial_id], "a finished trial was re-run"
    epochs = _epochs(after[last])
    assert epochs[-1] == EPOCHS and len(epochs) == len(set(epochs)), \
        f"the interrupted trial must continue from its checkpoint, not start over: epochs {epochs}"


def test_trials_table_and_best_config_train(interrupted_then_resumed):
    base, experiment_dir, _, _, _ = interrupted_then_resumed
    table = pd.read_csv(experiment_dir / TRIALS_CSV)
    assert list(table.columns) == ["trial_id", LR, METRIC, "epochs", "status"]
    assert table[METRIC].is_monotonic_decreasing, "best trial first"
    assert (experiment_dir / TRIALS_MD).read_text().count("\n") == 2 + len(table)
    best = load_config(experiment_dir / BEST_CONFIG)
    assert best.train.optim.sparse_lr == table.loc[0, LR]
    # exactly the job the best trial trained (its config as Tune applied it), under its own name:
    # `ray_jobs.train --config best_config.yaml` runs that job (train() itself is tested elsewhere)
    assert best == replace(apply_overrides(base, {LR: table.loc[0, LR]}), name=best.name) != base
    assert best.runs_dir == base.runs_dir and best.model == base.model and best.data == base.data


# Four trials, the last one hopeless (ASHA stops it after one epoch), in a session that runs
# three at a time: a stopped trial's Train controller dies with it, and its worker group's
# placement group is only removed by Ray Train's PlacementGroupCleaner, which needs the State API
# (the dashboard). Without it every stopped trial kept its workers' CPUs and a search hung once
# they were all leaked ("Cluster resources are not enough to run any task from ReadFilesParquetV2").
# The hopeless trial comes last, so it starts only once a good trial has finished and its rung
# already holds good results: ASHA stops it whatever the timing. (A hopeless trial among the
# first three could reach the rung first, with nothing to compare it with, and run to the end.)
MANY_SPACE = f"""
from ray import tune
ARCH = "sharedbottom"
def space():
    return {{"{LR}": tune.grid_search([0.2, 0.1, 0.05, 1e-9])}}
"""


def test_a_search_with_more_trials_than_run_at_once_finishes_and_frees_their_resources(ray_session, tiny_data, tmp_path):
    import time

    from ray.util import placement_group_table

    space_path = tmp_path / "many.py"
    space_path.write_text(MANY_SPACE)
    base = JobConfig(name="many", data=DataConfig(path=str(tiny_data), generate=None, batch_size=256),
                     model=ModelConfig(arch="sharedbottom"),
                     train=TrainConfig(epochs=2, log_every=1000),  # full epochs: 4 steps learn nothing (AUC 0.50 +- 0.01)
                     workers=WorkersConfig(num_workers=1), runs_dir=str(tmp_path / "runs"))
    workers_cpus = base.workers.num_workers * base.workers.cpus_per_worker
    fit = max_concurrent_trials(base.workers, ray_session.cluster_resources())
    assert fit < 4, "the search must have more trials than the session runs at once"
    experiment_dir = search(base, space_path, SearchOptions(name="many", storage=str(tmp_path / "tune"), num_samples=1,
                                                           metric=METRIC, reduction_factor=2))
    table = pd.read_csv(experiment_dir / TRIALS_CSV)
    assert len(table) == 4 and table["status"].isin(["done", "stopped early"]).all(), table
    assert table.set_index(LR).loc[1e-9, "status"] == "stopped early", "ASHA stops the hopeless trial: the case that leaked"
    assert (experiment_dir / BEST_CONFIG).exists()

    def held_cpus() -> float:  # CPUs still reserved by placement groups (Tune's trial groups included)
        groups = placement_group_table().values()
        return sum(b.get("CPU", 0.0) for g in groups if g["state"] == "CREATED" for b in g["bundles"].values())

    deadline = time.monotonic() + 30  # the cleaner polls once a second
    while held_cpus() >= workers_cpus and time.monotonic() < deadline:
        time.sleep(1)
    assert held_cpus() < workers_cpus, f"placement groups left behind: {placement_group_table()}"
