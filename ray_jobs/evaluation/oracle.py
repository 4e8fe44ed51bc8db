"""What each term of a synthetic data set is worth: the oracle ablation.

The seesaw presets store every sample's true logit (`logit_<task>`) and each mechanism term's
contribution to it (`term_<mechanism>_<task>`). Scoring the
test split with the true probabilities, then with one term left out, measures the AUC that term
creates per domain x task cell: what a model built for that mechanism has to win, at most. Within
a cell the calibrated bias is one constant, so leaving a term out needs no recalibration for AUC.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads

from modules.spec import LOGIT_PREFIX, TERM_PREFIX, DatasetSpec
from ray_jobs.evaluation.metrics import ALL_DOMAINS, auc, bootstrap_ci

ABLATION_FILE = "oracle_ablation.csv"
ABLATION_COLUMNS = ("term", "domain", "task", "n", "positives", "oracle_auc", "without_auc", "worth",
                    "worth_low", "worth_high", "noise_ci95")


def stored_terms(names: list[str], tasks: tuple[str, ...]) -> list[str]:
    """The mechanism terms whose `term_<name>_<task>` columns are all among `names`, in order."""
    found: list[str] = []
    for column in names:
        if column.startswith(TERM_PREFIX) and column.endswith("_" + tasks[0]):
            term = column[len(TERM_PREFIX):-len(tasks[0]) - 1]
            if all(f"{TERM_PREFIX}{term}_{t}" in names for t in tasks) and term not in found:
                found.append(term)
    return found


def oracle_ablation(data_dir: str | Path, spec: DatasetSpec, split: str = "test",
                    num_resamples: int = 200) -> pd.DataFrame | None:
    """One row per (term, domain, task) cell, the pooled `all` domain included: the oracle's AUC,
    its AUC with the term left out, the difference (`worth`) with its paired 95% bootstrap
    interval over users, and `noise_ci95`, the half-width of the oracle AUC's own interval.
    Tasks a term does not act on (its column all zero) have no rows for it.
    None when the split stores no mechanism terms (real data, or a preset without them)."""
    data = pads.dataset(str(Path(data_dir) / split), format="parquet")
    terms = stored_terms(data.schema.names, spec.tasks)
    if not terms:
        return None
    columns = [LOGIT_PREFIX + t for t in spec.tasks] + list(spec.tasks) + [spec.domain_column, spec.group_column]
    columns += [f"{TERM_PREFIX}{term}_{t}" for term in terms for t in spec.tasks]
    table = data.to_table(columns=columns)
    domain, group = table[spec.domain_column].to_numpy(), table[spec.group_column].to_numpy()
    rows = []
    for t, task in enumerate(spec.tasks):
        labels = table[task].to_numpy().astype(np.float64)
        logit = table[LOGIT_PREFIX + task].to_numpy().astype(np.float64)
        for term in terms:
            contribution = table[f"{TERM_PREFIX}{term}_{task}"].to_numpy().astype(np.float64)
            if not contribution.any():
                continue  # the term does not act on this task (e.g. the conflict on the unflipped task)
            without = logit - contribution
            for d, name in [(None, ALL_DOMAINS), *enumerate(spec.domains)]:
                keep = np.ones(len(domain), bool) if d is None else domain == d
                y, full, ablated, users = labels[keep], logit[keep], without[keep], group[keep]
                positives = int(y.sum())
                if positives in (0, len(y)):
                    continue  # AUC undefined: the cell is absent, not NaN
                worth = bootstrap_ci(y, full, users, "auc", baseline_scores=ablated, num_resamples=num_resamples)
                noise = bootstrap_ci(y, full, users, "auc", num_resamples=num_resamples)
                full_auc, without_auc = auc(y, full), auc(y, ablated)
                rows.append({"term": term, "domain": name, "task": task, "n": int(keep.sum()), "positives": positives,
                             "oracle_auc": full_auc, "without_auc": without_auc, "worth": full_auc - without_auc,
                             "worth_low": worth.low, "worth_high": worth.high,
                             "noise_ci95": (noise.high - noise.low) / 2})
    return pd.DataFrame(rows, columns=list(ABLATION_COLUMNS))
