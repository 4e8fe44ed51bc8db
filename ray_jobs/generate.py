"""Generate a synthetic data set: `python -m ray_jobs.generate --out <dir> [--preset P] [--rows N]`.

The double-seesaw generator (`ray_jobs.data.synthetic`) writes train/valid/test Parquet plus
spec.json; for the seesaw presets it then prints what each mechanism term is worth (the oracle
ablation). `--raw census|log` writes raw files for `ray_jobs.prepare` instead
(`ray_jobs.data.raw_files`: a headerless census-style CSV, or a chunked CSV interaction log).
"""

from __future__ import annotations

import argparse
import sys
import time

from modules.spec import DatasetSpec
from ray_jobs.core.cli import exit_code, preset_from_args
from ray_jobs.core.log import logger
from ray_jobs.core.storage import local_or_none
from ray_jobs.data.synthetic import PRESETS, generate
from ray_jobs.evaluation.metrics import ALL_DOMAINS
from ray_jobs.evaluation.oracle import ABLATION_FILE, oracle_ablation
from ray_jobs.reports.comparison import ablation_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output directory (or storage URI: s3://..., file://...)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--rows", type=int, help="total rows over all splits")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--conflict-fraction", type=float)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="set any generator field, e.g. --set user_group_scale=0 (a seesaw term off)")
    parser.add_argument("--raw", choices=("census", "log"), help="write raw files for prepare instead of a data set")
    parser.add_argument("--files", type=int, default=4, help="--raw log: number of CSV files")
    args = parser.parse_args(argv)

    def body() -> None:
        if args.raw:
            from ray_jobs.data.raw_files import write_raw

            write_raw(args.raw, args.out, args.rows, args.files, args.seed or 0)
            return
        config = preset_from_args(PRESETS, args, ("rows", "seed", "conflict_fraction"))
        start = time.perf_counter()
        generate(config, args.out)
        logger.info("%s: %d rows, %d domains, %d tasks in %.1fs", args.out, config.rows, len(config.domains),
                    len(config.tasks), time.perf_counter() - start)
        out = local_or_none(args.out, "--out")  # the ablation reads local files: none for a data set on storage
        ablation = oracle_ablation(out, DatasetSpec.load(out), num_resamples=50) if out else None
        if ablation is not None:  # a seesaw preset: what each term is worth, pooled over domains
            ablation.to_csv(out / ABLATION_FILE, index=False)
            print(ablation_table(ablation[ablation["domain"] == ALL_DOMAINS]))
            logger.info("per-domain cells: %s", out / ABLATION_FILE)

    return exit_code(body)


if __name__ == "__main__":
    sys.exit(main())
