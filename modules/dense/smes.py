"""SMES (Kuaishou 2026): a scalable sparse MoE with progressive, per-task expert routing.

Every task t has a linear router, z_t = W_t h ([B, E]) and p_t = softmax(z_t). Selection runs in
two stages per sample:
- Stage I (task-shared): s = sum_t w_t p_t; S = top-K_s experts of s; every task uses S.
- Stage II (task-adaptive): A_t = top-K_a experts of z_t outside S; task t uses K_t = S + A_t,
  exactly K = K_s + K_a experts.
Each expert of the union U = the K_t over all tasks (|U| <= K_s + T * K_a) runs once per sample on
only the rows that chose it, so compute grows with K, not with E. Task t mixes its experts with
p_t renormalised over K_t; the routers learn through these weights and the load-balance loss.

`moe_dense` is the dense baseline built from the same pieces: every expert on every row, mixed
by the per-task softmax p_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from modules.dense.base import ArchOutput, DenseArch, concat, input_width, mlp, tower
from modules.dense.experts import ExpertBank
from modules.dense.registry import register
from modules.spec import DatasetSpec
from modules.strict import ConfigError


@dataclass(frozen=True)
class MoEDenseConfig:
    """Shared by `moe_dense` and `smes`. `encoder=()` feeds the raw concatenation to the experts."""

    num_experts: int = 16
    expert_hidden: tuple[int, ...] = (128, 64)
    encoder: tuple[int, ...] = ()
    tower: tuple[int, ...] = (64,)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.num_experts < 1 or not self.expert_hidden:
            raise ConfigError("moe: num_experts must be >= 1 and expert_hidden non-empty")


@dataclass(frozen=True)
class SMESConfig(MoEDenseConfig):
    """Ablations: k_shared=0 (no shared stage), k_adaptive=0 (no adaptive stage), beta=0 (no LB loss).

    `task_weights` are the Stage I weights w_t (empty = 1/T each).
    """

    k_shared: int = 2
    k_adaptive: int = 1
    task_weights: tuple[float, ...] = ()
    beta: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k_shared < 0 or self.k_adaptive < 0 or self.k_shared + self.k_adaptive < 1:
            raise ConfigError("smes: k_shared, k_adaptive must be >= 0 with k_shared + k_adaptive >= 1")
        if self.k_shared + self.k_adaptive > self.num_experts:
            raise ConfigError(
                f"smes: k_shared + k_adaptive = {self.k_shared + self.k_adaptive} exceeds num_experts = {self.num_experts}"
            )
        if self.beta < 0:
            raise ConfigError("smes: beta must be >= 0")


@dataclass
class Routing:
    """One batch's expert choice.

    Attributes:
        probs: [B, T, E] p_t, differentiable.
        shared: [B, K_s] the task-shared experts S.
        selected: [B, T, K] the experts K_t of each task (S first, then A_t).
        mask: [B, T, E] bool, True where expert e is in K_t.
    """

    probs: torch.Tensor
    shared: torch.Tensor
    selected: torch.Tensor
    mask: torch.Tensor

    @property
    def union(self) -> torch.Tensor:
        """[B, E] bool: the experts U that run for each sample."""
        return self.mask.any(dim=1)

    def mixture_weights(self, logits: torch.Tensor) -> torch.Tensor:
        """[B, T, E]: p_t renormalised over K_t (0 elsewhere) = softmax of z_t masked to K_t."""
        return torch.softmax(logits.masked_fill(~self.mask, float("-inf")), dim=-1)


def route(logits: torch.Tensor, task_weights: torch.Tensor, k_shared: int, k_adaptive: int) -> Routing:
    """Two-stage selection. logits: [B, T, E] router outputs z_t; task_weights: [T] w_t."""
    batch, tasks, experts = logits.shape
    probs = torch.softmax(logits, dim=-1)
    z = logits.detach()
    score = torch.einsum("bte,t->be", probs.detach(), task_weights)
    shared = score.topk(k_shared, dim=-1).indices
    in_shared = torch.zeros(batch, experts, dtype=torch.bool, device=logits.device).scatter_(1, shared, True)
    adaptive = z.masked_fill(in_shared.unsqueeze(1), float("-inf")).topk(k_adaptive, dim=-1).indices
    selected = torch.cat([shared.unsqueeze(1).expand(batch, tasks, k_shared), adaptive], dim=-1)
    mask = torch.zeros(batch, tasks, experts, dtype=torch.bool, device=logits.device).scatter_(2, selected, True)
    return Routing(probs, shared, selected, mask)


def load_balance(frequency: torch.Tensor, probability: torch.Tensor, k: int) -> torch.Tensor:
    """L_lb = (E / K) * sum_e f_e * P_e (scalar).

    Args:
        frequency: [E] f_e = the fraction of (sample, task) pairs whose K_t holds e, over the whole
            batch and all tasks, so sum_e f_e = K.
        probability: [E] P_e = the mean of p_t[e] over the whole batch and all tasks (sum = 1).
        k: K = K_s + K_a.
    Uniform routing (P_e = 1/E, or f_e = K/E) gives exactly 1; routing that piles probability
    and selections on the same few experts gives up to E/K.
    """
    return frequency.numel() / k * torch.dot(frequency, probability)


def masked_mixture_reference(bank: ExpertBank, h: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Plain reference: every expert on every row, then weighted. h: [B, D_in]; weights: [B, T, E].

    Returns: [B, T, D_out]. Also the dense MoE's mixture (weights = p_t).
    """
    return torch.bmm(weights, bank.forward_all(h))


