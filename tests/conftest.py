"""Test-session fixtures, and how `make test` spreads the files over its pytest-xdist workers.

Ray starts once per session (start-up costs ~20-30 s), so once per xdist worker.
"""

from __future__ import annotations

import pytest

import ray_jobs  # noqa: F401  Ray's env-var defaults (ray_jobs.core.console), before anything imports Ray


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that needs it, with spare logical CPUs for Ray Data reads."""
    import ray

    from ray_jobs.training.runtime import start_local_ray

    if not ray.is_initialized():
        start_local_ray(num_cpus=6)  # a Tune search's local Ray (dashboard, quiet console): tests run searches
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """The `tiny` synthetic preset, generated once per session."""
    from ray_jobs.data.synthetic import PRESETS, generate

    return generate(PRESETS["tiny"], tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="session")
def uneven_data(tmp_path_factory):
    """The `tiny` preset with 19,991 rows: train 15,993, valid 1,999, test 1,999 rows, none of
    them divisible by 2 workers (so Ray Train's default equal split would drop a row of each)."""
    from dataclasses import replace

    from ray_jobs.data.synthetic import PRESETS, generate

    return generate(replace(PRESETS["tiny"], rows=19_991), tmp_path_factory.mktemp("data") / "uneven")


@pytest.fixture(scope="session")
def trained_run(ray_session, uneven_data, tmp_path_factory):
    """(config, run dir) of one uninterrupted 2-worker SharedBottom run on the uneven tiny data,
    default (full) shuffle, with mid-epoch checkpoints: the end-to-end tests read it, and the
    fault-tolerance test compares a killed-and-resumed run of the same config with it (one
    training run fewer per CI)."""
    from ray_jobs.core.config import DataConfig, JobConfig, ModelConfig, TrainConfig, WorkersConfig
    from ray_jobs.training.job import train as run

    config = JobConfig(
        name="e2e",
        data=DataConfig(path=str(uneven_data), generate=None, batch_size=256),
        model=ModelConfig(arch="sharedbottom"),
        train=TrainConfig(epochs=2, log_every=25, checkpoint_every_steps=10),
        workers=WorkersConfig(num_workers=2, max_failures=1),
        runs_dir=str(tmp_path_factory.mktemp("runs")),
    )
    return config, run(config, run_name="e2e")


# -- scheduling over xdist workers (`make test` runs `pytest -n 2`) -------------------------
# Files that share a session fixture run on one worker, so it is built once: the trained run
# is the reference of the fault-tolerance and driver-restart tests.
SHARED_WORKER = {f"tests/ray_jobs/{name}.py": "trained_run"
                 for name in ("test_end_to_end", "test_fault_tolerance", "test_driver_restart")}
# The longest work units, longest first (serial seconds in a clean-clone CI of a8b844e), so
# that they start first and the short files fill in around them: with xdist's collection order,
# two of them ended the run on their own.
LONGEST_FIRST = ("trained_run", "tests/ray_jobs/test_tune.py", "tests/ray_jobs/test_elastic.py",  # ~260, ~250, ~150 s
                 "tests/platform/test_fake_autoscaler.py", "tests/ray_jobs/test_multinode.py",    # ~125, ~110 s
                 "tests/ray_jobs/test_passes.py", "tests/ray_jobs/test_console.py",               # ~60 s each
                 "tests/ray_jobs/test_shuffle_quality.py", "tests/ray_jobs/test_storage.py",
                 "tests/ray_jobs/test_compare.py", "tests/ray_jobs/test_shuffle.py")


def work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: its file, or the group of files that share its worker."""
    path = nodeid.split("::", 1)[0]
    return SHARED_WORKER.get(path, path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest work units first, each unit's tests together (collection order otherwise)."""
    rank = {unit: i for i, unit in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))  # stable


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: plain `pytest` runs without xdist too
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """xdist's by-file scheduling over `work_unit`s, in collection order (no reordering by size)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False
    return ByWorkUnit(config, log)
