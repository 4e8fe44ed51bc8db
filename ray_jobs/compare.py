"""Compare models side by side: `python -m ray_jobs.compare --models pepnet,sharedbottom --data <dir>`.

Every model trains with the same budget, seeds and data; the report directory gets AUC / GAUC
tables with spread over seeds and 95% intervals over test users, per-cell gains over the
baseline, expert loads and, with `--conflict-tasks A,B`, STEM-Net's negative-transfer buckets.
Model syntax: a registered name (`pepnet`) or `label=name{json params}`; `--params-<label> JSON`
merges more params into one entry (`ray_jobs.experiments.compare`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Sequence

from ray_jobs.core.cli import add_job_flags, exit_code, job_from_args
from ray_jobs.core.config import apply_overrides
from ray_jobs.experiments.compare import CompareRequest, compare, request_from_flags


def parse_request(argv: Sequence[str]) -> CompareRequest:
    """The comparison the command line asks for (ConfigError on a bad flag value)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="--params-<label> JSON: extra params for the model labelled <label>")
    parser.add_argument("--models", required=True, help="comma-separated name or label=name{json params}")
    add_job_flags(parser)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--out", help="report directory (default reports/compare-<time>)")
    parser.add_argument("--runs-dir", help="override runs_dir (where the runs' directories go)")
    parser.add_argument("--baseline", default="sharedbottom", help="label the gains are measured against ('none': no gains)")
    parser.add_argument("--reuse", action="store_true", help="keep runs that already hold metrics of the same job")
    parser.add_argument("--runs-prefix", help="name the runs <prefix>-<label>-s<seed> (default: the --out directory's "
                                              "name); with --reuse, an earlier comparison's prefix reports its runs again")
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples of the test users for the 95%% intervals (0: none)")
    parser.add_argument("--conflict-tasks", help="A,B: add STEM-Net's bucket analysis of tasks A and B")
    parser.add_argument("--conflict-reference", default="single_task",
                        help="label of the per-task model whose predictions define the buckets (default single_task; "
                             "'oracle': the true probabilities of synthetic data)")
    args, rest = parser.parse_known_args(argv)
    base = job_from_args(args)
    if args.runs_dir:
        base = apply_overrides(base, {"runs_dir": args.runs_dir}, where="--runs-dir")
    return request_from_flags(base, args.models, args.seeds, args.out, args.baseline, args.reuse, args.bootstrap,
                              args.conflict_tasks, args.conflict_reference, rest,
                              shlex.join(["python", "-m", "ray_jobs.compare", *argv]), args.runs_prefix)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return exit_code(lambda: compare(parse_request(argv)))


if __name__ == "__main__":
    sys.exit(main())
