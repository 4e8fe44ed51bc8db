"""What reaches the console: Seesaw's lines, warnings and errors; everything else goes to files.

A default run prints the sharding plan, a rank-0 progress bar, one line per epoch and the final
table. Ray's, Ray Train's, Ray Data's, TorchRec's and FBGEMM's INFO records go to
`<run dir>/logs/` (driver.log, worker-<rank>.log) and Ray's own session logs; `--verbose` (or
SEESAW_VERBOSE=1) lets them all through to the console as before.

Ray reads some of its settings from environment variables once, when `ray` is imported (and
every process Ray starts inherits them), so `quiet_env_defaults()` runs from
`ray_jobs/__init__.py`, before any Seesaw module imports Ray. A user's own env vars still win.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from ray_jobs.core.log import logger
from ray_jobs.core.storage import Location, local_mirror

VERBOSE_ENV = "SEESAW_VERBOSE"
VERBOSE_FLAG = "--verbose"
LOGS_DIR = "logs"
DRIVER_LOG = "driver.log"
# Ray Data's default logging config with its console handler at WARNING (its file log keeps INFO).
RAY_DATA_LOGGING_CONFIG = Path(__file__).with_name("ray_data_logging.yaml")
# Third-party loggers whose INFO records are progress chatter on a worker (the sharding planner's
# stats table, FBGEMM's kernel argument dumps, "Successfully loaded" lines).
CHATTY_LOGGERS = ("ray", "torchrec", "fbgemm_gpu", "torch.distributed", "ray.data", "ray.train", "ray.tune")


# Notices, not warnings: what Seesaw chose (Ray Data's progress bars off), or addressed to the
# libraries' own developers (Ray Train passing Ray Data a deprecated option, torch.fx's
# is_fx_tracing advice to TorchRec, torch.distributed.checkpoint's deprecation of the
# ShardedTensor that TorchRec's sharded tables are, printed when a checkpoint loads, and DDP's
# of the `broadcast_buffers` argument that TorchRec's DistributedModelParallel passes it). They
# go to the log files only, or nowhere (warnings).
NOTICES = ("Progress bars disabled.", "Progress bars for operators disabled.",
           "is_fx_tracing will return true for both")
DEPRECATIONS_FOR_LIBRARIES = (r".*ExecutionOptions.exclude_resources.*",
                              r"Please use DTensor instead and we are deprecating ShardedTensor",
                              r"`broadcast_buffers` is deprecated")


class DropNotices(logging.Filter):
    """A console handler's filter: drops the records in NOTICES (file handlers keep them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return verbose() or not str(record.msg).startswith(NOTICES)


def verbose() -> bool:
    """Whether everything reaches the console (`--verbose` on an entry point, or SEESAW_VERBOSE=1)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0") or VERBOSE_FLAG in sys.argv[1:]


def quiet_env_defaults() -> None:
    """Ray's env-var settings; must run before `import ray` (see the module docstring)."""
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # every worker's warning, not "repeated 2x" summaries
    # print() in a worker stays print() (Ray Train would turn it into a root-logger INFO record):
    # the progress bar (`ray.experimental.tqdm_ray`) reaches the driver through the worker's stdout
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    if verbose():
        os.environ[VERBOSE_ENV] = "1"  # Ray's processes inherit it
        return
    os.environ.setdefault("RAY_DATA_LOGGING_CONFIG", str(RAY_DATA_LOGGING_CONFIG))
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")  # the progress bar leaves print() alone
    # Ray Train would set a worker's root logger to INFO on the console (TorchRec's planner and
    # FBGEMM's INFO records); training.worker gives workers a log file instead
    os.environ.setdefault("RAY_TRAIN_ENABLE_WORKER_STRUCTURED_LOGGING", "0")


def set_verbose(on: bool) -> None:
    """`--verbose`: from now on, this process and the Ray processes it starts print everything."""
    if on:
        os.environ[VERBOSE_ENV] = "1"


def quiet_process_logging() -> None:
    """In a Ray process (driver, worker, actor): library INFO records stay off the console.

    Ray Train configures a worker's root logger at INFO with a console handler; its console
    handlers are raised to WARNING here, its file handlers (Ray's session logs) keep INFO.
    """
    if verbose():
        return
    import warnings

    for message in DEPRECATIONS_FOR_LIBRARIES:
        warnings.filterwarnings("ignore", message=message)
    logging.getLogger("torch.fx._symbolic_trace").addFilter(DropNotices())
    for name in ("", *CHATTY_LOGGERS):
        for handler in logging.getLogger(name).handlers:
            is_console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            if is_console and handler.level < logging.WARNING:
                handler.setLevel(logging.WARNING)


def worker_process_setup() -> None:
    """Ray's `worker_process_setup_hook` for a local Ray (`training.runtime.start_local_ray`).

    Ray Train's PlacementGroupCleaner calls the State API from its own process with no address;
    on a machine running several Ray instances it cannot tell which is its own, and logs a
    traceback. RAY_ADDRESS names this process's cluster for it.
    """
    import ray

    if not os.environ.get("RAY_ADDRESS"):  # unset or "" (what a caller sets to force a local Ray)
        os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    quiet_process_logging()


_FILE_HANDLERS: dict[Path, logging.Handler] = {}


def log_to_file(path: Path, level: int = logging.INFO) -> logging.Handler:
    """Adds a file handler for the root logger and the `seesaw` logger at `level` (once per path);
    returns it (remove it with `remove_handler`)."""
    if path in _FILE_HANDLERS:
        return _FILE_HANDLERS[path]
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    for target in (root, logger):
        target.addHandler(handler)
    _quiet_root_console(root)
    _FILE_HANDLERS[path] = handler
    return handler


def _quiet_root_console(root: logging.Logger) -> None:
    """With a root file handler at INFO, Python's last-resort console (WARNING+) no longer applies:
    a console handler at WARNING keeps real warnings on the console (none in verbose mode: all)."""
    if any(getattr(h, "_seesaw_console", False) for h in root.handlers):
        return
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose() else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console.addFilter(lambda record: not record.name.startswith("seesaw"))  # it has its own handler
    console._seesaw_console = True  # type: ignore[attr-defined]
    root.addHandler(console)


def publish_logs(run_dir: Location, name: str) -> None:
    """A run directory on remote storage: uploads the log file `name` this process wrote into
    its local mirror (`storage.local_mirror`: a FileHandler appends to local files only) to
    `<run dir>/logs/`; a local run directory already holds it."""
    source = local_mirror(run_dir) / LOGS_DIR / name
    if not run_dir.is_local and source.exists():
        run_dir.child(LOGS_DIR, name).copy_file_from(source)


def remove_handler(handler: logging.Handler) -> None:
    for path in [p for p, h in _FILE_HANDLERS.items() if h is handler]:
        del _FILE_HANDLERS[path]
    for target in (logging.getLogger(), logger):
        target.removeHandler(handler)
    handler.close()