def grouped_mixture(bank: ExpertBank, h: torch.Tensor, weights: torch.Tensor, union: torch.Tensor) -> torch.Tensor:
    """Fast path: each expert runs once on just the rows whose union U holds it.

    Args:
        h: [B, D_in]; weights: [B, T, E], zero outside K_t; union: [B, E] bool.
    Returns: [B, T, D_out], equal to `masked_mixture_reference` (and so are its gradients).
    """
    sample, expert = union.nonzero(as_tuple=True)  # N = sum |U| (sample, expert) pairs
    order = torch.argsort(expert, stable=True)
    sample, expert = sample[order], expert[order]
    counts = torch.bincount(expert, minlength=bank.num_experts).tolist()
    rows = h.index_select(0, sample).split(counts)
    out = torch.cat(bank.forward_groups(rows))  # [N, D_out]
    pair_weights = weights[sample, :, expert]  # [N, T]
    contribution = pair_weights.unsqueeze(-1) * out.unsqueeze(1)  # [N, T, D_out]
    zeros = h.new_zeros(h.shape[0], weights.shape[1], bank.out_dim)
    return zeros.index_add(0, sample, contribution)


@register("moe_dense")
class MoEDense(DenseArch):
    """Dense baseline of SMES: same encoder, experts, routers and towers; all E experts per row."""

    Config = MoEDenseConfig

    def __init__(self, spec: DatasetSpec, config: MoEDenseConfig) -> None:
        super().__init__(spec, config)
        width = input_width(spec, spec.feature_names)
        self.encoder = mlp(width, config.encoder, config.dropout)
        width = config.encoder[-1] if config.encoder else width
        self.experts = ExpertBank(width, config.num_experts, config.expert_hidden)
        self.router = nn.Linear(width, spec.num_tasks * config.num_experts, bias=False)
        self.towers = nn.ModuleList(tower(self.experts.out_dim, config.tower, config.dropout) for _ in spec.tasks)

    def encode(self, embeddings: dict[str, torch.Tensor], dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns h [B, D_in] and the router logits z [B, T, E]."""
        h = self.encoder(concat(embeddings, self.spec.feature_names, dense))
        return h, self.router(h).view(h.shape[0], self.spec.num_tasks, self.config.num_experts)

    def heads(self, mixed: torch.Tensor) -> torch.Tensor:
        """mixed: [B, T, D_out] -> logits [B, T], tower t on task t's mixture."""
        return torch.cat([t(mixed[:, i]) for i, t in enumerate(self.towers)], dim=-1)

    def forward(self, embeddings: dict[str, torch.Tensor], dense: torch.Tensor, domain: torch.Tensor) -> ArchOutput:
        h, logits = self.encode(embeddings, dense)
        probs = torch.softmax(logits, dim=-1)
        mixed = masked_mixture_reference(self.experts, h, probs)
        return ArchOutput(self.heads(mixed), telemetry={"expert_load": probs.detach().mean(dim=(0, 1))})


@register("smes")
class SMES(MoEDense):
    """Sparse MoE with task-shared then task-adaptive routing (see the module docstring).

    aux_loss = beta * `load_balance` (None when beta = 0). Telemetry: `expert_load` [E], each
    expert's fraction of all selections (sums to 1), and `mean_union`, the mean |U| per sample.
    """

    Config = SMESConfig

    def __init__(self, spec: DatasetSpec, config: SMESConfig) -> None:
        super().__init__(spec, config)
        weights = config.task_weights or (1.0 / spec.num_tasks,) * spec.num_tasks
        if len(weights) != spec.num_tasks:
            raise ConfigError(f"smes: task_weights has {len(weights)} entries for {spec.num_tasks} tasks")
        self.register_buffer("task_weights", torch.tensor(weights, dtype=torch.float32), persistent=False)
        self.k = config.k_shared + config.k_adaptive

    def route(self, logits: torch.Tensor) -> Routing:
        return route(logits, self.task_weights, self.config.k_shared, self.config.k_adaptive)

    def forward(self, embeddings: dict[str, torch.Tensor], dense: torch.Tensor, domain: torch.Tensor) -> ArchOutput:
        return self._run(embeddings, dense, grouped=True)

    def reference_forward(self, embeddings: dict[str, torch.Tensor], dense: torch.Tensor,
                          domain: torch.Tensor) -> ArchOutput:
        """`forward` with every expert on every row, masked (`masked_mixture_reference`)."""
        return self._run(embeddings, dense, grouped=False)

    def _run(self, embeddings: dict[str, torch.Tensor], dense: torch.Tensor, grouped: bool) -> ArchOutput:
        h, logits = self.encode(embeddings, dense)
        routing = self.route(logits)
        weights = routing.mixture_weights(logits)
        union = routing.union
        if grouped:
            mixed = grouped_mixture(self.experts, h, weights, union)
        else:
            mixed = masked_mixture_reference(self.experts, h, weights)
        frequency = routing.mask.float().mean(dim=(0, 1))
        aux = None
        if self.config.beta > 0:
            aux = self.config.beta * load_balance(frequency, routing.probs.mean(dim=(0, 1)), self.k)
        telemetry = {"expert_load": frequency / self.k, "mean_union": union.sum(dim=1).float().mean()}
        return ArchOutput(self.heads(mixed), aux, telemetry)
