"""What every entry point shares: the job flags, one way to apply them, and clean exits.

Every entry point is `argparse` + one call wrapped in `exit_code`: bad input (a config key, a
data file, a checkpoint) prints one `error:` line and exits 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

import yaml

from modules.strict import ConfigError
from ray_jobs.core.config import C, JobConfig, apply_overrides, load_config, with_overrides
from ray_jobs.core.console import set_verbose
from ray_jobs.core.errors import USER_ERRORS
from ray_jobs.core.paths import job_paths


def add_job_flags(parser: argparse.ArgumentParser, workers_flag: str = "--num-workers",
                  arch: bool = False) -> None:
    """The flags of every job entry point: --config, --data, --epochs, a worker count, --set
    (and --arch where the entry point trains one model)."""
    parser.add_argument("--config", help="job YAML (default: the embedded default job)")
    if arch:
        parser.add_argument("--arch", help="override model.arch (model.params reset when it names another model)")
    parser.add_argument("--data", help="override data.path (a data set directory; never generated)")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument(workers_flag, dest="num_workers", type=int, help="override workers.num_workers")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key by its dotted path, e.g. --set train.optim.dense_lr=0.01 "
                             "(VALUE is read as YAML); repeatable")
    parser.add_argument("--verbose", action="store_true",
                        help="print everything Ray, TorchRec and FBGEMM log (by default it goes to <run dir>/logs/)")


def parse_set(items: list[str]) -> dict[str, Any]:
    """`["a.b=1", "c=x"]` -> {"a.b": 1, "c": "x"} (values parsed as YAML scalars/lists)."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=3")
        try:
            parsed[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: VALUE is not valid YAML: {exc}") from exc
    return parsed


def job_from_args(args: argparse.Namespace) -> JobConfig:
    """The JobConfig the job flags of `add_job_flags` ask for: the config file (or the embedded
    default), then --data/--epochs/workers/--arch, then every --set, all through one strict helper;
    data.path and runs_dir then made absolute, the same directory on every node (`core.paths`)."""
    set_verbose(getattr(args, "verbose", False))
    flags = {"data.path": getattr(args, "data", None), "train.epochs": getattr(args, "epochs", None),
             "workers.num_workers": getattr(args, "num_workers", None), "model.arch": getattr(args, "arch", None)}
    flags = {k: v for k, v in flags.items() if v is not None}
    if "data.path" in flags:
        flags["data.generate"] = None  # a --data path names an existing data set: never generate into it
    config = apply_overrides(load_config(getattr(args, "config", None)), flags, where="command line")
    return job_paths(apply_overrides(config, parse_set(getattr(args, "overrides", [])), where="--set"))


def preset_from_args(presets: dict[str, C], args: argparse.Namespace, flags: tuple[str, ...]) -> C:
    """`presets[args.preset]` with every given flag of `flags` (argparse dests, which are the
    preset's field names) and every `--set KEY=VALUE` (if the parser has it) set through the one
    override helper; flags left out keep the preset's values."""
    given = {name: getattr(args, name) for name in flags if getattr(args, name) is not None}
    given.update(parse_set(getattr(args, "overrides", [])))
    return with_overrides(presets[args.preset], given, where=f"preset {args.preset}")


def exit_code(body: Callable[[], object]) -> int:
    """Runs an entry point: a bad config, data file or checkpoint prints one clear line and
    exits 2 (no traceback); success exits 0."""
    try:
        body()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
