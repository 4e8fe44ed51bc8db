"""Compare models side by side: `python -m ray_jobs.compare --models pepnet,sharedbottom --data <dir>`.

Every model trains with the same budget (epochs, batch size, workers, optimiser), the same seeds
and the same data set spec, through `ray_jobs.train.run` on one Ray instance; each run's test
metrics (its metrics.json) are then collected into one report directory:

    report.md     mean AUC / GAUC over the domain x task cells per model (mean ± std over seeds,
                  min-max), the per-cell gain over the baseline (the double-seesaw view), and
                  per-cell AUC / GAUC per model next to the oracle
    results.csv   long format: model, seed, domain, task, n, auc, gauc, logloss
    summary.csv   per model: mean / std / min / max over seeds of the mean AUC and mean GAUC
    gains.csv     per model, cell and metric: mean over seeds of model - baseline
    oracle.csv    per cell: AUC / GAUC of the generator's true probabilities (prob_<task>)
    runs.csv      which run directory holds each (model, seed)
    heatmaps/     <model>_{auc,gauc}.png, gain_<model>_{auc,gauc}.png, oracle_{auc,gauc}.png

Model syntax (`--models`, comma-separated): a registered name (`pepnet`) or
`label=name{json params}` for a variant, e.g. `'pepnet,epnet_only=pepnet{"use_ppnet": false}'`.
`--params-<label> JSON` merges more params into one entry, e.g. `--params-mmoe '{"num_experts": 8}'`.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow.dataset as pads

from modules.spec import PROBABILITY_PREFIX, DatasetSpec
from modules.strict import ConfigError
from ray_jobs.cli import exit_code
from ray_jobs.config import JobConfig, ModelConfig, load_config
from ray_jobs.metrics import ALL_DOMAINS, bootstrap_ci, cell_metrics, summary
from ray_jobs.report import gain_heatmap, gain_matrix, heatmap
from ray_jobs.train_loop import METRICS_FILE

RESULT_COLUMNS = ("model", "seed", "domain", "task", "n", "auc", "gauc", "logloss")
METRICS = ("auc", "gauc")
ORACLE = "oracle"
_ENTRY = re.compile(r"^(?:(?P<label>[A-Za-z0-9_.-]+)=)?(?P<arch>[A-Za-z0-9_]+)(?P<params>\{.*\})?$", re.S)


@dataclass(frozen=True)
class ModelEntry:
    """One column of the comparison: a registered architecture with its params, under a label."""

    label: str
    arch: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """Where one (model, seed) run left its metrics.json."""

    label: str
    arch: str
    seed: int
    run_dir: Path


def _split_top_level(text: str) -> list[str]:
    """Splits on commas outside braces, so JSON params may contain commas."""
    parts, depth, current = [], 0, []
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_models(text: str) -> list[ModelEntry]:
    """`--models` text -> entries; unknown architectures, bad params and duplicate labels fail here,
    before any run starts (a typo should not surface after an hour of training)."""
    from modules.dense.registry import parse_arch_config

    entries = []
    for token in _split_top_level(text):
        match = _ENTRY.match(token)
        if match is None:
            raise ConfigError(f"--models: cannot parse {token!r}; expected name or label=name{{json}}")
        params: dict[str, Any] = {}
        if match["params"]:
            try:
                params = json.loads(match["params"])
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--models: {token!r}: params are not valid JSON: {exc}") from exc
            if not isinstance(params, dict):
                raise ConfigError(f"--models: {token!r}: params must be a JSON object")
        entries.append(ModelEntry(match["label"] or match["arch"], match["arch"], params))
    if not entries:
        raise ConfigError("--models: no model given")
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--models: duplicate labels in {labels}; name variants with label=name{{...}}")
    for entry in entries:
        parse_arch_config(entry.arch, entry.params)
    return entries


def with_params(entries: Sequence[ModelEntry], extra: dict[str, dict[str, Any]]) -> list[ModelEntry]:
    """Merges `--params-<label>` objects into the matching entries (re-validated)."""
    from modules.dense.registry import parse_arch_config

    unknown = sorted(set(extra) - {e.label for e in entries})
    if unknown:
        raise ConfigError(f"--params-{unknown[0]}: no model labelled {unknown[0]!r} in --models")
    merged = [replace(e, params={**e.params, **extra.get(e.label, {})}) for e in entries]
    for entry in merged:
        parse_arch_config(entry.arch, entry.params)
    return merged


def job_for(base: JobConfig, entry: ModelEntry, seed: int) -> JobConfig:
    """The base job with only the model and the seed changed: that is what keeps the budget equal."""
    return replace(base, model=ModelConfig(arch=entry.arch, params=dict(entry.params)),
                   train=replace(base.train, seed=seed))


def _reusable(run_dir: Path, job: JobConfig) -> bool:
    """Same job once parsed (not same text: config fields added later take their defaults)."""
    if not (run_dir / METRICS_FILE).exists() or not (run_dir / "job.yaml").exists():
        return False
    try:
        return load_config(run_dir / "job.yaml") == job
    except ConfigError:
        return False


def train_all(base: JobConfig, entries: Sequence[ModelEntry], seeds: Sequence[int], prefix: str,
              reuse: bool = False) -> list[RunRecord]:
    """Trains every (model, seed) on one Ray instance; returns where each run's metrics are.

    With `reuse`, a run directory already holding metrics of exactly the same job is kept, so
    a comparison interrupted halfway resumes instead of starting over.
    """
    from ray_jobs.runtime import init_ray
    from ray_jobs.train import run

    init_ray(base)
    records = []
    for seed in seeds:
        for entry in entries:
            job = job_for(base, entry, seed)
            name = f"{prefix}-{entry.label}-s{seed}"
            run_dir = Path(base.runs_dir).resolve() / name
            if reuse and _reusable(run_dir, job):
                print(f"[compare] reusing {run_dir}", flush=True)
            else:
                print(f"[compare] training {entry.label} ({entry.arch} {entry.params}) seed {seed}", flush=True)
                start = time.perf_counter()
                run_dir = run(job, run_name=name)
                print(f"[compare] {entry.label} seed {seed} done in {time.perf_counter() - start:.0f}s", flush=True)
            records.append(RunRecord(entry.label, entry.arch, seed, run_dir))
    return records


def load_cells(run_dir: str | Path) -> pd.DataFrame:
    """The test-split cells table (metrics.METRIC_COLUMNS) of one run."""
    return pd.DataFrame(json.loads((Path(run_dir) / METRICS_FILE).read_text())["cells"])


def collect(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Long table of every run's cells: model, seed, then the metrics columns."""
    frames = [load_cells(r.run_dir).assign(model=r.label, seed=r.seed) for r in records]
    df = pd.concat(frames, ignore_index=True)
    return df[["model", "seed", *[c for c in df.columns if c not in ("model", "seed")]]]


