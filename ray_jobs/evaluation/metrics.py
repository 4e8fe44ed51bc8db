"""Ranking and calibration metrics per domain x task cell, vectorised in numpy.

Every AUC here comes from one sort: samples are ordered by (group, score), tied scores get the
average of their ranks, and the Mann-Whitney U statistic of each group is read off with
`np.bincount`. So a per-user GAUC over 100k rows costs the same as one global AUC, with no Python
loop over groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import pandas as pd

LOGLOSS_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] before the log
ALL_DOMAINS = "all"  # `domain` value of the per-task rows that pool every domain
METRIC_COLUMNS = ("domain", "task", "n", "positives", "auc", "gauc", "logloss")
BOOTSTRAP_CHUNK = 16  # resamples evaluated together; bounds memory at CHUNK x N floats


@dataclass(frozen=True)
class GroupedAUC:
    """AUC of every group, from one sort.

    Attributes: keys [G] the sorted distinct group ids; auc [G] (NaN where a group has one
    class only); n [G] samples; positives [G].
    """

    keys: np.ndarray
    auc: np.ndarray
    n: np.ndarray
    positives: np.ndarray


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in length")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return labels, scores


def grouped_auc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> GroupedAUC:
    """Per-group rank AUC (ties count one half), vectorised over groups.

    Args: labels [N] in {0, 1}; scores [N]; groups [N] any sortable ids.
    """
    labels, scores = _check(labels, scores)
    keys, inverse = np.unique(np.asarray(groups).ravel(), return_inverse=True)
    if inverse.shape != labels.shape:
        raise ValueError(f"groups {inverse.shape} and labels {labels.shape} differ in length")
    num_groups = len(keys)
    order = np.lexsort((scores, inverse))
    g, s, y = inverse[order], scores[order], labels[order]
    position = np.arange(len(y), dtype=np.float64)
    group_start = np.searchsorted(g, np.arange(num_groups))
    # tie runs: maximal stretches of equal (group, score); each member gets the run's mean rank
    new_run = np.ones(len(y), dtype=bool)
    new_run[1:] = (g[1:] != g[:-1]) | (s[1:] != s[:-1])
    run = np.cumsum(new_run) - 1
    run_start = position[new_run]
    run_end = np.append(run_start[1:], len(y)) - 1
    rank = (run_start[run] + run_end[run]) / 2 - group_start[g] + 1  # 1-based, within group
    n = np.bincount(g, minlength=num_groups).astype(np.float64)
    pos = np.bincount(g, weights=y, minlength=num_groups)
    rank_sum = np.bincount(g, weights=rank * y, minlength=num_groups)
    neg = n - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - pos * (pos + 1) / 2) / (pos * neg)
    auc[(pos == 0) | (neg == 0)] = np.nan
    return GroupedAUC(keys=keys, auc=auc, n=n, positives=pos)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC from average ranks; NaN when only one class is present."""
    labels, scores = _check(labels, scores)
    if len(labels) == 0:
        return float("nan")
    return float(grouped_auc(labels, scores, np.zeros(len(labels), dtype=np.int64)).auc[0])


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Group AUC: mean of per-group AUCs weighted by each group's sample count.

    Groups (users) with a single class carry no ranking information and are skipped; weighting
    by samples (not by positives or impressions of one class) follows the usual GAUC definition
    of industrial recommenders, so heavy users count in proportion to their traffic.
    NaN when no group has both classes.
    """
    result = grouped_auc(labels, scores, groups)
    valid = ~np.isnan(result.auc)
    if not valid.any():
        return float("nan")
    return float(np.average(result.auc[valid], weights=result.n[valid]))


def logloss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean binary cross-entropy, probabilities clipped to [LOGLOSS_EPS, 1 - LOGLOSS_EPS]."""
    labels, probs = _check(labels, probs)
    if len(labels) == 0:
        return float("nan")
    p = np.clip(probs, LOGLOSS_EPS, 1 - LOGLOSS_EPS)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p)))


def _cells(labels: np.ndarray, probs: np.ndarray, cell: np.ndarray, user: np.ndarray,
           num_cells: int, num_users: int) -> dict[str, np.ndarray]:
    """n, positives, auc, gauc, logloss of each cell for one task; every array is [num_cells].

    Two grouped passes: by cell (AUC) and by (cell, user) (GAUC); empty cells stay NaN.
    """
    stats = {"n": np.zeros(num_cells), "positives": np.zeros(num_cells),
             "auc": np.full(num_cells, np.nan), "gauc": np.full(num_cells, np.nan),
             "logloss": np.full(num_cells, np.nan)}
    if len(labels) == 0:
        return stats
    per_cell = grouped_auc(labels, probs, cell)
    stats["n"][per_cell.keys] = per_cell.n
    stats["positives"][per_cell.keys] = per_cell.positives
    stats["auc"][per_cell.keys] = per_cell.auc
    per_user = grouped_auc(labels, probs, cell * num_users + user)
    owner = per_user.keys // num_users
    valid = ~np.isnan(per_user.auc)
    weight = np.where(valid, per_user.n, 0.0)
    weighted = np.bincount(owner, weights=np.where(valid, per_user.auc, 0.0) * weight, minlength=num_cells)
    total = np.bincount(owner, weights=weight, minlength=num_cells)
    np.divide(weighted, total, out=stats["gauc"], where=total > 0)
    p = np.clip(probs, LOGLOSS_EPS, 1 - LOGLOSS_EPS)
    nll = -(labels * np.log(p) + (1 - labels) * np.log1p(-p))
    n = np.bincount(cell, minlength=num_cells)
    np.divide(np.bincount(cell, weights=nll, minlength=num_cells), n, out=stats["logloss"], where=n > 0)
    return stats


