"""The comparison report: Markdown tables, CSVs and plots from the runs of `ray_jobs.compare`.

    report.md          mean AUC / GAUC per model (spread over seeds and 95% intervals over test
                       users), per-cell gains over the baseline, expert load (MoE models), the
                       conflict analysis (when asked for) and per-cell tables next to the oracle
    results.csv        long format: model, seed, domain, task, n, auc, gauc, logloss
    summary.csv        per model: mean / std / min / max over seeds of the mean AUC and mean GAUC
    task_summary.csv   per model: mean / std over seeds of the mean over tasks of the pooled
                       per-task AUC (all tasks, and the tasks with enough test positives)
    intervals.csv      per model and metric: bootstrap interval of the mean and of the paired gain
    cell_intervals.csv per model, cell and metric: bootstrap interval
    gains.csv          per model, cell and metric: mean over seeds of model - baseline
    oracle.csv         per cell: AUC / GAUC of the generator's true probabilities (prob_<task>)
    expert_load.csv    per MoE model and expert: its share of the routing (mean over seeds)
    conflict.csv       per model, task and bucket: AUC (STEM-Net's negative-transfer analysis)
    runs.csv           which run directory holds each (model, seed)
    heatmaps/          <model>_{auc,gauc}.png, gain_<model>_{auc,gauc}.png, oracle_{auc,gauc}.png,
                       expert_load.png, conflict.png
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from modules.strict import ConfigError
from ray_jobs.core.tables import markdown
from ray_jobs.evaluation.metrics import ALL_DOMAINS, summary
from ray_jobs.evaluation.oracle import ABLATION_FILE
from ray_jobs.reports.plots import bucket_plot, expert_load_plot, gain_heatmap, gain_matrix, heatmap
from ray_jobs.core.run_dir import METRICS_FILE

RESULT_COLUMNS = ("model", "seed", "domain", "task", "n", "auc", "gauc", "logloss")
METRICS = ("auc", "gauc")
ORACLE = "oracle"


@dataclass(frozen=True)
class RunRecord:
    """Where one (model, seed) run left its metrics.json."""

    label: str
    arch: str
    seed: int
    run_dir: Path


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


MIN_TEST_POSITIVES = 20  # a task with fewer test positives has a pooled AUC that is noise (prepare warns too)


def measurable_tasks(results: pd.DataFrame, min_positives: int = MIN_TEST_POSITIVES) -> list[str]:
    """Tasks whose pooled test split holds at least `min_positives` positives in every run, in
    the runs' task order (e.g. on the KuaiRand sample: not is_follow with 7, is_forward with 12)."""
    pooled = results[results["domain"] == ALL_DOMAINS]
    fewest = pooled.groupby("task", sort=False)["positives"].min()
    return [task for task, positives in fewest.items() if positives >= min_positives]


