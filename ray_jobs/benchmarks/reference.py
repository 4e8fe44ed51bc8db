"""The plain-PyTorch reference Seesaw is measured against.

One process, no Ray, no TorchRec: one `torch.nn.EmbeddingBag(sparse=True)` per embedding key,
element-wise Adagrad on the sparse gradients, Adam on the same dense architecture, the data
set's Parquet files held in memory as one Arrow table, sliced per step.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn

from modules.dense.registry import arch_class, parse_arch_config
from modules.model import multitask_loss
from modules.spec import DatasetSpec
from ray_jobs.benchmarks.hardware import synchronize


class ReferenceModel(nn.Module):
    """EmbeddingBags + the registered dense architecture `arch`."""

    def __init__(self, spec: DatasetSpec, arch: str, params: dict | None, kjt_keys: tuple[tuple[str, str], ...]) -> None:
        super().__init__()
        config = parse_arch_config(arch, params)
        self.keys = kjt_keys
        self.bags = nn.ModuleList(
            nn.EmbeddingBag(spec.feature(src).cardinality, spec.feature(src).embedding_dim,
                            mode=spec.feature(src).pooling, sparse=True)
            for _, src in kjt_keys
        )
        self.dense_arch = arch_class(arch)(spec, config)

    def forward(self, sparse: list[tuple[torch.Tensor, torch.Tensor]], dense: torch.Tensor, domain: torch.Tensor):
        pooled = {key: bag(values, offsets) for (key, _), bag, (values, offsets) in zip(self.keys, self.bags, sparse)}
        return self.dense_arch(pooled, dense, domain)


def _inputs(table: pa.Table, spec: DatasetSpec, keys: tuple[tuple[str, str], ...]):
    """(values, offsets) per key, dense [B, F], labels [B, T], domain [B] of an Arrow slice."""
    multi = {f.name: f.multi_hot for f in spec.sparse_features}
    sparse = []
    for _, src in keys:
        col = table.column(src).combine_chunks()
        if multi[src]:
            lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
            values = pc.list_flatten(col).to_numpy(zero_copy_only=False)
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        else:
            values = col.to_numpy(zero_copy_only=False)
            offsets = np.arange(len(values))
        sparse.append((torch.from_numpy(np.array(values, dtype=np.int64)), torch.from_numpy(offsets.astype(np.int64))))
    dense = torch.from_numpy(np.stack([table.column(c).to_numpy() for c in spec.dense_features], 1).astype(np.float32))
    labels = torch.from_numpy(np.stack([table.column(t).to_numpy() for t in spec.tasks], 1).astype(np.float32))
    domain = torch.from_numpy(np.array(table.column(spec.domain_column).to_numpy(), dtype=np.int64))
    return sparse, dense, labels, domain


def run_reference(table: pa.Table, spec: DatasetSpec, arch: str, params: dict | None,
                  kjt_keys: tuple[tuple[str, str], ...], batch_size: int, steps: int, warmup: int,
                  sparse_lr: float = 0.05, dense_lr: float = 1e-3, device: str = "cpu") -> dict[str, float]:
    """Trains `steps` steps; returns steady-state samples/s and step-time percentiles."""
    torch.manual_seed(0)
    model = ReferenceModel(spec, arch, params, kjt_keys).to(device)
    sparse_opt = torch.optim.Adagrad(model.bags.parameters(), lr=sparse_lr)
    dense_opt = torch.optim.Adam(model.dense_arch.parameters(), lr=dense_lr)
    times = []
    for step in range(steps):
        start = (step * batch_size) % max(table.num_rows - batch_size, 1)
        t0 = time.perf_counter()
        sparse, dense, labels, domain = _inputs(table.slice(start, batch_size), spec, kjt_keys)
        sparse = [(values.to(device), offsets.to(device)) for values, offsets in sparse]
        dense, labels, domain = dense.to(device), labels.to(device), domain.to(device)
        out = model(sparse, dense, domain)
        loss, _ = multitask_loss(out, labels, torch.ones(labels.shape[0], device=device))
        sparse_opt.zero_grad()
        dense_opt.zero_grad()
        loss.backward()
        sparse_opt.step()
        dense_opt.step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    steady = np.asarray(times[warmup:])
    return {"samples_per_s": batch_size * len(steady) / steady.sum(),
            "step_ms_p50": float(np.percentile(steady, 50) * 1e3),
            "step_ms_p90": float(np.percentile(steady, 90) * 1e3)}
