"""Train a model: `python -m ray_jobs.train [--config job.yaml]`.

With no config it runs the embedded default: local Ray, the synthetic data set (generated on
first use), PEPNet, 2 CPU workers; then prints the domain x task metrics table of the test
split and the run directory holding metrics.json and the sharded checkpoint.
With `--passes <dir>` it trains pass by pass over day folders instead (`ray_jobs.passes`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from modules.strict import ConfigError
from ray_jobs.cli import exit_code, override
from ray_jobs.config import JobConfig, ModelConfig, dump_config, load_config
from ray_jobs.evaluation import PREDICTIONS_FILE
from ray_jobs.report import format_table
from ray_jobs.runtime import init_ray, make_trainer, ordered_ingest, prepare_dataset
from ray_jobs.train_loop import METRICS_FILE, train_loop_per_worker


def parse_args(argv: list[str] | None) -> tuple[JobConfig, str | None, tuple[str, int | None] | None]:
    """(config, run name, (passes directory, max passes) or None for epoch training)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="job YAML (default: the embedded default job)")
    parser.add_argument("--arch", help="override model.arch (model.params reset to defaults)")
    parser.add_argument("--data", help="override data.path")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--num-workers", type=int, help="override workers.num_workers")
    parser.add_argument("--run-name", help="run directory name under runs_dir (default: <name>-<time>)")
    parser.add_argument("--passes", metavar="DIR", help="train pass by pass over the day folders of DIR, evaluating "
                        "each day before training on it (ray_jobs/passes.py); same --run-name again resumes")
    parser.add_argument("--max-passes", type=int, help="with --passes: stop after this many passes in total")
    args = parser.parse_args(argv)
    if args.max_passes is not None and not args.passes:
        parser.error("--max-passes needs --passes")
    config = override(load_config(args.config), args.data, args.epochs, args.num_workers)
    if args.arch:
        config = replace(config, model=ModelConfig(arch=args.arch))
    return config, args.run_name, (args.passes, args.max_passes) if args.passes else None


def run(config: JobConfig, run_name: str | None = None) -> Path:
    """Trains, evaluates on the test split, and returns the run directory."""
    from modules.dense.registry import parse_arch_config

    parse_arch_config(config.model.arch, config.model.params)  # fail on a typo before starting Ray
    if config.collision:
        raise ConfigError("collision (bounded raw-id features) is trained pass by pass: use --passes <dir>")
    dataset = prepare_dataset(config)
    init_ray(config)
    run_name = run_name or f"{config.name}-{config.model.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    # mid-epoch checkpoints resume at a batch position, which means the same batches only in order
    ingest = ordered_ingest() if config.train.checkpoint_every_steps else None
    trainer = make_trainer(config, dataset, train_loop_per_worker, run_name, dataset_config=ingest)
    result = trainer.fit()
    if result.error:
        raise result.error
    run_dir = Path(config.runs_dir).resolve() / run_name
    with result.checkpoint.as_directory() as checkpoint_dir:
        metrics = json.loads((Path(checkpoint_dir) / METRICS_FILE).read_text())
        shutil.copyfile(Path(checkpoint_dir) / PREDICTIONS_FILE, run_dir / PREDICTIONS_FILE)
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    (run_dir / "job.yaml").write_text(dump_config(config))
    (run_dir / "latest_checkpoint").write_text(result.checkpoint.path + "\n")
    print(format_table_from_records(metrics["cells"]))
    print(f"[seesaw] test mean AUC {metrics['summary']['test_mean_auc']:.4f}, "
          f"mean GAUC {metrics['summary']['test_mean_gauc']:.4f}")
    print(f"[seesaw] run directory: {run_dir}")
    return run_dir


def format_table_from_records(cells: list[dict]) -> str:
    import pandas as pd

    return format_table(pd.DataFrame(cells))


def main(argv: list[str] | None = None) -> int:
    def body() -> Path:
        config, run_name, passes = parse_args(argv)
        if passes is None:
            return run(config, run_name)
        from ray_jobs.passes import run_passes

        return run_passes(config, passes[0], run_name, passes[1])

    return exit_code(body)


if __name__ == "__main__":
    sys.exit(main())