def oracle_cells(data_dir: str | Path, spec: DatasetSpec, num_resamples: int = 200) -> pd.DataFrame | None:
    """AUC / GAUC per cell of the true probabilities on the test split: the ceiling any model can
    reach. None when the data set has no prob_<task> columns (real data).

    `auc_ci95` / `gauc_ci95` are half-widths of the oracle's 95% bootstrap interval (users
    resampled): the sampling noise of the cell's test rows, which bounds how small a per-cell
    difference between models can be told apart from chance (tiny cells have only a few positives).
    """
    columns = [PROBABILITY_PREFIX + t for t in spec.tasks]
    test = pads.dataset(str(Path(data_dir) / "test"), format="parquet")
    if not set(columns) <= set(test.schema.names):
        return None
    table = test.to_table(columns=[*columns, *spec.tasks, spec.domain_column, spec.group_column])
    stack = lambda names: np.stack([table[n].to_numpy() for n in names], axis=1)  # noqa: E731
    probs, labels = stack(columns), stack(spec.tasks)
    domain, group = table[spec.domain_column].to_numpy(), table[spec.group_column].to_numpy()
    cells = cell_metrics(probs, labels, domain, group, spec.tasks, spec.domains)
    half_widths: dict[str, list[float]] = {"auc_ci95": [], "gauc_ci95": []}
    for row in cells.itertuples():
        rows = np.ones(len(domain), bool) if row.domain == ALL_DOMAINS else domain == spec.domains.index(row.domain)
        t = spec.tasks.index(row.task)
        for metric in METRICS:
            if row.positives == 0 or row.positives == row.n:
                half_widths[f"{metric}_ci95"].append(np.nan)
                continue
            ci = bootstrap_ci(labels[rows, t], probs[rows, t], group[rows], metric, num_resamples=num_resamples)
            half_widths[f"{metric}_ci95"].append((ci.high - ci.low) / 2)
    return cells.assign(**half_widths)


