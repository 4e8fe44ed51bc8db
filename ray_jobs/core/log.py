"""The one logger: `seesaw`. Every Seesaw line goes through it, on the driver and on workers.

The handler writes to whatever `sys.stdout` is when a record is emitted (pytest's capture, a
redirect): on a Ray Train worker it is the worker's stdout, which Ray forwards to the driver
once (a plain `print()` there is patched to tee into Ray's logger too, showing lines twice).
Workers log through `rank0`, so a group of N prints each line once.
"""

from __future__ import annotations

import logging
import sys

LOGGER_NAME = "seesaw"
FORMAT = "[seesaw] %(message)s"

logger = logging.getLogger(LOGGER_NAME)


class _CurrentStdout(logging.StreamHandler):
    """A StreamHandler on the current `sys.stdout`, looked up at each record."""

    @property
    def stream(self):  # noqa: ANN201 - the logging API's attribute
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ assigns it
        pass


class _EveryLine(logging.Formatter):
    """FORMAT on every non-blank line of a multi-line message (a table stays recognisably
    Seesaw's; blank separator lines are left out, the console is short)."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = FORMAT.replace("%(message)s", "")
        return "\n".join(prefix + line for line in record.getMessage().splitlines() if line.strip()) or prefix


def _configure() -> None:
    if logger.handlers:
        return
    handler = _CurrentStdout()
    handler.setFormatter(_EveryLine())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # Ray Train sets the worker's root logger up; never print twice


_configure()


def get_logger() -> logging.Logger:
    """The `seesaw` logger (configured on import: INFO to stdout, `[seesaw] ` prefix)."""
    return logger


def rank0(rank: int, message: str, *args: object) -> None:
    """Logs `message` on rank 0 only (worker progress lines)."""
    if rank == 0:
        logger.info(message, *args)
