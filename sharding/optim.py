"""Optimizers: fused row-wise Adagrad inside the embedding backward, Adam for dense params.

The sparse update is fused into FBGEMM's backward (no gradient tensor for the tables is ever
materialised); the dense optimizer only sees the parameters without an in-backward optimizer.
Separate learning rates, as in the PEPNet deployment.
"""

from __future__ import annotations

import torch
from torch import nn
from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
from torchrec.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
from torchrec.optim.optimizers import in_backward_optimizer_filter
from torchrec.optim.rowwise_adagrad import RowWiseAdagrad

from sharding.config import OptimConfig


def fuse_sparse_optimizer(sparse_arch: nn.Module, config: OptimConfig) -> None:
    """Marks the embedding tables for row-wise Adagrad applied in backward (call before DMP)."""
    apply_optimizer_in_backward(RowWiseAdagrad, sparse_arch.parameters(),
                                {"lr": config.sparse_lr, "eps": config.sparse_eps})


def dense_optimizer(model: nn.Module, config: OptimConfig) -> KeyedOptimizerWrapper:
    """Adam over the parameters that have no in-backward optimizer.

    The fused kernel (CPU and CUDA) updates each parameter in one pass; the default for-loop
    Adam launches about ten element-wise ops per parameter, which at recommendation-model sizes
    costs more than the update itself (see BENCHMARKS.md).
    """
    params = dict(in_backward_optimizer_filter(model.named_parameters()))
    return KeyedOptimizerWrapper(
        params, lambda ps: torch.optim.Adam(ps, lr=config.dense_lr, weight_decay=config.dense_weight_decay,
                                            fused=config.dense_fused)
    )


def combined_optimizer(model: nn.Module, config: OptimConfig) -> CombinedOptimizer:
    """Fused sparse + dense optimizer as one KeyedOptimizer (one state_dict for checkpoints).

    `model` is the DMP-wrapped model; its `fused_optimizer` holds the embedding optimizer state.
    """
    return CombinedOptimizer([("sparse", model.fused_optimizer), ("dense", dense_optimizer(model, config))])
