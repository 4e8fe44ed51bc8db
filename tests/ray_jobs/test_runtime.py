"""The local Ray a job starts (`training.runtime`): with the dashboard for a Tune search, without
it for one job, and then no PlacementGroupCleaner in that job's trainer.

The cleaner is Ray Train's (a detached actor per trainer that polls the State API); dropping
it goes through a private method of Ray Train 2.60, so these tests run Ray Train's own code:
they fail if it stops adding the cleaner (the override would then be dead code) or if a
dashboard-less job's trainer would still start one (it would warn every second, on the console:
`test_console` counts those lines).
"""

from __future__ import annotations

import pytest
from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

from ray_jobs.core.config import DataConfig, JobConfig
from ray_jobs.data.dataset import prepare_dataset
from ray_jobs.training import runtime


def _loop(config: dict) -> None:  # never run: the trainers here are only built
    raise AssertionError("not run")


@pytest.fixture()
def trainer_callbacks(ray_session, tiny_data, tmp_path):
    """The default callbacks of a job's trainer over the tiny data set, as Ray Train's fit()
    would hand them to its controller."""
    config = JobConfig(data=DataConfig(path=str(tiny_data), generate=None), runs_dir=str(tmp_path))
    dataset = prepare_dataset(config)

    def callbacks() -> list:
        return runtime.make_trainer(config, dataset, _loop, "callbacks")._create_default_callbacks()

    return callbacks


def _cleaners(callbacks: list) -> list:
    return [c for c in callbacks if isinstance(c, PlacementGroupCleanerCallback)]


def test_a_ray_with_the_state_api_keeps_ray_trains_cleaner(trainer_callbacks, monkeypatch):
    monkeypatch.setattr(runtime, "_LOCAL_RAY_WITHOUT_STATE_API", False)
    callbacks = trainer_callbacks()
    assert len(_cleaners(callbacks)) == 1, [type(c).__name__ for c in callbacks]


def test_a_local_ray_without_the_dashboard_starts_no_cleaner(trainer_callbacks, monkeypatch):
    monkeypatch.setattr(runtime, "_LOCAL_RAY_WITHOUT_STATE_API", False)
    kept = trainer_callbacks()
    monkeypatch.setattr(runtime, "_LOCAL_RAY_WITHOUT_STATE_API", True)
    dropped = trainer_callbacks()
    assert _cleaners(dropped) == []
    assert [type(c) for c in dropped] == [type(c) for c in kept if not isinstance(c, PlacementGroupCleanerCallback)]


@pytest.mark.parametrize(("tune", "env", "dashboard"), [(True, None, True), (False, None, False),
                                                         (False, "1", True), (False, "0", False)])
def test_only_a_search_or_the_env_var_starts_the_local_dashboard(monkeypatch, tune, env, dashboard):
    started = []
    monkeypatch.setattr(runtime.ray, "is_initialized", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if env is None:
        monkeypatch.delenv(runtime.LOCAL_DASHBOARD_ENV, raising=False)
    else:
        monkeypatch.setenv(runtime.LOCAL_DASHBOARD_ENV, env)
    monkeypatch.setattr(runtime, "start_local_ray", lambda num_cpus, dashboard: started.append(dashboard))
    runtime.init_ray(JobConfig(), tune=tune)
    assert started == [dashboard]
