"""What every entry point shares: config overrides from flags, and clean exits on bad input."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Callable

from modules.strict import ConfigError
from ray_jobs.data import DataError
from ray_jobs.config import JobConfig
from sharding.checkpoint import CheckpointError

USER_ERRORS = (ConfigError, DataError, CheckpointError)


def override(config: JobConfig, data: str | None = None, epochs: int | None = None,
             num_workers: int | None = None) -> JobConfig:
    """`config` with the common command-line overrides applied (None: keep the config's value)."""
    if data:
        config = replace(config, data=replace(config.data, path=data))
    if epochs is not None:
        config = replace(config, train=replace(config.train, epochs=epochs))
    if num_workers is not None:
        config = replace(config, workers=replace(config.workers, num_workers=num_workers))
    return config


def exit_code(body: Callable[[], object]) -> int:
    """Runs an entry point: a bad config, data file or checkpoint prints one clear line and
    exits 2 (no traceback); success exits 0."""
    try:
        body()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
