"""Synthetic multi-task, multi-domain data that shows the double seesaw.

Every impression's label probabilities are known, so a model can be judged against the oracle:

    logit[t, d] = bias[t, d]                                  calibrated: each cell hits its rate
                + sum_k u_k v_k * (shared + domain_w[d, k] + task_w[t, k]) / sqrt(K)
                + dense_w[t] . dense                          dense-feature effect
                + context * sin(2 pi hour / 24 + phase[d, t]) hour-of-day effect, per domain

`u` is the user's latent vector, `v` the item's (correlated with its author's, so author ids
carry signal). The per-domain weights are independent across domains: a model that pools the
big domain with the small ones learns the big one's interaction and misfits the rest (the
domain seesaw); per-task weights and `conflict_fraction` do the same across tasks (the task
seesaw). On a `conflict_fraction` of user-item pairs the second conflict task's interaction has
its sign flipped, so the two tasks prefer opposite items there. `conflict_by="item"` draws the
conflicting pairs as every pair of a `conflict_fraction` of the items: the conflict is then
learnable from the item id (task-specific item embeddings can flip it; a shared one must
compromise), which is the negative transfer STEM-Net targets; `"pair"` (a hash of user and item)
is noise no model can learn.

Usage: python -m ray_jobs.generate --out data/synthetic [--rows N] [--seed S]
       [--preset default|tiny] [--conflict-fraction F]
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modules.spec import LOGIT_PREFIX, PROBABILITY_PREFIX, TERM_PREFIX, DatasetSpec, SparseFeature
from modules.strict import ConfigError, to_dict
from ray_jobs.core.storage import Location, location
from ray_jobs.data.dataset import ID_COLUMN, SPLITS

GENERATOR_FILE = "generator.json"  # written last: its presence marks a complete data set
FORMAT_VERSION = 2  # bumped when the written layout changes (2: sample_id column), so caches regenerate
DENSE_FEATURES = ("user_activity", "item_quality", "item_age", "position")
HOURS = 24
# The seesaw preset's mechanism terms, each switched by its own scale (0: off), each drawn from
# its own random stream, so switching one never changes another (or the base data set):
MECHANISM_TERMS = ("user_groups", "domain_dims", "conflict", "capacity")
BISECTION_STEPS = 40  # bias bracket [-30, 30] halved 40 times: 5e-11 precision


@dataclass(frozen=True)
class GeneratorConfig:
    """Every knob of the synthetic data set; `PRESETS` holds the named instances.

    Effect scales are standard deviations of each logit term (before calibration).
    """

    rows: int = 400_000
    seed: int = 0
    num_users: int = 20_000
    num_items: int = 50_000
    num_authors: int = 5_000
    user_zipf: float = 0.8  # P(id = k) ~ 1 / (k + 1)^a
    item_zipf: float = 1.05
    domains: tuple[str, ...] = ("feed", "search", "mall")
    domain_fractions: tuple[float, ...] = (0.70, 0.25, 0.05)
    tasks: tuple[str, ...] = ("click", "like", "follow", "share")
    positive_rates: tuple[float, ...] = (0.40, 0.10, 0.02, 0.005)
    latent_dim: int = 8
    author_correlation: float = 0.7  # share of an item's latent vector taken from its author
    shared_scale: float = 1.0
    id_bias_scale: float = 1.0  # per-user and per-item main effects (popularity, activity)
    domain_item_scale: float = 0.7  # per-(domain, item) effect: an item's appeal differs by domain
    domain_scale: float = 1.0
    task_scale: float = 0.6
    dense_scale: float = 0.5
    context_scale: float = 0.3
    conflict_fraction: float = 0.0
    conflict_tasks: tuple[str, ...] = ("click", "like")
    conflict_by: str = "pair"  # "pair" | "item" (see the module docstring)
    # mechanism terms (the `seesaw` presets): a scale of 0 leaves the term out
    user_group_scale: float = 0.0  # per-user weights of the feature groups: what PPNet's gates express
    domain_dim_scale: float = 0.0  # per-domain scales of the shared embedding dims: what EPNet's gate expresses
    capacity_scale: float = 0.0  # nonlinear terms, more of them for harder tasks: what SMES's task experts serve
    capacity_terms: tuple[int, ...] = ()  # per task: how many nonlinear terms (0: none); empty: none anywhere
    max_history: int = 10  # hist_items holds 0..max_history recently seen items
    history_pool: int = 64  # candidates per user from which the best-liked become its history
    embedding_dim: int = 16
    split_fractions: tuple[float, ...] = (0.8, 0.1, 0.1)
    files_per_split: int = 4
    row_group_size: int = 65_536

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise ConfigError(f"GeneratorConfig: {msg}")

        if min(self.rows, self.num_users, self.num_items, self.num_authors, self.latent_dim,
               self.embedding_dim, self.files_per_split, self.row_group_size) < 1:
            fail("sizes and counts must be >= 1")
        if len(self.domains) != len(self.domain_fractions) or not self.domains:
            fail("domains and domain_fractions must be non-empty and of equal length")
        if len(self.tasks) != len(self.positive_rates) or not self.tasks:
            fail("tasks and positive_rates must be non-empty and of equal length")
        for name, fractions in (("domain_fractions", self.domain_fractions), ("split_fractions", self.split_fractions)):
            if min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
                fail(f"{name} must be >= 0 and sum to 1, got {fractions}")
        if len(self.split_fractions) != len(SPLITS):
            fail(f"split_fractions needs one value per split {SPLITS}")
        if not all(0 < r < 1 for r in self.positive_rates):
            fail(f"positive_rates must lie in (0, 1), got {self.positive_rates}")
        if not 0 <= self.conflict_fraction <= 1:
            fail(f"conflict_fraction must lie in [0, 1], got {self.conflict_fraction}")
        if self.conflict_by not in ("pair", "item"):
            fail(f"conflict_by must be 'pair' or 'item', got {self.conflict_by!r}")
        if len(self.conflict_tasks) != 2 or len(set(self.conflict_tasks)) != 2 or not set(self.conflict_tasks) <= set(self.tasks):
            fail(f"conflict_tasks must name two different tasks of {self.tasks}")
        if not 0 <= self.author_correlation <= 1:
            fail("author_correlation must lie in [0, 1]")
        if min(self.user_group_scale, self.domain_dim_scale, self.capacity_scale) < 0:
            fail("mechanism term scales must be >= 0")
        if self.capacity_terms and (len(self.capacity_terms) != len(self.tasks) or min(self.capacity_terms) < 0):
            fail(f"capacity_terms needs one count >= 0 per task {self.tasks}, got {self.capacity_terms}")
        if self.max_history < 0 or self.history_pool < max(self.max_history, 1):
            fail("need max_history >= 0 and history_pool >= max(max_history, 1)")


PRESETS: dict[str, GeneratorConfig] = {
    "default": GeneratorConfig(),
    "tiny": GeneratorConfig(rows=20_000, num_users=2_000, num_items=5_000, num_authors=500,
                            files_per_split=2, row_group_size=8_192),
    # STEM-Net's setting: two tasks that disagree on half of the items (the sparser one flipped)
    "conflict": GeneratorConfig(rows=200_000, num_users=10_000, num_items=20_000, num_authors=2_000,
                                tasks=("click", "like"), positive_rates=(0.30, 0.08),
                                conflict_fraction=0.5, conflict_by="item"),
    # The controlled double-seesaw benchmark (issue 22): dense enough to learn ids (400 rows per
    # user, 200 per item), a test split of 200k rows, and one switchable term per mechanism.
    # Switch one off with e.g. `python -m ray_jobs.generate --preset seesaw --set user_group_scale=0`.
    "seesaw": GeneratorConfig(rows=2_000_000, num_users=5_000, num_items=10_000, num_authors=1_000,
                              domain_fractions=(0.6, 0.3, 0.1), positive_rates=(0.30, 0.10, 0.04, 0.02),
                              domain_item_scale=0.0, user_group_scale=0.8, domain_dim_scale=0.8,
                              conflict_fraction=0.5, conflict_by="item", conflict_tasks=("click", "like"),
                              capacity_scale=1.0, capacity_terms=(0, 1, 2, 4), files_per_split=8),
    "seesaw-small": GeneratorConfig(rows=60_000, num_users=600, num_items=1_200, num_authors=200,
                                    domain_fractions=(0.6, 0.3, 0.1), positive_rates=(0.30, 0.10, 0.04, 0.02),
                                    domain_item_scale=0.0, user_group_scale=0.8, domain_dim_scale=0.8,
                                    conflict_fraction=0.5, conflict_by="item", conflict_tasks=("click", "like"),
                                    capacity_scale=1.0, capacity_terms=(0, 1, 2, 4), files_per_split=2,
                                    row_group_size=8_192),
}


def dataset_spec(config: GeneratorConfig) -> DatasetSpec:
    """The spec of the data set `config` generates (the user, item and author ids get
    task-specific tables under STEM-Net; the small context tables stay shared)."""
    dim = config.embedding_dim
    return DatasetSpec(
        sparse_features=(
            SparseFeature("user_id", config.num_users, dim, role="user"),
            SparseFeature("item_id", config.num_items, dim, role="item"),
            SparseFeature("author_id", config.num_authors, dim, role="author"),
            SparseFeature("hour", HOURS, dim, role="context", task_specific=False),
            SparseFeature("domain", len(config.domains), dim, role="domain", task_specific=False),
            SparseFeature("hist_items", config.num_items, dim, role="user", multi_hot=True,
                          pooling="mean", task_specific=False),
        ),
        dense_features=DENSE_FEATURES,
        tasks=config.tasks,
        domains=config.domains,
        domain_column="domain",
        group_column="user_id",
        id_column=ID_COLUMN,
    )


@dataclass(frozen=True)
class Simulation:
    """The sampled impressions and the terms of their logits.

    Attributes:
        columns: row-aligned [N] arrays: user_id, item_id, author_id, hour, domain, the dense
            features; hist_offsets [N + 1] int32 and hist_values int64 (the multi-hot column).
        components: name -> [N, T] logit term (shared, domain, task, dense, context, and the
            enabled MECHANISM_TERMS).
        bias: [T, D] calibrated per-cell biases.
    """

    columns: dict[str, np.ndarray]
    components: dict[str, np.ndarray]
    bias: np.ndarray

    def probabilities(self) -> np.ndarray:
        """[N, T] true positive probabilities."""
        logit = sum(self.components.values()) + self.bias.T[self.columns["domain"]]
        return _sigmoid(logit)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))  # overflow-free logistic


def _zipf(rng: np.random.Generator, cardinality: int, exponent: float, size: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, cardinality + 1, dtype=np.float64) ** exponent
    cdf = np.cumsum(weights)
    return np.minimum(np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right"), cardinality - 1)


def calibrate_bias(logit: np.ndarray, domain: np.ndarray, num_domains: int, rates: np.ndarray) -> np.ndarray:
    """Per-(task, domain) bias so that each cell's mean probability equals its task's rate.

    Vectorised bisection over all cells at once (the mean sigmoid is monotone in the bias).
    Args: logit [N, T] without bias; domain [N]; rates [T]. Returns: [T, D].
    """
    num_tasks = logit.shape[1]
    cell = domain[:, None] * num_tasks + np.arange(num_tasks)  # [N, T] -> flat (d, t) index
    size = np.bincount(domain, minlength=num_domains).astype(np.float64)[:, None]
    low = np.full((num_domains, num_tasks), -30.0)
    high = np.full((num_domains, num_tasks), 30.0)
    for _ in range(BISECTION_STEPS):
        mid = (low + high) / 2
        p = _sigmoid(logit + mid[domain])
        mean = np.bincount(cell.ravel(), weights=p.ravel(), minlength=num_domains * num_tasks)
        too_high = mean.reshape(num_domains, num_tasks) > rates[None, :] * size
        high = np.where(too_high, mid, high)
        low = np.where(too_high, low, mid)
    return ((low + high) / 2).T


def _pair_uniform(user: np.ndarray, item: np.ndarray, seed: int) -> np.ndarray:
    """A fixed uniform in [0, 1) per (user, item) pair (splitmix64 of the pair), so a pair
    is in conflict on every impression, not on a random subset."""
    with np.errstate(over="ignore"):
        x = user.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + item.astype(np.uint64) + np.uint64(seed)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def simulate(config: GeneratorConfig) -> Simulation:
    """Samples `config.rows` impressions and their logit terms (deterministic in the seed)."""
    rng = np.random.default_rng(config.seed)
    n, k = config.rows, config.latent_dim
    num_tasks, num_domains = len(config.tasks), len(config.domains)
    # the world: latent vectors, item -> author map, per-domain and per-task weights
    user_vec = rng.standard_normal((config.num_users, k))
    author_vec = rng.standard_normal((config.num_authors, k))
    item_author = rng.integers(0, config.num_authors, size=config.num_items)
    rho = config.author_correlation
    item_vec = rho * author_vec[item_author] + np.sqrt(1 - rho**2) * rng.standard_normal((config.num_items, k))
    domain_w = rng.standard_normal((num_domains, k)) * config.domain_scale
    task_w = rng.standard_normal((num_tasks, k)) * config.task_scale
    dense_w = rng.standard_normal((num_tasks, len(DENSE_FEATURES))) * config.dense_scale / np.sqrt(len(DENSE_FEATURES))
    phase = rng.uniform(0, 2 * np.pi, size=(num_domains, num_tasks))
    user_activity = rng.standard_normal(config.num_users)
    user_bias = rng.standard_normal(config.num_users) * config.id_bias_scale
    item_bias = rng.standard_normal(config.num_items) * config.id_bias_scale
    domain_item = rng.standard_normal((num_domains, config.num_items)) * config.domain_item_scale
    item_quality = rng.standard_normal(config.num_items)
    # the impressions
    user = _zipf(rng, config.num_users, config.user_zipf, n)
    item = _zipf(rng, config.num_items, config.item_zipf, n)
    domain = rng.choice(num_domains, size=n, p=np.asarray(config.domain_fractions))
    hour = rng.integers(0, HOURS, size=n)
    dense = np.stack([
        user_activity[user] + 0.3 * rng.standard_normal(n),
        item_quality[item],
        np.log1p(rng.exponential(30.0, size=n)) - 3.0,
        rng.random(n) * 2 - 1,
    ], axis=1).astype(np.float32)
    # logit terms
    product = user_vec[user] * item_vec[item] / np.sqrt(k)  # [N, K]
    shared = product.sum(axis=1, keepdims=True) * config.shared_scale
    domain_term = (np.einsum("nk,nk->n", product, domain_w[domain]) + domain_item[domain, item])[:, None]
    task_term = product @ task_w.T  # [N, T]
    conflict_user = user if config.conflict_by == "pair" else np.zeros_like(user)
    conflict = _pair_uniform(conflict_user, item, config.seed) < config.conflict_fraction
    flipped = config.tasks.index(config.conflict_tasks[1])
    sign = np.where(conflict, -1.0, 1.0)
    components = {
        "shared": (shared + (user_bias[user] + item_bias[item])[:, None]) * np.ones((1, num_tasks)),
        "domain": np.repeat(domain_term, num_tasks, axis=1),
        "task": task_term,
        "dense": dense.astype(np.float64) @ dense_w.T,
        "context": config.context_scale * np.sin(2 * np.pi * hour[:, None] / HOURS + phase[domain]),
    }
    if config.conflict_by == "item" and config.conflict_fraction > 0:
        # the conflict as a term of its own: what flipping the second task's preferences added
        flipped_parts = sum(components[name][:, flipped] for name in ("shared", "domain", "task"))
        components["conflict"] = np.zeros((n, num_tasks))
        components["conflict"][:, flipped] = np.where(conflict, -2.0 * flipped_parts, 0.0)
    else:
        for name in ("shared", "domain", "task"):
            components[name][:, flipped] *= sign
    components.update(_mechanism_terms(config, user_vec, item_vec, product, components, user, item, domain))
    bias = calibrate_bias(sum(components.values()), domain, num_domains, np.asarray(config.positive_rates))
    hist_offsets, hist_values = _history(rng, config, user_vec, item_vec, user)
    columns = {
        "user_id": user, "item_id": item, "author_id": item_author[item], "hour": hour, "domain": domain,
        **{name: dense[:, j] for j, name in enumerate(DENSE_FEATURES)},
        "hist_offsets": hist_offsets, "hist_values": hist_values,
    }
    return Simulation(columns=columns, components=components, bias=bias)


def _mechanism_terms(config: GeneratorConfig, user_vec: np.ndarray, item_vec: np.ndarray, product: np.ndarray,
                     base: dict[str, np.ndarray], user: np.ndarray, item: np.ndarray,
                     domain: np.ndarray) -> dict[str, np.ndarray]:
    """The enabled mechanism terms, name -> [N, T] logit contribution, each from its own stream.

    - user_groups: sum over feature groups g (the id interaction, the dense features, the hour)
      of (w[user, g] - 1) * that group's base term, w = exp(scale * N(0, 1)): each user weighs
      the groups differently, which per-user gates on the towers (PPNet) can express.
    - domain_dims: sum_k (a[domain, k] - 1) * u_k v_k / sqrt(K), a = exp(scale * N(0, 1)): each
      domain rescales the shared embedding dims, which EPNet's per-domain gate can express.
    - capacity: task t adds capacity_terms[t] terms tanh(3 (u P_j) . (v Q_j) / K) / sqrt(m):
      tasks of different difficulty, which task-adaptive experts (SMES) can serve.
    (The conflict term is built with the base terms in `simulate`.)
    """
    n, k, num_tasks = len(user), config.latent_dim, len(config.tasks)
    terms: dict[str, np.ndarray] = {}
    if config.user_group_scale > 0:
        rng = np.random.default_rng([config.seed, 10])
        groups = (base["shared"], base["dense"], base["context"])
        weights = np.exp(config.user_group_scale * rng.standard_normal((config.num_users, len(groups))))
        terms["user_groups"] = sum((weights[user, g] - 1.0)[:, None] * term for g, term in enumerate(groups))
    if config.domain_dim_scale > 0:
        rng = np.random.default_rng([config.seed, 11])
        scales = np.exp(config.domain_dim_scale * rng.standard_normal((len(config.domains), k)))
        per_row = np.einsum("nk,nk->n", product, scales[domain] - 1.0) * config.shared_scale
        terms["domain_dims"] = np.repeat(per_row[:, None], num_tasks, axis=1)
    if config.capacity_scale > 0 and config.capacity_terms and max(config.capacity_terms) > 0:
        rng = np.random.default_rng([config.seed, 12])
        most = max(config.capacity_terms)
        p, q = rng.standard_normal((most, k, k)), rng.standard_normal((most, k, k))
        u, v = user_vec[user], item_vec[item]
        nonlinear = [np.tanh(3.0 * np.einsum("nk,nk->n", u @ p[j], v @ q[j]) / k) for j in range(most)]
        terms["capacity"] = np.zeros((n, num_tasks))
        for t, m in enumerate(config.capacity_terms):
            if m:
                terms["capacity"][:, t] = sum(nonlinear[:m]) * config.capacity_scale / np.sqrt(m)
    return terms


def _history(rng: np.random.Generator, config: GeneratorConfig, user_vec: np.ndarray,
             item_vec: np.ndarray, user: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recently seen items: each user's best-liked `max_history` of `history_pool` popular
    candidates (so the multi-hot bag carries the user's taste); each row shows a random-length
    (0..max_history, empty included) window of them starting at a random offset.
    Returns: offsets [N + 1] int32, values int64."""
    length = config.max_history
    candidates = _zipf(rng, config.num_items, config.item_zipf, config.num_users * config.history_pool)
    candidates = candidates.reshape(config.num_users, config.history_pool)
    affinity = np.einsum("uk,upk->up", user_vec, item_vec[candidates])
    best = np.argsort(-affinity, axis=1, kind="stable")[:, :length]
    pool = np.take_along_axis(candidates, best, axis=1)  # [U, L] best first
    n = len(user)
    sizes = rng.integers(0, length + 1, size=n)
    start = rng.integers(0, max(length, 1), size=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    row = np.repeat(np.arange(n), sizes)
    slot = (np.arange(offsets[-1]) - offsets[row] + start[row]) % max(length, 1)
    return offsets.astype(np.int32), pool[user[row], slot].astype(np.int64)


def to_table(sim: Simulation, config: GeneratorConfig) -> pa.Table:
    """All rows as one Arrow table with the column layout of modules/spec.py, labels drawn
    from the true probabilities (using a generator seeded apart from the features')."""
    cols = sim.columns
    probs = sim.probabilities()
    labels = np.random.default_rng([config.seed, 1]).random(probs.shape) < probs
    arrays = {name: pa.array(cols[name].astype(np.int64)) for name in ("user_id", "item_id", "author_id", "hour", "domain")}
    arrays[ID_COLUMN] = pa.array(np.arange(len(probs), dtype=np.int64))
    arrays["hist_items"] = pa.ListArray.from_arrays(pa.array(cols["hist_offsets"]), pa.array(cols["hist_values"]))
    arrays.update({name: pa.array(cols[name].astype(np.float32)) for name in DENSE_FEATURES})
    arrays.update({task: pa.array(labels[:, t].astype(np.int8)) for t, task in enumerate(config.tasks)})
    arrays.update({PROBABILITY_PREFIX + task: pa.array(probs[:, t].astype(np.float32)) for t, task in enumerate(config.tasks)})
    terms = [name for name in MECHANISM_TERMS if name in sim.components]
    if terms:
        logit = sum(sim.components.values()) + sim.bias.T[cols["domain"]]
        arrays.update({LOGIT_PREFIX + task: pa.array(logit[:, t].astype(np.float32)) for t, task in enumerate(config.tasks)})
        arrays.update({f"{TERM_PREFIX}{name}_{task}": pa.array(sim.components[name][:, t].astype(np.float32))
                       for name in terms for t, task in enumerate(config.tasks)})
    return pa.table(arrays)


def _marker(config: GeneratorConfig) -> dict:
    return {**to_dict(config), "format_version": FORMAT_VERSION}


def is_complete(config: GeneratorConfig, out_dir: str | Path) -> bool:
    """True when `out_dir` (a path or a storage URI) holds a finished data set generated from
    exactly `config`."""
    marker = location(out_dir).child(GENERATOR_FILE)
    if not marker.exists():
        return False
    try:
        return json.loads(marker.read_text()) == _marker(config)
    except json.JSONDecodeError:
        return False


def _generate_to_storage(config: GeneratorConfig, place: Location) -> str:
    """`generate` at a storage URI: written into a local directory, uploaded, the marker last
    (so an interrupted upload is regenerated, never taken for a finished data set)."""
    if not is_complete(config, place):
        for name in (GENERATOR_FILE, *SPLITS):
            place.child(name).remove()
        with tempfile.TemporaryDirectory(prefix="seesaw-generate-") as directory:
            generate(config, directory)
            marker = Path(directory) / GENERATOR_FILE
            text = marker.read_text()
            marker.unlink()
            place.upload(directory)
            place.child(GENERATOR_FILE).write_text(text)
    return str(place)


def generate(config: GeneratorConfig, out_dir: str | Path) -> Path | str:
    """Writes the data set to `out_dir` (spec.json, train/valid/test Parquet parts, then
    generator.json) and returns `out_dir`; does nothing when it is already complete for `config`.

    Rows are i.i.d., so contiguous slices are random splits. A remote storage URI is written
    through a local directory (`_generate_to_storage`) and returned as the URI.
    """
    place = location(out_dir, "--out")
    if not place.is_local:
        return _generate_to_storage(config, place)
    out = place.local
    if is_complete(config, out):
        return out
    out.mkdir(parents=True, exist_ok=True)
    (out / GENERATOR_FILE).unlink(missing_ok=True)
    for split in SPLITS:
        shutil.rmtree(out / split, ignore_errors=True)
    table = to_table(simulate(config), config)
    bounds = np.round(np.cumsum((0.0, *config.split_fractions)) * config.rows).astype(int)
    for split, lo, hi in zip(SPLITS, bounds[:-1], bounds[1:]):
        (out / split).mkdir()
        edges = np.linspace(lo, hi, config.files_per_split + 1).round().astype(int)
        for part, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
            pq.write_table(table.slice(a, b - a), out / split / f"part-{part:05d}.parquet",
                           row_group_size=config.row_group_size)
    dataset_spec(config).save(out)
    (out / GENERATOR_FILE).write_text(json.dumps(_marker(config), indent=2) + "\n")
    return out