def pooled_task_summary(results: pd.DataFrame, tasks: Sequence[str]) -> pd.DataFrame:
    """Per model: the mean over tasks of the pooled (all-domain) per-task AUC, per seed, then its
    mean / std (ddof 1; 0 with one seed) / min / max over seeds: over every task (`all_tasks_*`)
    and over `tasks` only (`measurable_*`); plus each task's pooled AUC averaged over seeds.

    This is the measure published results on multi-task benchmarks report (e.g. PEPNet's and
    STEM-Net's KuaiRand tables), so the report can be put beside them.
    """
    pooled = results[results["domain"] == ALL_DOMAINS]
    rows = []
    for label, runs in pooled.groupby("model", sort=False):
        per_task = runs.pivot_table(index="seed", columns="task", values="auc", sort=False)
        row: dict[str, Any] = {"model": label, "seeds": len(per_task)}
        for name, columns in (("all_tasks", list(per_task.columns)), ("measurable", list(tasks))):
            means = per_task[columns].mean(axis=1).to_numpy()
            row.update({f"{name}_mean": means.mean(), f"{name}_std": means.std(ddof=1) if len(means) > 1 else 0.0,
                        f"{name}_min": means.min(), f"{name}_max": means.max()})
        row.update({f"auc/{task}": value for task, value in per_task.mean(axis=0).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _pooled_task_md(table: pd.DataFrame, tasks: Sequence[str]) -> str:
    task_columns = [c.removeprefix("auc/") for c in table.columns if c.startswith("auc/")]
    rows = []
    for r in table.sort_values("all_tasks_mean", ascending=False).to_dict("records"):
        spread = (lambda name: f" ± {_f(r[name + '_std'])}") if r["seeds"] > 1 else (lambda name: "")  # noqa: E731
        rows.append([r["model"], str(r["seeds"]), _f(r["all_tasks_mean"]) + spread("all_tasks"),
                     _f(r["measurable_mean"]) + spread("measurable"), *(_f(r[f"auc/{t}"]) for t in task_columns)])
    return markdown(rows, ["model", "seeds", "mean task AUC, all tasks (± std)",
                           f"mean task AUC, {', '.join(tasks)} (± std)", *task_columns])


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


def _f(value: float, signed: bool = False) -> str:
    return "-" if pd.isna(value) else (f"{value:+.4f}" if signed else f"{value:.4f}")


def _ci(low: float, high: float, signed: bool = False) -> str:
    return "-" if pd.isna(low) else f"[{_f(low, signed)}, {_f(high, signed)}]"


def _summary_md(table: pd.DataFrame, oracle: pd.DataFrame | None, baseline: str | None,
                intervals: pd.DataFrame | None) -> str:
    header = ["model", "seeds", "mean AUC (± std)", "AUC min-max", "mean GAUC (± std)", "GAUC min-max"]
    if intervals is not None:
        header += ["AUC 95% CI (test users)", "GAUC 95% CI (test users)"]
    if baseline:
        header.append(f"GAUC gain vs {baseline} (paired, ± std)")
        if intervals is not None:
            header.append("gain 95% CI (paired)")
    ci = intervals.set_index(["model", "metric"]) if intervals is not None else None
    rows = []
    for r in table.itertuples():
        spread = (lambda std: f" ± {_f(std)}") if r.seeds > 1 else (lambda std: "")  # noqa: E731
        span = (lambda lo, hi: f"{_f(lo)}-{_f(hi)}") if r.seeds > 1 else (lambda lo, hi: "-")  # noqa: E731
        row = [r.model, str(r.seeds), _f(r.mean_auc) + spread(r.mean_auc_std), span(r.mean_auc_min, r.mean_auc_max),
               _f(r.mean_gauc) + spread(r.mean_gauc_std), span(r.mean_gauc_min, r.mean_gauc_max)]
        if ci is not None:
            row += [_ci(ci.loc[(r.model, m), "low"], ci.loc[(r.model, m), "high"]) for m in METRICS]
        if baseline:
            row.append(_f(r.gauc_gain, True) + spread(r.gauc_gain_std))
            if ci is not None:
                row.append(_ci(ci.loc[(r.model, "gauc"), "gain_low"], ci.loc[(r.model, "gauc"), "gain_high"], True))
        rows.append(row)
    if oracle is not None:
        s = summary(oracle)
        rows.append([ORACLE, "-", _f(s["mean_auc"]), "-", _f(s["mean_gauc"]), "-"] + ["-"] * (len(header) - 6))
    return markdown(rows, header)


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
    return markdown(rows, ["domain", "task", *labels])


def _cells_md(results: pd.DataFrame, label: str, oracle: pd.DataFrame | None,
              cell_intervals: pd.DataFrame | None) -> str:
    rows_df = results[results["model"] == label]
    stats = rows_df.groupby(["domain", "task"], sort=False).agg(
        n=("n", "first"), positives=("positives", "first"), auc=("auc", "mean"), auc_std=("auc", "std"),
        gauc=("gauc", "mean"), gauc_std=("gauc", "std"))
    oracle_by = oracle.set_index(["domain", "task"]) if oracle is not None else None
    ci = (cell_intervals[cell_intervals["model"] == label].set_index(["domain", "task", "metric"])
          if cell_intervals is not None else None)
    header = ["domain", "task", "n", "positives", "AUC", "GAUC",
              *(["AUC 95% CI", "GAUC 95% CI"] if ci is not None else []),
              *(["oracle AUC", "oracle GAUC", "noise ±AUC / ±GAUC"] if oracle_by is not None else [])]
    rows = []
    for (domain, task), r in stats.iterrows():
        spread = lambda std: "" if pd.isna(std) else f" ± {std:.4f}"  # noqa: E731
        row = [domain, task, str(int(r.n)), str(int(r.positives)), _f(r.auc) + spread(r.auc_std), _f(r.gauc) + spread(r.gauc_std)]
        if ci is not None:
            row += [_ci(ci.loc[(domain, task, m), "low"], ci.loc[(domain, task, m), "high"]) for m in METRICS]
        if oracle_by is not None:
            o = oracle_by.loc[(domain, task)]
            row += [_f(o["auc"]), _f(o["gauc"]), f"{_f(o['auc_ci95'])} / {_f(o['gauc_ci95'])}"]
        rows.append(row)
    return markdown(rows, header)


@dataclass(frozen=True)
class Analyses:
    """The optional parts of a report, computed by `ray_jobs.compare` from the saved predictions.

    intervals / cell_intervals: `uncertainty.confidence_intervals` tables (None: no predictions);
    conflict: `conflict.bucket_aucs` table with its task pair (A, B) and reference model.
    """

    intervals: pd.DataFrame | None = None
    cell_intervals: pd.DataFrame | None = None
    conflict: pd.DataFrame | None = None
    conflict_setup: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    ablation: pd.DataFrame | None = None  # evaluation.oracle.oracle_ablation: what each generator term is worth


def expert_loads(records: Sequence[RunRecord]) -> dict[str, dict[str, Any]]:
    """label -> {"load": [E] mean over seeds, "mean_union": float | None} for the runs whose
    metrics.json reports `telemetry/expert_load` (rank 0's last epoch, see train_loop)."""
    per_label: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        summary_ = json.loads((Path(record.run_dir) / METRICS_FILE).read_text())["summary"]
        if "telemetry/expert_load" in summary_:
            per_label.setdefault(record.label, []).append(summary_)
    return {label: {"load": np.mean([np.asarray(s["telemetry/expert_load"], float) for s in runs], axis=0),
                    "mean_union": (float(np.mean([s["telemetry/mean_union"] for s in runs]))
                                   if all("telemetry/mean_union" in s for s in runs) else None)}
            for label, runs in per_label.items()}


def _expert_load_md(loads: dict[str, dict[str, Any]]) -> str:
    rows = []
    for label, entry in loads.items():
        load = entry["load"]
        e = len(load)
        entropy = float(-(load[load > 0] * np.log(load[load > 0])).sum() / np.log(e)) if e > 1 else 1.0
        rows.append([label, str(e), "-" if entry["mean_union"] is None else f"{entry['mean_union']:.2f}",
                     f"{load.max() * e:.2f}", f"{load.min() * e:.2f}", f"{entropy:.3f}", str(int((load * e < 0.1).sum()))])
    return markdown(rows, ["model", "experts E", "experts run per sample (mean union size)", "max load x E", "min load x E",
                           "load entropy / log E", "starved experts (load < 0.1/E)"])


def _conflict_md(table: pd.DataFrame, setup: dict[str, str]) -> str:
    subsets = table[table["bucket"] == 0]
    wide = subsets.pivot_table(index=["task", "subset"], columns="model", values="auc", sort=False)
    labels = list(pd.unique(table["model"]))
    counts = subsets.groupby(["task", "subset"], sort=False)[["n", "positives"]].first()
    rows = [[task, subset, str(int(counts.loc[(task, subset), "n"])), str(int(counts.loc[(task, subset), "positives"])),
             *(_f(wide.loc[(task, subset), m]) for m in labels)] for task, subset in wide.index]
    source = ("the generator's true probabilities" if setup["reference"] == ORACLE
              else f"the `{setup['reference']}` model (one independent model per task)")
    return (f"Buckets: test samples ranked by log(p_{setup['task_a']} / p_{setup['task_b']}) of "
            f"{source}, cut into 10 equal-frequency "
            "buckets; B-overwhelming = buckets 1-3, comparable = 4-7, A-overwhelming = 8-10. "
            f"A = {setup['task_a']}, B = {setup['task_b']}. AUC per subset, mean over seeds "
            "(conflict.csv has every bucket).\n\n"
            + markdown(rows, ["task", "subset", "n", "positives", *labels])
            + "\n![conflict buckets](heatmaps/conflict.png)\n")


def ablation_table(ablation: pd.DataFrame) -> str:
    """The oracle ablation as Markdown: per term and cell, the AUC the term creates (`worth`, with
    its paired 95% interval over test users) beside the cell's noise (half-width of the oracle
    AUC's own interval). A term a model can be shown to exploit has worth well above the noise."""
    rows = [[r.term, r.domain, r.task, str(r.positives), _f(r.oracle_auc), _f(r.without_auc), _f(r.worth, True),
             _ci(r.worth_low, r.worth_high, True), _f(r.noise_ci95), "yes" if r.worth_low > r.noise_ci95 else "no"]
            for r in ablation.itertuples()]
    return markdown(rows, ["term", "domain", "task", "positives", "oracle AUC", "AUC without the term", "worth",
                           "worth 95% CI", "cell noise ±", "worth above noise"])


def write_report(out: str | Path, results: pd.DataFrame, records: Sequence[RunRecord],
                 oracle: pd.DataFrame | None, baseline: str | None, context: dict[str, str],
                 analyses: Analyses = Analyses()) -> Path:
    """Writes report.md, the CSVs and the plots into `out`; returns the report.md path."""
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
    if analyses.intervals is not None:
        analyses.intervals.to_csv(out / "intervals.csv", index=False)
        analyses.cell_intervals.to_csv(out / "cell_intervals.csv", index=False)
    if analyses.ablation is not None:
        analyses.ablation.to_csv(out / ABLATION_FILE, index=False)
    if oracle is not None:
        oracle.to_csv(out / "oracle.csv", index=False)
        for metric in METRICS:
            heatmap(domain_task_cells(oracle), metric, out / "heatmaps" / f"oracle_{metric}.png", f"oracle {metric.upper()}")
    md = ["# Model comparison\n\n" + "".join(f"- {k}: {v}\n" for k, v in context.items()),
          "".join(f"- note: {n}\n" for n in analyses.notes),
          *(["\n## What each generator term is worth (oracle ablation, test split)\n\n"
             "The true logit scored with and without each mechanism term: the most a model built for "
             "that mechanism can gain over one that ignores it, per cell.\n\n", ablation_table(analyses.ablation)]
            if analyses.ablation is not None else []),
          "\n## Mean over the domain x task cells (test split)\n\n"
          "± std and min-max: spread over training seeds. 95% CI (test users): percentile interval over "
          "bootstrap resamples of the test users, the same resamples for every model; the paired gain "
          "interval scores model and baseline on the same resample.\n\n",
          _summary_md(table, oracle, baseline, analyses.intervals)]
    tasks = measurable_tasks(results)
    task_table = pooled_task_summary(results, tasks)
    task_table.to_csv(out / "task_summary.csv", index=False)
    md += [f"\n## Mean over tasks of the pooled per-task AUC (test split)\n\n"
           f"Each task's AUC over all test rows (every domain), averaged over the tasks; ± std over seeds. "
           f"The second column keeps the tasks with at least {MIN_TEST_POSITIVES} test positives in every run; "
           f"the per-task columns are means over seeds.\n\n", _pooled_task_md(task_table, tasks)]
    for label in labels:
        cells = domain_task_cells(mean_cells(results, label))
        for metric in METRICS:
            heatmap(cells, metric, out / "heatmaps" / f"{label}_{metric}.png", f"{label} {metric.upper()}")
    if baseline is not None:
        md += _gain_sections(out, results, labels, baseline)
    loads = expert_loads(records)
    if loads:
        pd.DataFrame([{"model": label, "expert": e, "load": v} for label, entry in loads.items()
                      for e, v in enumerate(entry["load"])]).to_csv(out / "expert_load.csv", index=False)
        expert_load_plot({label: entry["load"] for label, entry in loads.items()}, out / "heatmaps" / "expert_load.png")
        md += ["\n## Expert load (mixture-of-experts models; rank 0's training batches, last epoch)\n\n"
               "load = an expert's share of all routing selections (SMES) or of the gate mass (dense MoE); "
               "1/E each when balanced.\n\n", _expert_load_md(loads), "\n![expert load](heatmaps/expert_load.png)\n"]
    if analyses.conflict is not None:
        analyses.conflict.to_csv(out / "conflict.csv", index=False)
        bucket_plot(analyses.conflict, out / "heatmaps" / "conflict.png", "AUC per bucket")
        md += ["\n## Conflict analysis (STEM-Net's buckets)\n\n", _conflict_md(analyses.conflict, analyses.conflict_setup)]
    for label in labels:
        md += [f"\n## {label}: per cell (mean ± std over seeds)\n\n",
               "noise: half-width of the oracle's 95% bootstrap interval on the cell (users resampled); "
               "a per-cell difference below it is not evidence.\n\n" if oracle is not None else "",
               _cells_md(results, label, oracle, analyses.cell_intervals),
               f"\n![{label} GAUC](heatmaps/{label}_gauc.png)"
               + (f" ![{label} gain](heatmaps/gain_{label}_gauc.png)" if baseline and label != baseline else "") + "\n"]
    path = out / "report.md"
    path.write_text("".join(md))
    return path


def _gain_sections(out: Path, results: pd.DataFrame, labels: Sequence[str], baseline: str) -> list[str]:
    """gains.csv, the gain heatmaps, and the per-cell gain tables of the report."""
    others = [m for m in labels if m != baseline]
    gain = gains(results, others, baseline)
    gain.to_csv(out / "gains.csv", index=False)
    base_cells = domain_task_cells(mean_cells(results, baseline))
    for label in others:
        cells = domain_task_cells(mean_cells(results, label))
        for metric in METRICS:
            gain_heatmap(cells, base_cells, metric, out / "heatmaps" / f"gain_{label}_{metric}.png",
                         f"{label} - {baseline}: {metric.upper()}")
    if not others:
        return []
    return [part for metric in METRICS
            for part in (f"\n## {metric.upper()} gain over {baseline} per cell (mean over seeds)\n\n", _gains_md(gain, metric))]
