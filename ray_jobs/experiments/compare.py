"""Compare models side by side (the library half of `python -m ray_jobs.compare`).

Every model trains with the same budget (epochs, batch size, workers, optimiser), the same seeds
and the same data set spec, through `ray_jobs.training.job.train` on one Ray instance; each run's test
metrics (metrics.json) and test predictions (test_predictions.parquet) are then collected into
one report directory (files listed in `ray_jobs.reports.comparison`): tables of AUC / GAUC with their
spread over seeds and their 95% intervals over test users (`ray_jobs.evaluation.uncertainty`), per-cell gains
over the baseline, expert load of the MoE models, and with `--conflict-tasks A,B` STEM-Net's
negative-transfer buckets (`ray_jobs.evaluation.conflict`).

Model syntax (`--models`, comma-separated): a registered name (`pepnet`) or
`label=name{json params}` for a variant, e.g. `'pepnet,epnet_only=pepnet{"use_ppnet": false}'`.
`--params-<label> JSON` merges more params into one entry, e.g. `--params-mmoe '{"num_experts": 8}'`.
`label=@<best_config.yaml>` takes a Ray Tune search's result (`ray_jobs.tune` writes it): its
model, params and optimiser (`train.optim`); everything else (data, epochs, batch, workers,
seeds) is the comparison's, so a tuned model keeps the others' budget.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow.dataset as pads

from modules.spec import PROBABILITY_PREFIX, DatasetSpec
from modules.strict import ConfigError
from ray_jobs.core.config import JobConfig, ModelConfig, load_config
from sharding.optim import OptimConfig
from ray_jobs.core.log import logger
from ray_jobs.core.paths import local_only
from ray_jobs.core.run_dir import JOB_FILE, METRICS_FILE
from ray_jobs.core.storage import local_path
from ray_jobs.evaluation.conflict import bucket_aucs
from ray_jobs.evaluation.metrics import ALL_DOMAINS, bootstrap_ci, cell_metrics
from ray_jobs.evaluation.oracle import oracle_ablation
from ray_jobs.evaluation.predictions import Predictions
from ray_jobs.evaluation.uncertainty import confidence_intervals, load_predictions
from ray_jobs.reports.comparison import METRICS, ORACLE, Analyses, RunRecord, write_report

_TUNED = re.compile(r"^(?P<label>[A-Za-z0-9_.-]+)=@(?P<path>.+)$", re.S)
_ENTRY = re.compile(r"^(?:(?P<label>[A-Za-z0-9_.-]+)=)?(?P<arch>[A-Za-z0-9_]+)(?P<params>\{.*\})?$", re.S)


@dataclass(frozen=True)
class ModelEntry:
    """One column of the comparison: a registered architecture with its params, under a label."""

    label: str
    arch: str
    params: dict[str, Any] = field(default_factory=dict)
    optim: OptimConfig | None = None  # a tuned entry's optimiser; None: the base job's
    source: str | None = None  # the best_config.yaml a tuned entry came from


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
        tuned = _TUNED.match(token)
        if tuned is not None:
            entries.append(tuned_entry(tuned["label"], tuned["path"]))
            continue
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


def tuned_entry(label: str, path: str | Path) -> ModelEntry:
    """The entry of a Tune search's `best_config.yaml`: its model, params and optimiser."""
    if not Path(path).is_file():
        raise ConfigError(f"--models: {label}=@{path}: no such file (a Tune search writes best_config.yaml)")
    best = load_config(path)
    return ModelEntry(label, best.model.arch, dict(best.model.params), optim=best.train.optim, source=str(path))


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
    """The base job with only the model and the seed changed (and a tuned entry's optimiser):
    that is what keeps the budget equal."""
    return replace(base, model=ModelConfig(arch=entry.arch, params=dict(entry.params)),
                   train=replace(base.train, seed=seed, optim=entry.optim or base.train.optim))


def _reusable(run_dir: Path, job: JobConfig) -> bool:
    """Same job once parsed (not same text: config fields added later take their defaults)."""
    if not (run_dir / METRICS_FILE).exists() or not (run_dir / JOB_FILE).exists():
        return False
    try:
        return load_config(run_dir / JOB_FILE) == job
    except ConfigError:
        return False


