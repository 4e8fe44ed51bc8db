"""Train a model: `python -m ray_jobs.train [--config job.yaml]`.

With no config it runs the embedded default: local Ray, the synthetic data set (generated on
first use), PEPNet, 2 CPU workers; then prints the domain x task metrics table of the test
split and the run directory holding metrics.json and the sharded checkpoint.
With `--passes <dir>` it trains pass by pass over day folders instead (`ray_jobs.training.passes`).
"""

from __future__ import annotations

import argparse
import sys

from ray_jobs.core.cli import add_job_flags, exit_code, job_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_job_flags(parser, arch=True)
    parser.add_argument("--run-name", help="run directory name under runs_dir (default: <name>-<time>)")
    parser.add_argument("--passes", metavar="DIR", help="train pass by pass over the day folders of DIR, evaluating "
                        "each day before training on it; the same --run-name again resumes")
    parser.add_argument("--max-passes", type=int, help="with --passes: stop after this many passes in total")
    args = parser.parse_args(argv)
    if args.max_passes is not None and not args.passes:
        parser.error("--max-passes needs --passes")

    def body() -> None:
        config = job_from_args(args)
        if args.passes:
            from ray_jobs.training.passes import run_passes

            run_passes(config, args.passes, args.run_name, args.max_passes)
        else:
            from ray_jobs.training.job import train

            train(config, args.run_name)

    return exit_code(body)


if __name__ == "__main__":
    sys.exit(main())