def mean_cells(results: pd.DataFrame, label: str) -> pd.DataFrame:
    """One model's cells averaged over seeds, in the runs' (domain, task) order."""
    rows = results[results["model"] == label]
    return rows.groupby(["domain", "task"], sort=False, as_index=False)[
        ["n", "positives", "auc", "gauc", "logloss"]].mean()


def per_seed_summary(results: pd.DataFrame) -> pd.DataFrame:
    """model, seed, mean_auc, mean_gauc (metrics.summary: unweighted mean over domain x task cells)."""
    rows = []
    for (label, seed), cells in results.groupby(["model", "seed"], sort=False):
        s = summary(cells)
        rows.append({"model": label, "seed": seed, "mean_auc": s["mean_auc"], "mean_gauc": s["mean_gauc"]})
    return pd.DataFrame(rows)


def model_summary(per_seed: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """Per model: mean, std (ddof 1; 0 with one seed), min, max over seeds of mean AUC / GAUC, and
    the paired (same seed) difference of mean GAUC to the baseline."""
    rows = []
    base = per_seed[per_seed["model"] == baseline].set_index("seed") if baseline else None
    for label, group in per_seed.groupby("model", sort=False):
        row: dict[str, Any] = {"model": label, "seeds": len(group)}
        for metric in ("mean_auc", "mean_gauc"):
            values = group[metric].to_numpy()
            row.update({metric: values.mean(), f"{metric}_std": values.std(ddof=1) if len(values) > 1 else 0.0,
                        f"{metric}_min": values.min(), f"{metric}_max": values.max()})
        if base is not None and len(base):
            diff = group.set_index("seed")["mean_gauc"] - base["mean_gauc"]
            diff = diff.dropna().to_numpy()
            row["gauc_gain"] = diff.mean() if len(diff) else np.nan
            row["gauc_gain_std"] = diff.std(ddof=1) if len(diff) > 1 else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def domain_task_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Drops the pooled per-task rows: heatmaps and gains are about the domain x task cells."""
    return df[df["domain"] != ALL_DOMAINS]


def gains(results: pd.DataFrame, labels: Sequence[str], baseline: str) -> pd.DataFrame:
    """Long table model, domain, task, metric, gain: per cell, model - baseline of the seed means."""
    base = domain_task_cells(mean_cells(results, baseline))
    rows = []
    for label in labels:
        model = domain_task_cells(mean_cells(results, label))
        for metric in METRICS:
            matrix = gain_matrix(model, base, metric)
            for domain in matrix.index:
                for task in matrix.columns:
                    rows.append({"model": label, "domain": domain, "task": task, "metric": metric,
                                 "gain": float(matrix.loc[domain, task])})
    return pd.DataFrame(rows, columns=["model", "domain", "task", "metric", "gain"])


def _md(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)]) + "\n"


def _f(value: float, signed: bool = False) -> str:
    return "-" if pd.isna(value) else (f"{value:+.4f}" if signed else f"{value:.4f}")


def _summary_md(table: pd.DataFrame, oracle: pd.DataFrame | None, baseline: str | None) -> str:
    header = ["model", "seeds", "mean AUC (± std)", "AUC min-max", "mean GAUC (± std)", "GAUC min-max"]
    if baseline:
        header.append(f"GAUC gain vs {baseline} (paired, ± std)")
    rows = []
    for r in table.itertuples():
        row = [r.model, str(r.seeds), f"{_f(r.mean_auc)} ± {_f(r.mean_auc_std)}",
               f"{_f(r.mean_auc_min)}-{_f(r.mean_auc_max)}", f"{_f(r.mean_gauc)} ± {_f(r.mean_gauc_std)}",
               f"{_f(r.mean_gauc_min)}-{_f(r.mean_gauc_max)}"]
        if baseline:
            row.append(f"{_f(r.gauc_gain, True)} ± {_f(r.gauc_gain_std)}")
        rows.append(row)
    if oracle is not None:
        s = summary(oracle)
        rows.append([ORACLE, "-", _f(s["mean_auc"]), "-", _f(s["mean_gauc"]), "-", *(["-"] if baseline else [])])
    return _md(header, rows)


def _gains_md(gain: pd.DataFrame, metric: str) -> str:
    g = gain[gain["metric"] == metric]
    labels = list(pd.unique(g["model"]))
    wide = g.pivot_table(index=["domain", "task"], columns="model", values="gain", sort=False)
    rows = [[d, t, *(_f(wide.loc[(d, t), m], True) for m in labels)] for d, t in wide.index]
    for key in ("domain", "task"):  # the two seesaws: mean gain per domain, then per task
        for value, part in g.groupby(key, sort=False):
            means = part.groupby("model")["gain"].mean()
            names = [f"**{value}**", "*mean*"] if key == "domain" else ["*mean*", f"**{value}**"]
            rows.append([*names, *(_f(means[m], True) for m in labels)])
    return _md(["domain", "task", *labels], rows)


def _cells_md(results: pd.DataFrame, label: str, oracle: pd.DataFrame | None) -> str:
    rows_df = results[results["model"] == label]
    stats = rows_df.groupby(["domain", "task"], sort=False).agg(
        n=("n", "first"), positives=("positives", "first"), auc=("auc", "mean"), auc_std=("auc", "std"),
        gauc=("gauc", "mean"), gauc_std=("gauc", "std"))
    oracle_by = oracle.set_index(["domain", "task"]) if oracle is not None else None
    header = ["domain", "task", "n", "positives", "AUC", "GAUC",
              *(["oracle AUC", "oracle GAUC", "noise ±AUC / ±GAUC"] if oracle_by is not None else [])]
    rows = []
    for (domain, task), r in stats.iterrows():
        spread = lambda std: "" if pd.isna(std) else f" ± {std:.4f}"  # noqa: E731
        row = [domain, task, str(int(r.n)), str(int(r.positives)), _f(r.auc) + spread(r.auc_std), _f(r.gauc) + spread(r.gauc_std)]
        if oracle_by is not None:
            o = oracle_by.loc[(domain, task)]
            row += [_f(o["auc"]), _f(o["gauc"]), f"{_f(o['auc_ci95'])} / {_f(o['gauc_ci95'])}"]
        rows.append(row)
    return _md(header, rows)


def write_report(out: str | Path, results: pd.DataFrame, records: Sequence[RunRecord],
                 oracle: pd.DataFrame | None, baseline: str | None, context: dict[str, str]) -> Path:
    """Writes report.md, the CSVs and the heatmaps into `out`; returns the report.md path."""
    out = Path(out)
    (out / "heatmaps").mkdir(parents=True, exist_ok=True)
    labels = list(pd.unique(results["model"]))
    if baseline is not None and baseline not in labels:
        raise ConfigError(f"--baseline {baseline!r} is not among the models {labels}")
    results[list(RESULT_COLUMNS)].to_csv(out / "results.csv", index=False)
    pd.DataFrame([{"model": r.label, "arch": r.arch, "seed": r.seed, "run_dir": str(r.run_dir)} for r in records]
                 ).to_csv(out / "runs.csv", index=False)
    table = model_summary(per_seed_summary(results), baseline)
    table.to_csv(out / "summary.csv", index=False)
    if oracle is not None:
        oracle.to_csv(out / "oracle.csv", index=False)
        for metric in METRICS:
            heatmap(domain_task_cells(oracle), metric, out / "heatmaps" / f"oracle_{metric}.png", f"oracle {metric.upper()}")
    md = ["# Model comparison\n\n" + "".join(f"- {k}: {v}\n" for k, v in context.items()),
          "\n## Mean over the domain x task cells (test split; spread over seeds)\n\n", _summary_md(table, oracle, baseline)]
    for label in labels:
        cells = domain_task_cells(mean_cells(results, label))
        for metric in METRICS:
            heatmap(cells, metric, out / "heatmaps" / f"{label}_{metric}.png", f"{label} {metric.upper()}")
    if baseline is not None:
        others = [m for m in labels if m != baseline]
        gain = gains(results, others, baseline)
        gain.to_csv(out / "gains.csv", index=False)
        base_cells = domain_task_cells(mean_cells(results, baseline))
        for label in others:
            cells = domain_task_cells(mean_cells(results, label))
            for metric in METRICS:
                gain_heatmap(cells, base_cells, metric, out / "heatmaps" / f"gain_{label}_{metric}.png",
                             f"{label} - {baseline}: {metric.upper()}")
        if others:
            for metric in METRICS:
                md += [f"\n## {metric.upper()} gain over {baseline} per cell (mean over seeds)\n\n", _gains_md(gain, metric)]
    for label in labels:
        md += [f"\n## {label}: per cell (mean ± std over seeds)\n\n",
               "noise: half-width of the oracle's 95% bootstrap interval on the cell (users resampled); "
               "a per-cell difference below it is not evidence.\n\n" if oracle is not None else "",
               _cells_md(results, label, oracle),
               f"\n![{label} GAUC](heatmaps/{label}_gauc.png)"
               + (f" ![{label} gain](heatmaps/gain_{label}_gauc.png)" if baseline and label != baseline else "") + "\n"]
    path = out / "report.md"
    path.write_text("".join(md))
    return path


def compare(base: JobConfig, entries: Sequence[ModelEntry], seeds: Sequence[int], out: str | Path,
            baseline: str | None = "sharedbottom", reuse: bool = False, command: str | None = None) -> Path:
    """Trains every model on every seed and writes the report directory; returns it."""
    from ray_jobs.runtime import prepare_dataset

    labels = [e.label for e in entries]
    if baseline is not None and baseline not in labels:
        raise ConfigError(f"--baseline {baseline!r} is not among the models {labels} (use --baseline none to skip gains)")
    dataset = prepare_dataset(base)  # the one spec every model shares; generated once if configured
    out = Path(out)
    records = train_all(base, entries, seeds, prefix=out.name, reuse=reuse)
    context = {"command": f"`{command}`" if command else "-", "data": str(dataset.root),
               "models": ", ".join(f"{e.label} = {e.arch} {json.dumps(e.params)}" for e in entries),
               "seeds": ", ".join(map(str, seeds)), "epochs": str(base.train.epochs),
               "batch size per worker": str(base.data.batch_size), "workers": str(base.workers.num_workers),
               "max steps per epoch": str(base.train.max_steps_per_epoch), "baseline": str(baseline)}
    report = write_report(out, collect(records), records, oracle_cells(dataset.root, dataset.spec), baseline, context)
    print(f"[compare] report: {report}", flush=True)
    return out


def parse_args(argv: Sequence[str] | None) -> tuple[JobConfig, list[ModelEntry], list[int], Path, str | None, bool]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="--params-<label> JSON: extra params for the model labelled <label>")
    parser.add_argument("--models", required=True, help="comma-separated name or label=name{json params}")
    parser.add_argument("--data", help="data set directory (overrides data.path; never generated)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--config", help="base job YAML (default: the embedded default job)")
    parser.add_argument("--num-workers", type=int, help="override workers.num_workers")
    parser.add_argument("--out", help="report directory (default reports/compare-<time>)")
    parser.add_argument("--runs-dir", help="override runs_dir (where the runs' directories go)")
    parser.add_argument("--baseline", default="sharedbottom", help="label the gains are measured against ('none': no gains)")
    parser.add_argument("--reuse", action="store_true", help="keep runs that already hold metrics of the same job")
    args, rest = parser.parse_known_args(argv)
    extra = _params_options(parser, rest)
    base = load_config(args.config)
    if args.data:
        base = replace(base, data=replace(base.data, path=args.data, generate=None))
    if args.epochs is not None:
        base = replace(base, train=replace(base.train, epochs=args.epochs))
    if args.num_workers is not None:
        base = replace(base, workers=replace(base.workers, num_workers=args.num_workers))
    if args.runs_dir:
        base = replace(base, runs_dir=args.runs_dir)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {args.seeds!r}: expected comma-separated integers") from None
    entries = with_params(parse_models(args.models), extra)
    out = Path(args.out or f"reports/compare-{time.strftime('%Y%m%d-%H%M%S')}")
    baseline = None if args.baseline.lower() == "none" else args.baseline
    return base, entries, seeds, out, baseline, args.reuse


def _params_options(parser: argparse.ArgumentParser, rest: list[str]) -> dict[str, dict[str, Any]]:
    """`--params-<label> JSON` (or `--params-<label>=JSON`) pairs left over by argparse."""
    extra: dict[str, dict[str, Any]] = {}
    i = 0
    while i < len(rest):
        flag, _, value = rest[i].partition("=")
        if not flag.startswith("--params-") or len(flag) == len("--params-"):
            parser.error(f"unrecognized argument {rest[i]!r}")
        if not value:
            if i + 1 >= len(rest):
                parser.error(f"{flag} needs a JSON object")
            i += 1
            value = rest[i]
        try:
            params = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{flag}: not valid JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise ConfigError(f"{flag}: expected a JSON object")
        extra[flag[len("--params-"):]] = params
        i += 1
    return extra


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    def body() -> None:
        base, entries, seeds, out, baseline, reuse = parse_args(argv)
        compare(base, entries, seeds, out, baseline, reuse,
                command=shlex.join(["python", "-m", "ray_jobs.compare", *argv]))

    return exit_code(body)


if __name__ == "__main__":
    sys.exit(main())