def train_all(base: JobConfig, entries: Sequence[ModelEntry], seeds: Sequence[int], prefix: str,
              reuse: bool = False) -> list[RunRecord]:
    """Trains every (model, seed) on one Ray instance; returns where each run's metrics are.

    With `reuse`, a run directory already holding metrics of exactly the same job is kept, so
    a comparison interrupted halfway resumes instead of starting over (and one that has every
    run already starts no Ray).
    """
    from ray_jobs.training.job import train
    from ray_jobs.training.runtime import init_ray

    records = []
    for seed in seeds:
        for entry in entries:
            job = job_for(base, entry, seed)
            name = f"{prefix}-{entry.label}-s{seed}"
            run_dir = Path(base.runs_dir).resolve() / name
            if reuse and _reusable(run_dir, job):
                logger.info("compare: reusing %s", run_dir)
            else:
                init_ray(base)  # once: a no-op when Ray is up
                logger.info("compare: training %s (%s %s) seed %d", entry.label, entry.arch, entry.params, seed)
                start = time.perf_counter()
                run_dir = train(job, run_name=name)
                logger.info("compare: %s seed %d done in %.0fs", entry.label, seed, time.perf_counter() - start)
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


def oracle_predictions(data_dir: str | Path, spec: DatasetSpec) -> Predictions | None:
    """The test split scored by its true probabilities (prob_<task>); None on real data."""
    columns = [PROBABILITY_PREFIX + t for t in spec.tasks]
    test = pads.dataset(str(Path(data_dir) / "test"), format="parquet")
    if not set(columns) <= set(test.schema.names):
        return None
    ids = [spec.id_column] if spec.id_column else []
    table = test.to_table(columns=[*columns, *spec.tasks, spec.domain_column, spec.group_column, *ids])
    stack = lambda names: np.stack([table[n].to_numpy() for n in names], axis=1)  # noqa: E731
    sample_id = table[spec.id_column].to_numpy() if ids else np.full(table.num_rows, -1)
    return Predictions(stack(columns), stack(spec.tasks), table[spec.domain_column].to_numpy(),
                       table[spec.group_column].to_numpy(), sample_id)


def oracle_cells(data_dir: str | Path, spec: DatasetSpec, num_resamples: int = 200) -> pd.DataFrame | None:
    """AUC / GAUC per cell of the true probabilities on the test split: the ceiling any model can
    reach. None when the data set has no prob_<task> columns (real data).

    `auc_ci95` / `gauc_ci95` are half-widths of the oracle's 95% bootstrap interval (users
    resampled): the sampling noise of the cell's test rows, which bounds how small a per-cell
    difference between models can be told apart from chance (tiny cells have only a few positives).
    """
    oracle = oracle_predictions(data_dir, spec)
    if oracle is None:
        return None
    probs, labels, domain, group = oracle.probs, oracle.labels, oracle.domain, oracle.group
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


@dataclass(frozen=True)
class CompareRequest:
    """Everything `compare` needs, as parsed from the command line."""

    base: JobConfig
    entries: list[ModelEntry]
    seeds: list[int]
    out: Path
    baseline: str | None = "sharedbottom"
    reuse: bool = False
    bootstrap: int = 200  # resamples of the test users; 0 skips the intervals
    conflict_tasks: tuple[str, str] | None = None
    conflict_reference: str = "single_task"
    command: str | None = None
    # runs are named <runs_prefix>-<label>-s<seed> (default: the report directory's name); the
    # prefix of an earlier comparison, with `reuse`, analyses its runs again under another `out`
    runs_prefix: str | None = None


def analyse(records: Sequence[RunRecord], spec: DatasetSpec, request: CompareRequest, data_root: Path) -> Analyses:
    """The report's prediction-based parts: intervals over test users and the conflict buckets."""
    run_dirs: dict[str, list[Path]] = {}
    for r in records:
        run_dirs.setdefault(r.label, []).append(Path(r.run_dir))
    predictions = load_predictions(run_dirs, spec.tasks)
    if predictions is None:
        if request.conflict_tasks:
            raise ConfigError("--conflict-tasks needs every run's test_predictions.parquet; retrain without --reuse")
        return Analyses(notes=("some runs have no test_predictions.parquet (trained by an older Seesaw): "
                               "no intervals over test users",))
    intervals, cell_intervals = (confidence_intervals(predictions, spec, request.baseline, request.bootstrap)
                                 if request.bootstrap > 0 else (None, None))
    conflict, setup = None, {}
    if request.conflict_tasks:
        task_a, task_b = request.conflict_tasks
        if request.conflict_reference == ORACLE:  # buckets by the true probabilities (synthetic data)
            predictions = {**predictions, ORACLE: [oracle_predictions(data_root, spec)]}
        conflict = bucket_aucs(predictions, request.conflict_reference, spec.tasks, task_a, task_b)
        setup = {"task_a": task_a, "task_b": task_b, "reference": request.conflict_reference}
    notes = (f"intervals from {request.bootstrap} bootstrap resamples of the test users",) if request.bootstrap else ()
    ablation = oracle_ablation(data_root, spec, num_resamples=max(request.bootstrap, 20))
    return Analyses(intervals, cell_intervals, conflict, setup, notes, ablation)


