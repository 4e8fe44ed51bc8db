"""Batch prediction: `python -m ray_jobs.predict --model <export dir> --data <Parquet or raw log> --out <dir>`.

Scores every row with the exported program over Ray Data (`map_batches`, so it runs on a
cluster too) and writes Parquet: `sample_id` when the input has it, `pred_<task>` per task.
A raw log (.csv/.tsv) of a prepared data set is encoded with the export's saved encoders
first. Input is validated like training data (`ray_jobs.serving.predict`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from ray_jobs.core.cli import exit_code
from ray_jobs.core.config import JobConfig
from ray_jobs.serving.predict import DEFAULT_BATCH, input_files, predict_files, validate_inputs
from ray_jobs.training.runtime import init_ray


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="export directory (python -m ray_jobs.export)")
    parser.add_argument("--data", required=True, help="a Parquet file, a directory of them, or a raw .csv/.tsv log")
    parser.add_argument("--out", required=True, help="output directory for the scored Parquet files")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--concurrency", type=int, default=1, help="scoring actors")
    args = parser.parse_args(argv)

    def body() -> None:
        with tempfile.TemporaryDirectory() as work_dir:
            files = input_files(args.model, args.data, work_dir)
            validate_inputs(args.model, files)  # bad input fails before Ray starts
            init_ray(JobConfig())
            predict_files(args.model, files, args.out, args.batch_size, args.concurrency)

    return exit_code(body)


if __name__ == "__main__":
    sys.exit(main())