def cell_metrics(probs: np.ndarray, labels: np.ndarray, domain: np.ndarray, group: np.ndarray | None,
                 tasks: Sequence[str], domains: Sequence[str]) -> pd.DataFrame:
    """AUC, GAUC and logloss of every (domain, task) cell, plus per-task rows over all domains.

    Args: probs [N, T] predicted probabilities; labels [N, T] in {0, 1}; domain [N] ids in
        [0, len(domains)); group [N] GAUC group ids (users), or None for a data set without
        groups (then every `gauc` is None: absent, not NaN); tasks, domains: names in order.
    Returns: one row per (domain, task) in domain-major order, then one row per task with
        domain == ALL_DOMAINS; columns METRIC_COLUMNS. Empty cells have n == 0 and NaN metrics.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    domain = np.asarray(domain, dtype=np.int64).ravel()
    num_domains, num_tasks = len(domains), len(tasks)
    if probs.shape != labels.shape or probs.shape != (len(domain), num_tasks):
        raise ValueError(f"probs {probs.shape} and labels {labels.shape} must be [N={len(domain)}, T={num_tasks}]")
    grouped = group is not None
    group = np.zeros(len(domain), dtype=np.int64) if group is None else group
    if len(np.asarray(group).ravel()) != len(domain):
        raise ValueError(f"group has {len(np.asarray(group).ravel())} rows, domain has {len(domain)}")
    if len(domain) and (domain.min() < 0 or domain.max() >= num_domains):
        raise ValueError(f"domain ids must lie in [0, {num_domains})")
    _, user = np.unique(np.asarray(group).ravel(), return_inverse=True)
    num_users = int(user.max()) + 1 if len(user) else 1
    pooled = np.zeros(len(domain), dtype=np.int64)
    per_domain = [_cells(labels[:, t], probs[:, t], domain, user, num_domains, num_users) for t in range(num_tasks)]
    overall = [_cells(labels[:, t], probs[:, t], pooled, user, 1, num_users) for t in range(num_tasks)]
    rows = [(name, task, per_domain[t], d) for d, name in enumerate(domains) for t, task in enumerate(tasks)]
    rows += [(ALL_DOMAINS, task, overall[t], 0) for t, task in enumerate(tasks)]
    return pd.DataFrame(
        [{"domain": name, "task": task, "n": int(s["n"][i]), "positives": int(s["positives"][i]),
          "auc": s["auc"][i], "gauc": s["gauc"][i] if grouped else None, "logloss": s["logloss"][i]}
         for name, task, s, i in rows],
        columns=list(METRIC_COLUMNS),
    )


def summary(df: pd.DataFrame) -> dict[str, float | None]:
    """Scalars to report and tune on: mean AUC/GAUC/logloss over the domain x task cells
    (NaN cells skipped, "all" rows excluded so small domains weigh as much as big ones),
    plus `auc/<task>` and `gauc/<task>` of every task over all domains and their means over the
    tasks (`mean_task_auc`, `mean_task_gauc`). A value that cannot be computed (no cell has it; a
    data set without groups has no GAUC) is None, never NaN."""
    cells = df[df["domain"] != ALL_DOMAINS]
    pooled = df[df["domain"] == ALL_DOMAINS]

    def mean(column: str) -> float | None:
        values = pd.to_numeric(cells[column], errors="coerce")
        return float(np.nanmean(values)) if values.notna().any() else None

    def scalar(value: object) -> float | None:
        return None if value is None or pd.isna(value) else float(value)

    out = {"mean_auc": mean("auc"), "mean_gauc": mean("gauc"), "mean_logloss": mean("logloss")}
    for task, a, g in zip(pooled["task"], pooled["auc"], pooled["gauc"]):
        out[f"auc/{task}"] = scalar(a)
        out[f"gauc/{task}"] = scalar(g)
    # mean over tasks of the pooled per-task AUC/GAUC (what papers and peers report on real logs)
    for metric in ("auc", "gauc"):
        values = pd.to_numeric(pooled[metric], errors="coerce")
        out[f"mean_task_{metric}"] = float(np.nanmean(values)) if values.notna().any() else None
    return out


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float


def _resample_counts(num_groups: int, num_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """[R, G]: how often each group is drawn in each resample (G draws with replacement)."""
    draws = rng.integers(0, num_groups, size=(num_resamples, num_groups))
    flat = draws + np.arange(num_resamples)[:, None] * num_groups
    return np.bincount(flat.ravel(), minlength=num_resamples * num_groups).reshape(num_resamples, num_groups)


def _weighted_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of each weight row: weights [R, N] (integer weights = repeating samples). Returns [R]."""
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    out = []
    for lo in range(0, len(weights), BOOTSTRAP_CHUNK):
        w = weights[lo:lo + BOOTSTRAP_CHUNK][:, order]
        neg_run = np.add.reduceat(w * (1 - y), starts, axis=1)
        pos_run = np.add.reduceat(w * y, starts, axis=1)
        neg_below = np.cumsum(neg_run, axis=1) - neg_run
        u = (pos_run * (neg_below + 0.5 * neg_run)).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(u / (pos_run.sum(axis=1) * neg_run.sum(axis=1)))
    return np.concatenate(out)


