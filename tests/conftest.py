"""Test-session fixtures. Ray starts once per session (start-up costs ~20-30 s)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that needs it, with spare logical CPUs for Ray Data reads."""
    import ray

    if not ray.is_initialized():
        # address="local": always a fresh instance, never a cluster another process left running
        ray.init(address="local", num_cpus=6, include_dashboard=False, configure_logging=False, log_to_driver=True)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """The `tiny` synthetic preset, generated once per session."""
    from ray_jobs.generate import PRESETS, generate

    return generate(PRESETS["tiny"], tmp_path_factory.mktemp("data") / "tiny")
