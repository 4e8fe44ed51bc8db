"""Bodies of the pass-quality test, run in one spawned rank (imported by that process)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from modules.collision import BoundedFeature, bounded_spec, for_keys
from modules.model import embedding_tables
from ray_jobs.core.config import DataConfig, JobConfig, ModelConfig, TrainConfig
from ray_jobs.data.drift import PRESETS, DriftConfig, dataset_spec, generate, stream_stats
from ray_jobs.training.passes import run_local
from ray_jobs.training.worker import build_sharded_model
from sharding.bounded import BoundedShardedModel
from sharding.optim import OptimConfig, combined_optimizer

STREAM = replace(PRESETS["default"], days=6, rows_per_day=6_000, num_users=600, num_authors=100, new_items_per_day=150)
ROWS_FRACTION = 10  # item table: 1/10 of the distinct items of the stream
VARIANTS = ("feature_score", "lru", "lfu", "unbounded")


def job(stream: DriftConfig, distinct: dict[str, int], variant: str) -> JobConfig:
    """The same job for every variant; only the item table's cap and policy differ."""
    if variant == "unbounded":  # a row for every item ever seen: nothing is evicted
        items = BoundedFeature("item_id", rows=distinct["item_id"] + 1)
    else:
        items = BoundedFeature("item_id", rows=distinct["item_id"] // ROWS_FRACTION, policy=variant,  # type: ignore[arg-type]
                               admission_threshold=2)
    return JobConfig(
        name=f"quality-{variant}",
        data=DataConfig(batch_size=256),
        model=ModelConfig(arch="sharedbottom"),
        train=TrainConfig(log_every=10**6, optim=OptimConfig(sparse_lr=0.05)),
        collision=(items, BoundedFeature("author_id", rows=distinct["author_id"] + 1)),
    )


def compare_policies(rank: int, world_size: int, out: str, seed: int = STREAM.seed) -> dict:
    """Next-day mean AUC per pass (passes 2..) of every variant, and each run's item counters."""
    stream = replace(STREAM, seed=seed)
    root = generate(stream, Path(out) / "stream")
    distinct = stream_stats(root)["distinct"]
    results = {}
    for variant in VARIANTS:
        history = run_local(job(stream, distinct, variant), root, Path(out) / variant)
        results[variant] = {"auc": [h["next_day_mean_auc"] for h in history[1:]],
                            "rows_in_use": [h["rows_in_use/item_id"] for h in history],
                            "rows": history[0]["rows/item_id"], "evictions": history[-1]["evictions/item_id"],
                            "checkpoint_mb": pd.read_csv(Path(out) / variant / "passes.csv")["checkpoint_mb"].tolist()}
    return {"distinct": distinct, "results": results}


def reset_rows(rank: int, world_size: int) -> dict:
    """Zeroes rows 1 and 2 of a bounded table (weights and Adagrad state); returns before/after."""
    spec = bounded_spec(dataset_spec(PRESETS["tiny"], {"item_id": 10, "author_id": 10}),
                        [BoundedFeature("item_id", rows=6)])
    config = JobConfig(model=ModelConfig(arch="sharedbottom"), data=DataConfig(batch_size=8))
    model, sharded, _ = build_sharded_model(config, spec, torch.device("cpu"), local_world_size=1)
    combined_optimizer(sharded, config.train.optim)
    features = for_keys([BoundedFeature("item_id", rows=6)], model.kjt_keys)
    tables = [t for t in embedding_tables(spec, model.table_sets) if t.feature_names == ["item_id"]]
    bounded = BoundedShardedModel(sharded, features, tables)
    name = "sparse_arch.embedding_bags.t_item_id.weight"
    momentum = sharded.fused_optimizer.state_dict()["state"][name]["t_item_id.momentum1"].local_shards()[0].tensor
    momentum.fill_(1.0)
    before = sharded.state_dict()[name].local_shards()[0].tensor.clone()
    bounded.reset_rows({"item_id": torch.tensor([1, 2])})
    after_momentum = sharded.fused_optimizer.state_dict()["state"][name]["t_item_id.momentum1"].local_shards()[0].tensor
    return {"before": before.tolist(), "after": sharded.state_dict()[name].local_shards()[0].tensor.tolist(),
            "momentum": after_momentum.tolist()}


def run_all(rank: int, world_size: int, out: str) -> dict:
    """Both bodies in one spawned process (each spawn pays the torch/torchrec import)."""
    return {"reset": reset_rows(rank, world_size), **compare_policies(rank, world_size, out)}
