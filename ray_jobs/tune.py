"""Hyper-parameter search: `python -m ray_jobs.tune --space tune_spaces/<model>.py ...`.

Each Ray Tune trial runs one distributed TorchTrainer (the same loop as `ray_jobs.train`);
ASHA stops the weak trials early. The experiment lives under `<storage>/<name>`: running the
same command again resumes it. The trials table and a ready-to-run `best_config.yaml` are
written into the experiment directory (`ray_jobs.experiments.search`).
"""

from __future__ import annotations

import argparse
import sys

from ray_jobs.core.cli import add_job_flags, exit_code, job_from_args
from ray_jobs.experiments.search import SearchOptions, search


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", required=True, help="search space module, e.g. tune_spaces/pepnet.py")
    add_job_flags(parser, workers_flag="--workers-per-trial")
    parser.add_argument("--num-samples", type=int, default=8, help="trials to sample (default 8)")
    parser.add_argument("--metric", default="val_mean_gauc", help="validation metric to maximise")
    parser.add_argument("--storage", help="experiment storage directory (default: the config's runs_dir)")
    parser.add_argument("--name", help="experiment name (default: tune-<model>); an existing one resumes")
    parser.add_argument("--max-concurrent", type=int, help="trials at once (default: what the cluster fits)")
    parser.add_argument("--reduction-factor", type=int, default=2, help="ASHA reduction factor (default 2)")
    args = parser.parse_args(argv)
    options = SearchOptions(name=args.name, storage=args.storage, num_samples=args.num_samples, metric=args.metric,
                            max_concurrent=args.max_concurrent, reduction_factor=args.reduction_factor)
    return exit_code(lambda: search(job_from_args(args), args.space, options))


if __name__ == "__main__":
    sys.exit(main())
