"""Plan preview CLI: how a job's tables would be sharded on a cluster you don't have.

    python -m sharding.plan --config configs/x.yaml --world-size 64 --device cuda --hbm-gb 80 \
        [--local-world-size 8] [--batch-size N] [--spec path/to/spec.json]

Runs on a laptop: no GPU, no process group, no data beyond the spec. Exit status 1 when the
tables do not fit, 2 for a bad config or a missing spec.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from modules.spec import SPEC_FILE, DatasetSpec
from modules.strict import ConfigError, from_dict, read_yaml
from sharding.planner import PlannerConfig
from sharding.preview import PlanDoesNotFit, format_preview, preview_plan


@dataclass(frozen=True)
class _Model:
    arch: str = "pepnet"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Data:
    path: str = "data/synthetic/default"
    batch_size: int = 512


@dataclass(frozen=True)
class PlanJob:
    """The sections of a job YAML the planner reads (model, data.path/batch_size, sharding), with
    the job config's defaults (`ray_jobs.core.config.JobConfig`; a test keeps them equal).
    Read here rather than through the job config, so `sharding/` never imports `ray_jobs/`."""

    model: _Model = _Model()
    data: _Data = _Data()
    sharding: PlannerConfig = PlannerConfig()


def load_plan_job(path: str | Path | None) -> PlanJob:
    """The planner's sections of the job YAML at `path` (None: the embedded default job)."""
    if path is None:
        return PlanJob()
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a job config is a mapping of sections")
    data = raw.get("data") or {}
    sections = {"model": raw.get("model") or {}, "sharding": raw.get("sharding") or {},
                "data": {k: data[k] for k in ("path", "batch_size") if isinstance(data, dict) and k in data}}
    return from_dict(PlanJob, sections, where=str(path))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sharding.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="job YAML (default: the embedded default job)")
    parser.add_argument("--world-size", type=int, required=True, help="total ranks (GPUs, or CPU workers)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--local-world-size", type=int, help="ranks per node (default: world size)")
    parser.add_argument("--hbm-gb", type=float, help="GPU memory per rank in GiB (cuda; default TorchRec's 32)")
    parser.add_argument("--ddr-gb", type=float, help="host memory per rank in GiB (cpu; default TorchRec's 128)")
    parser.add_argument("--batch-size", type=int, help="per-rank batch size (default: the config's)")
    parser.add_argument("--spec", help=f"spec.json (default: <data.path>/{SPEC_FILE} from the config)")
    args = parser.parse_args(argv)
    if args.world_size < 1:
        parser.error("--world-size must be >= 1")
    return args


def load_spec(spec_arg: str | None, data_path: str) -> DatasetSpec:
    """The spec from --spec, else beside the config's data set; a missing one says where it looked."""
    path = Path(spec_arg) if spec_arg else Path(data_path) / SPEC_FILE
    if not path.exists():
        origin = "--spec" if spec_arg else "the config's data.path"
        raise ConfigError(f"no data set spec at {path} (from {origin}); pass --spec path/to/{SPEC_FILE} "
                          "or build the data set first (python -m ray_jobs.prepare / ray_jobs.generate)")
    return DatasetSpec.load(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The planner's advice about real topologies and dry-run dense estimates is noise here.
    logging.getLogger("torchrec.distributed.planner").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="torchrec")
    try:
        config = load_plan_job(args.config)
        spec = load_spec(args.spec, config.data.path)
        preview = preview_plan(
            spec, config.model.arch, config.model.params, args.world_size, args.device,
            batch_size=args.batch_size or config.data.batch_size, local_world_size=args.local_world_size,
            hbm_gb=args.hbm_gb, ddr_gb=args.ddr_gb, config=config.sharding,
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PlanDoesNotFit as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_preview(preview))
    return 0


if __name__ == "__main__":
    sys.exit(main())
