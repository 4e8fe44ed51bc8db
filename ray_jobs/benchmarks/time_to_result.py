"""Time to result: process start to metrics.json, Seesaw against a plain-PyTorch loop.

`python -m ray_jobs.benchmarks.time_to_result [--data DIR] [--archs sharedbottom,pepnet]`

For each model, two fresh processes are timed from start to exit and to the moment they write
metrics.json (the issue's measure: a local Ray's shutdown, about 1.5 s, comes after it), one
after the other:
`python -m ray_jobs.train` (local Ray, 1 worker, the whole path: Ray Data, Ray Train, the
DMP-sharded EBC, validation every epoch, test scoring, the sharded checkpoint) and the plain
loop below over the same Parquet rows (one process, `torch.nn.EmbeddingBag`, the same dense
architecture, epochs and batch size; the splits read into memory, validation every epoch and the
test split scored at the end, metrics.json written). The ratios are Seesaw's times over the
plain loop's; every fixed cost (Ray start-up, worker start, planning, Ray Data's executions)
is in it; the moments of Seesaw's run (metrics.json's `timeline`: Ray up, splits read, the
worker process and its sharded model, first epoch, test scored, ...) are rows beside it,
seconds since its process started, after each epoch's overhead (its wall outside the train steps
and the validation forwards: the first epoch's, the later ones' mean and its parts). Data: `data/kuairand` when it is prepared
(`python -m ray_jobs.prepare recipes/kuairand.yaml --out data/kuairand`), else a synthetic
set of the same size (38k train rows).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

KUAIRAND = Path("data/kuairand")
SYNTHETIC_ROWS = 42_000  # the prepared KuaiRand sample: 38k train + 2k valid + 1.7k test rows


def reference_main(data: str, arch: str, epochs: int, batch_size: int, out: Path) -> None:
    """The plain loop (run in its own process by `measure`): train, validate, test, metrics.json."""
    import pyarrow.parquet as pq
    import torch

    from modules.model import SeesawModel, multitask_loss
    from ray_jobs.benchmarks.reference import ReferenceModel, _inputs
    from ray_jobs.core.config import DataConfig, JobConfig
    from ray_jobs.data.dataset import prepare_dataset
    from ray_jobs.evaluation.metrics import auc

    torch.manual_seed(0)
    dataset = prepare_dataset(JobConfig(data=DataConfig(path=data, generate=None)))
    spec = dataset.spec
    columns = list(spec.required_columns())
    tables = {s: pq.read_table(list(dataset.splits[s].files), columns=columns) for s in ("train", "valid", "test")}
    keys = SeesawModel(spec, arch, device="meta").kjt_keys
    model = ReferenceModel(spec, arch, None, keys)
    sparse_opt = torch.optim.Adagrad(model.bags.parameters(), lr=0.05)
    dense_opt = torch.optim.Adam(model.dense_arch.parameters(), lr=1e-3)

    def evaluate(split: str) -> float:
        model.eval()
        logits, labels = [], []
        with torch.no_grad():
            for start in range(0, tables[split].num_rows, batch_size):
                sparse, dense, label, domain = _inputs(tables[split].slice(start, batch_size), spec, keys)
                logits.append(model(sparse, dense, domain).logits)
                labels.append(label)
        model.train()
        logit, label = torch.cat(logits), torch.cat(labels)
        aucs = [auc(label[:, t].numpy(), logit[:, t].numpy()) for t in range(label.shape[1])]
        aucs = [a for a in aucs if not math.isnan(a)]  # a task without both classes has no AUC
        return sum(aucs) / len(aucs)

    summary: dict[str, float] = {}
    for epoch in range(epochs):
        for start in range(0, tables["train"].num_rows, batch_size):
            sparse, dense, labels, domain = _inputs(tables["train"].slice(start, batch_size), spec, keys)
            loss, _ = multitask_loss(model(sparse, dense, domain), labels, torch.ones(labels.shape[0]))
            sparse_opt.zero_grad()
            dense_opt.zero_grad()
            loss.backward()
            sparse_opt.step()
            dense_opt.step()
        summary = {"epoch": epoch + 1, "val_mean_auc": evaluate("valid")}
    summary["test_mean_auc"] = evaluate("test")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"summary": summary}, indent=2))


def _timed(command: list[str], metrics: Path) -> tuple[float, float]:
    """Seconds from starting `command` to its exit, and to its last write of `metrics` (the
    result; Ray's shutdown comes after it); an error unless it wrote `metrics`."""
    started, start = time.time(), time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not metrics.exists():
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, metrics.stat().st_mtime - started


def measure(data: Path, arch: str, epochs: int, batch_size: int, out: Path) -> dict[str, float | str]:
    """One model: Seesaw's and the plain loop's wall time, process start to exit and to
    metrics.json (`_timed`)."""
    stamp = time.strftime("%H%M%S")
    seesaw_run = f"ttr-{arch}-{stamp}"
    seesaw, seesaw_result = _timed([sys.executable, "-m", "ray_jobs.train", "--data", str(data), "--arch", arch,
                     "--epochs", str(epochs), "--num-workers", "1", "--run-name", seesaw_run,
                     "--set", f"runs_dir={out}", "--set", f"data.batch_size={batch_size}"],
                    out / seesaw_run / "metrics.json")
    ref_dir = out / f"reference-{arch}-{stamp}"
    reference, reference_result = _timed([sys.executable, "-m", "ray_jobs.benchmarks.time_to_result", "--reference", "--data", str(data),
                        "--archs", arch, "--epochs", str(epochs), "--batch-size", str(batch_size), "--out", str(ref_dir)],
                       ref_dir / "metrics.json")
    seesaw_metrics = json.loads((out / seesaw_run / "metrics.json").read_text())
    ref_auc = json.loads((ref_dir / "metrics.json").read_text())["summary"]["test_mean_auc"]
    return {"arch": arch, "seesaw_s": seesaw, "reference_s": reference, "ratio": seesaw / reference,
            "seesaw_to_metrics_s": seesaw_result, "reference_to_metrics_s": reference_result,
            "ratio_to_metrics": seesaw_result / reference_result,
            "seesaw_test_auc": seesaw_metrics["summary"]["test_mean_auc"], "reference_test_auc": ref_auc,
            **epoch_overheads(seesaw_metrics.get("epochs", [])),
            **{f"at {name}": t for name, t in seesaw_metrics.get("timeline", {}).items()}}


def epoch_overheads(epochs: list[dict[str, float]]) -> dict[str, float]:
    """The first epoch's and the later epochs' mean overhead (wall outside the train steps and
    the validation forwards, `training.epoch.EpochTime`), and what the later ones' is made of."""
    if not epochs:
        return {}
    later = epochs[1:] or epochs

    def mean(key: str) -> float:
        return sum(e[key] for e in later) / len(later)

    return {"epoch 1 overhead s": epochs[0]["overhead_s"], "epochs 2+ overhead s": mean("overhead_s"),
            "epochs 2+ wall s": mean("wall_s"), "epochs 2+: train input wait s": mean("train_input_wait_s"),
            "epochs 2+: eval outside forward s": mean("eval_total_s") - mean("eval_forward_s"),
            "epochs 2+: checkpoint s": mean("checkpoint_s")}


def default_data(root: Path) -> Path:
    """data/kuairand if prepared, else a synthetic set of its size under `root`."""
    if (KUAIRAND / "spec.json").exists():
        return KUAIRAND
    from ray_jobs.data.synthetic import PRESETS, generate

    return generate(replace(PRESETS["tiny"], rows=SYNTHETIC_ROWS), root / f"synthetic-{SYNTHETIC_ROWS}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="data set directory (default: data/kuairand, else synthetic)")
    parser.add_argument("--archs", default="sharedbottom,pepnet")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("reports/time_to_result"))
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)  # the plain loop's own process
    args = parser.parse_args(argv)
    if args.reference:
        reference_main(str(args.data), args.archs, args.epochs, args.batch_size, args.out)
        return 0
    from ray_jobs.core.log import logger
    from ray_jobs.core.tables import markdown
    import pandas as pd

    data = args.data or default_data(args.out)
    rows = [measure(data, arch, args.epochs, args.batch_size, args.out.resolve()) for arch in args.archs.split(",")]
    by_arch = pd.DataFrame(rows).set_index("arch").round(3).T  # a row per measure, a column per model
    table = markdown(by_arch.rename_axis("measure").reset_index())
    logger.info("time to result, %s, %d epochs, 1 worker, batch %d:\n%s", data, args.epochs, args.batch_size, table)
    (args.out / "time_to_result.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