def _resampled(metric: str, labels: np.ndarray, scores: np.ndarray, inverse: np.ndarray,
               counts: np.ndarray) -> np.ndarray:
    if metric == "auc":
        return _weighted_auc(labels, scores, counts[:, inverse].astype(np.float64))
    per_group = grouped_auc(labels, scores, inverse)  # groups are already 0..G-1 and all present
    valid = ~np.isnan(per_group.auc)
    w = counts[:, valid] * per_group.n[valid]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w * per_group.auc[valid]).sum(axis=1) / w.sum(axis=1)


def bootstrap_ci(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray,
                 metric: Literal["auc", "gauc"] = "auc", baseline_scores: np.ndarray | None = None,
                 num_resamples: int = 200, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap CI of a cell's AUC or GAUC, resampling whole groups (users).

    Users, not impressions, are the independent units: one user's rows share preferences, so
    resampling rows would understate the spread. With `baseline_scores` the interval is for
    metric(scores) - metric(baseline_scores) on the same resamples (a paired comparison).

    Args: labels [N]; scores [N]; groups [N] (the user ids); baseline_scores [N] or None.
    """
    if metric not in ("auc", "gauc"):
        raise ValueError(f"metric must be 'auc' or 'gauc', got {metric!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    labels, scores = _check(labels, scores)
    _, inverse = np.unique(np.asarray(groups).ravel(), return_inverse=True)
    point = auc if metric == "auc" else (lambda y, s: gauc(y, s, inverse))
    counts = _resample_counts(int(inverse.max()) + 1 if len(inverse) else 0, num_resamples,
                              np.random.default_rng(seed))
    estimate = point(labels, scores)
    values = _resampled(metric, labels, scores, inverse, counts)
    if baseline_scores is not None:
        _, baseline = _check(labels, baseline_scores)
        estimate -= point(labels, baseline)
        values = values - _resampled(metric, labels, baseline, inverse, counts)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return Interval(estimate, float("nan"), float("nan"))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high))


def user_resamples(groups: np.ndarray, num_resamples: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(keys [G] sorted distinct users, counts [R, G]): R bootstrap draws of the test users.

    Drawn once and applied to every model (and every seed) of a comparison, so their
    intervals and paired differences come from the same resampled test sets.
    """
    keys = np.unique(np.asarray(groups).ravel())
    return keys, _resample_counts(len(keys), num_resamples, np.random.default_rng(seed))


def resampled_cells(probs: np.ndarray, labels: np.ndarray, domain: np.ndarray, group: np.ndarray,
                    num_domains: int, metric: Literal["auc", "gauc"], keys: np.ndarray,
                    counts: np.ndarray) -> np.ndarray:
    """[C, R]: `metric` of every cell on each of the R resampled test sets (`user_resamples`).

    Cells are in `cell_metrics` order (domain-major (domain, task) cells, then the per-task
    rows over all domains); a cell with one class only (or empty) is NaN. A user drawn k times
    counts k times in every cell it has rows in.
    """
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.float64)
    domain = np.asarray(domain, np.int64).ravel()
    user = np.searchsorted(keys, np.asarray(group).ravel())
    if (user >= len(keys)).any() or (keys[np.minimum(user, len(keys) - 1)] != np.asarray(group).ravel()).any():
        raise ValueError("group holds users that are not among the resampled keys")
    num_tasks = probs.shape[1]
    cells = [(domain == d, t) for d in range(num_domains) for t in range(num_tasks)]
    cells += [(slice(None), t) for t in range(num_tasks)]
    return np.stack([_resampled_cell(labels[rows, t], probs[rows, t], user[rows], counts, metric) for rows, t in cells])


def _resampled_cell(labels: np.ndarray, scores: np.ndarray, user: np.ndarray, counts: np.ndarray,
                    metric: str) -> np.ndarray:
    if len(labels) == 0 or labels.min() == labels.max():
        return np.full(counts.shape[0], np.nan)
    present, inverse = np.unique(user, return_inverse=True)
    return _resampled(metric, labels, scores, inverse, counts[:, present])