def _describe(entry: ModelEntry) -> str:
    text = f"{entry.label} = {entry.arch} {json.dumps(entry.params)}"
    if entry.source is None:
        return text
    return (f"{text} (tuned, {entry.source}: sparse_lr {entry.optim.sparse_lr:.4g}, "
            f"dense_lr {entry.optim.dense_lr:.4g})")


def compare(request: CompareRequest) -> Path:
    """Trains every model on every seed and writes the report directory; returns it."""
    from ray_jobs.data.dataset import prepare_dataset

    base, entries, baseline = local_only(request.base, "compare"), request.entries, request.baseline
    labels = [e.label for e in entries]
    if baseline is not None and baseline not in labels:
        raise ConfigError(f"--baseline {baseline!r} is not among the models {labels} (use --baseline none to skip gains)")
    if request.conflict_tasks and request.conflict_reference not in (*labels, ORACLE):
        raise ConfigError(f"--conflict-reference {request.conflict_reference!r} is neither 'oracle' nor among the "
                          f"models {labels} (add single_task to --models)")
    dataset = prepare_dataset(base)  # the one spec every model shares; generated once if configured
    if request.conflict_reference == ORACLE and request.conflict_tasks and oracle_predictions(dataset.root, dataset.spec) is None:
        raise ConfigError(f"--conflict-reference oracle: {dataset.root} has no prob_<task> columns (real data)")
    if request.conflict_tasks:
        unknown = [t for t in request.conflict_tasks if t not in dataset.spec.tasks]
        if unknown:
            raise ConfigError(f"--conflict-tasks: unknown task(s) {unknown}; tasks are {list(dataset.spec.tasks)}")
    out = Path(local_path(request.out, "--out", "compare"))
    records = train_all(base, entries, request.seeds, prefix=request.runs_prefix or out.name, reuse=request.reuse)
    context = {"command": f"`{request.command}`" if request.command else "-", "data": str(dataset.root),
               "models": ", ".join(_describe(e) for e in entries),
               "seeds": ", ".join(map(str, request.seeds)), "epochs": str(base.train.epochs),
               "batch size per worker": str(base.data.batch_size), "workers": str(base.workers.num_workers),
               "max steps per epoch": str(base.train.max_steps_per_epoch), "baseline": str(baseline)}
    report = write_report(out, collect(records), records, oracle_cells(dataset.root, dataset.spec), baseline, context,
                          analyse(records, dataset.spec, request, dataset.root))
    logger.info("compare: report %s", report)
    return out


def task_pair(text: str, flag: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise ConfigError(f"{flag} {text!r}: expected two different task names, e.g. click,like")
    return parts[0], parts[1]


def params_flags(rest: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`--params-<label> JSON` (or `--params-<label>=JSON`) pairs left over by argparse."""
    extra: dict[str, dict[str, Any]] = {}
    i = 0
    while i < len(rest):
        flag, _, value = rest[i].partition("=")
        if not flag.startswith("--params-") or len(flag) == len("--params-"):
            raise ConfigError(f"unrecognized argument {rest[i]!r} (model params go in --params-<label> JSON)")
        if not value:
            if i + 1 >= len(rest):
                raise ConfigError(f"{flag} needs a JSON object")
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


def request_from_flags(base: JobConfig, models: str, seeds: str, out: str | None, baseline: str, reuse: bool,
                       bootstrap: int, conflict_tasks: str | None, conflict_reference: str,
                       params: Sequence[str], command: str, runs_prefix: str | None = None) -> CompareRequest:
    """The CompareRequest the command-line flags spell (`params`: the leftover --params-<label> pairs)."""
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {seeds!r}: expected comma-separated integers") from None
    if bootstrap < 0:
        raise ConfigError(f"--bootstrap {bootstrap}: expected a count >= 0")
    return CompareRequest(
        base=base, entries=with_params(parse_models(models), params_flags(params)), seeds=seed_list,
        out=Path(out or f"reports/compare-{time.strftime('%Y%m%d-%H%M%S')}"),
        baseline=None if baseline.lower() == "none" else baseline, reuse=reuse, bootstrap=bootstrap,
        conflict_tasks=task_pair(conflict_tasks, "--conflict-tasks") if conflict_tasks else None,
        conflict_reference=conflict_reference, command=command, runs_prefix=runs_prefix)
