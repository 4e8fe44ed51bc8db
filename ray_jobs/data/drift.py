"""A synthetic impression stream whose item population drifts day by day (for pass-by-pass training).

Items are born every day and live a few days; their popularity is drawn at birth (log-normal)
and fades with age. Users and authors persist. Item and author ids are raw 64-bit ids (hashes,
as a production log would carry), so over the stream there are far more distinct ids than a
bounded table holds; user ids are ordinary encoded ids in [0, num_users).

    logit[t, d] = bias[t, d]                                    calibrated per (task, domain)
                + item_scale * (item_bias[i] + task_item[t] * item_task_bias[t, i])
                + user_scale * user_bias[u]
                + interaction_scale * u_u . v_i / sqrt(K)      v_i partly its author's vector
                + dense_w[t] * position

An item's own row is what carries `item_bias`, so next-day AUC rewards an eviction policy that
keeps the items that will be shown again (popular and still alive) and drops dead ones.

Layout written: <out>/spec.json, <out>/day-000/part-00000.parquet, ..., <out>/drift.json
(written last; holds the config and per-day id counts).

Usage: python -m ray_jobs.drift --out data/drift [--days 8] [--rows-per-day 20000] [--seed 0]
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modules.spec import PROBABILITY_PREFIX, DatasetSpec, SparseFeature
from modules.strict import ConfigError, to_dict
from ray_jobs.core.storage import local_path
from ray_jobs.data.synthetic import calibrate_bias

MARKER_FILE = "drift.json"
RAW_FEATURES = ("item_id", "author_id")  # the columns holding raw 64-bit ids


@dataclass(frozen=True)
class DriftConfig:
    """Every knob of the drifting stream.

    Attributes:
        new_items_per_day: items born each day (also before day 0, so day 0 starts full).
        item_lifetime_days: (shortest, longest) life of an item in days, uniform.
        popularity_sigma: log-normal spread of an item's popularity at birth.
        popularity_decay: popularity multiplier per day of age (fading interest).
    """

    days: int = 8
    rows_per_day: int = 20_000
    seed: int = 0
    num_users: int = 2_000
    user_zipf: float = 0.7
    num_authors: int = 300
    new_items_per_day: int = 400
    item_lifetime_days: tuple[int, int] = (2, 4)
    popularity_sigma: float = 1.5
    popularity_decay: float = 0.7
    latent_dim: int = 4
    author_correlation: float = 0.6
    item_scale: float = 1.2
    task_item: tuple[float, ...] = (0.3, 0.8)
    user_scale: float = 0.5
    interaction_scale: float = 0.8
    dense_scale: float = 0.3
    domains: tuple[str, ...] = ("feed", "search")
    domain_fractions: tuple[float, ...] = (0.75, 0.25)
    tasks: tuple[str, ...] = ("click", "like")
    positive_rates: tuple[float, ...] = (0.30, 0.08)
    embedding_dim: int = 8
    files_per_day: int = 1

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise ConfigError(f"DriftConfig: {msg}")

        if min(self.days, self.rows_per_day, self.num_users, self.num_authors, self.new_items_per_day,
               self.latent_dim, self.embedding_dim, self.files_per_day) < 1:
            fail("sizes and counts must be >= 1")
        low, high = self.item_lifetime_days
        if not 1 <= low <= high:
            fail(f"item_lifetime_days must satisfy 1 <= shortest <= longest, got {self.item_lifetime_days}")
        if len(self.domains) != len(self.domain_fractions) or abs(sum(self.domain_fractions) - 1) > 1e-9:
            fail("domain_fractions must match domains and sum to 1")
        if len(self.tasks) != len(self.positive_rates) or len(self.tasks) != len(self.task_item):
            fail("tasks, positive_rates and task_item must have equal lengths")
        if not 0 < self.popularity_decay <= 1:
            fail("popularity_decay must lie in (0, 1]")


PRESETS: dict[str, DriftConfig] = {
    "default": DriftConfig(),
    "tiny": DriftConfig(days=4, rows_per_day=1_500, num_users=300, num_authors=60, new_items_per_day=120),
}


def raw_ids(index: np.ndarray, salt: int) -> np.ndarray:
    """Distinct-looking non-negative 63-bit ids (splitmix64 of index and salt): raw log ids."""
    with np.errstate(over="ignore"):
        x = index.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(1)).astype(np.int64)


def dataset_spec(config: DriftConfig, distinct: dict[str, int]) -> DatasetSpec:
    """The stream's spec. Raw columns' cardinality is the number of distinct ids in the whole
    stream: the rows an unbounded table would need, not a bound on the id values."""
    dim = config.embedding_dim
    return DatasetSpec(
        sparse_features=(
            SparseFeature("user_id", config.num_users, dim, role="user"),
            SparseFeature("item_id", distinct["item_id"], dim, role="item"),
            SparseFeature("author_id", distinct["author_id"], dim, role="author"),
            SparseFeature("domain", len(config.domains), dim, role="domain", task_specific=False),
        ),
        dense_features=("position",),
        tasks=config.tasks,
        domains=config.domains,
    )


def simulate(config: DriftConfig) -> list[dict[str, np.ndarray]]:
    """Per day: row-aligned columns (raw item/author ids, encoded user ids, domain, position,
    labels, true probabilities). Deterministic in the seed."""
    rng = np.random.default_rng(config.seed)
    low, high = config.item_lifetime_days
    k, num_tasks = config.latent_dim, len(config.tasks)
    first_birth = -(high - 1)
    num_items = (config.days - first_birth) * config.new_items_per_day
    birth = first_birth + np.arange(num_items) // config.new_items_per_day
    life = rng.integers(low, high + 1, size=num_items)
    popularity = rng.lognormal(0.0, config.popularity_sigma, size=num_items)
    author = rng.choice(config.num_authors, size=num_items, p=_zipf_p(config.num_authors, 1.0))
    author_vec = rng.standard_normal((config.num_authors, k))
    rho = config.author_correlation
    item_vec = rho * author_vec[author] + np.sqrt(1 - rho**2) * rng.standard_normal((num_items, k))
    item_bias = rng.standard_normal(num_items)
    item_task_bias = rng.standard_normal((num_tasks, num_items))
    user_vec = rng.standard_normal((config.num_users, k))
    user_bias = rng.standard_normal(config.num_users)
    dense_w = rng.standard_normal(num_tasks) * config.dense_scale
    user_p = _zipf_p(config.num_users, config.user_zipf)

    days = []
    for day in range(config.days):
        age = day - birth
        alive = np.flatnonzero((age >= 0) & (age < life))
        weight = popularity[alive] * config.popularity_decay ** age[alive]
        n = config.rows_per_day
        item = alive[rng.choice(len(alive), size=n, p=weight / weight.sum())]
        user = rng.choice(config.num_users, size=n, p=user_p)
        domain = rng.choice(len(config.domains), size=n, p=np.asarray(config.domain_fractions))
        position = rng.uniform(-1, 1, size=n).astype(np.float32)
        interaction = np.einsum("nk,nk->n", user_vec[user], item_vec[item]) / np.sqrt(k)
        logit = (config.item_scale * (item_bias[item][:, None]
                                      + np.asarray(config.task_item)[None, :] * item_task_bias[:, item].T)
                 + config.user_scale * user_bias[user][:, None]
                 + config.interaction_scale * interaction[:, None]
                 + position[:, None] * dense_w[None, :])
        days.append({"user_id": user, "item": item, "domain": domain, "position": position, "logit": logit})
    # one calibration over the whole stream: each (task, domain) cell hits its positive rate
    bias = calibrate_bias(np.concatenate([d["logit"] for d in days]), np.concatenate([d["domain"] for d in days]),
                          len(config.domains), np.asarray(config.positive_rates))
    label_rng = np.random.default_rng([config.seed, 1])
    for d in days:
        probs = 1 / (1 + np.exp(-(d.pop("logit") + bias.T[d["domain"]])))
        item = d.pop("item")
        d.update(item_id=raw_ids(item, config.seed), author_id=raw_ids(author[item], config.seed + 1),
                 probs=probs, labels=label_rng.random(probs.shape) < probs)
    return days


def _zipf_p(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return weights / weights.sum()


def _table(day: dict[str, np.ndarray], config: DriftConfig) -> pa.Table:
    arrays = {name: pa.array(day[name].astype(np.int64)) for name in ("user_id", "item_id", "author_id", "domain")}
    arrays["position"] = pa.array(day["position"])
    arrays.update({t: pa.array(day["labels"][:, i].astype(np.int8)) for i, t in enumerate(config.tasks)})
    arrays.update({PROBABILITY_PREFIX + t: pa.array(day["probs"][:, i].astype(np.float32))
                   for i, t in enumerate(config.tasks)})
    return pa.table(arrays)


def day_name(day: int) -> str:
    return f"day-{day:03d}"


def generate(config: DriftConfig, out_dir: str | Path) -> Path:
    """Writes the stream to `out_dir` (one folder per day; local: a file:// URI is its path, a
    bucket is refused) unless it already holds exactly it."""
    out = Path(local_path(out_dir, "--out", "drift"))
    marker = out / MARKER_FILE
    if marker.exists() and json.loads(marker.read_text()).get("config") == to_dict(config):
        return out
    out.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    days = simulate(config)
    for i, day in enumerate(days):
        folder = out / day_name(i)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        table = _table(day, config)
        edges = np.linspace(0, table.num_rows, config.files_per_day + 1).round().astype(int)
        for part, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
            pq.write_table(table.slice(a, b - a), folder / f"part-{part:05d}.parquet")
    seen: dict[str, set[int]] = {name: set() for name in RAW_FEATURES}
    per_day = []
    for day in days:
        ids = {name: set(day[name].tolist()) for name in RAW_FEATURES}
        per_day.append({name: {"distinct": len(ids[name]), "new": len(ids[name] - seen[name])} for name in RAW_FEATURES})
        for name in RAW_FEATURES:
            seen[name] |= ids[name]
    distinct = {name: len(ids) for name, ids in seen.items()}
    dataset_spec(config, distinct).save(out)
    marker.write_text(json.dumps({"config": to_dict(config), "distinct": distinct, "per_day": per_day}, indent=2) + "\n")
    return out


def stream_stats(out_dir: str | Path) -> dict:
    """The id counts `generate` recorded: distinct ids per raw column in total and per day."""
    return json.loads((Path(out_dir) / MARKER_FILE).read_text())
