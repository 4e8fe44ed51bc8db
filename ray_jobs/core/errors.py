"""The user errors every entry point turns into one line and exit code 2 (`core.cli`).

A user error is bad input the user can fix (a config key, a data file, a checkpoint path);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from modules.strict import ConfigError
from sharding.errors import CheckpointError


class DataError(ValueError):
    """A data set file breaks the contract of its spec (names the file, column and value)."""


class RawDataError(DataError):
    """A raw log or join table cannot be prepared as its recipe says (names file, column, row)."""


USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, DataError, CheckpointError)

__all__ = ["ConfigError", "CheckpointError", "DataError", "RawDataError", "USER_ERRORS"]
