"""A bank of E equally shaped expert MLPs with stacked weights, and gate mixtures.

Stacked weights ([E, in, out] per layer) let every expert run in one batched matmul
(`forward_all`), while `forward_groups` runs each expert on its own rows only, which is
what a sparse mixture (SMES) needs so its compute grows with K, not with E.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


class ExpertBank(nn.Module):
    """E experts, each Linear-ReLU layers of widths `hidden` over an `in_dim` input.

    Args:
        in_dim: input width D_in.
        num_experts: E.
        hidden: layer widths; the output width is hidden[-1].
    """

    def __init__(self, in_dim: int, num_experts: int, hidden: Sequence[int]) -> None:
        super().__init__()
        if num_experts < 1 or not hidden:
            raise ValueError("ExpertBank needs num_experts >= 1 and at least one hidden layer")
        self.num_experts = num_experts
        self.out_dim = hidden[-1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        dim = in_dim
        for width in hidden:
            bound = 1.0 / math.sqrt(dim)
            self.weights.append(nn.Parameter(torch.empty(num_experts, dim, width).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(num_experts, width).uniform_(-bound, bound)))
            dim = width

    def forward_all(self, x: torch.Tensor) -> torch.Tensor:
        """Every expert on every row. x: [B, D_in] or [E, B, D_in] (one input per expert).

        Returns: [B, E, D_out].
        """
        h = x.unsqueeze(0).expand(self.num_experts, -1, -1) if x.dim() == 2 else x
        for w, b in zip(self.weights, self.biases):
            h = torch.relu(torch.baddbmm(b.unsqueeze(1), h, w))
        return h.transpose(0, 1)

    def forward_groups(self, chunks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Expert e on the rows chunks[e] ([N_e, D_in], may be empty), for every e.

        Returns: E tensors [N_e, D_out]. Each stacked weight is unbound once, so the backward
        stays O(E); indexing w[e] per expert would build a full-size zero gradient per expert.
        """
        layers = [(w.unbind(0), b.unbind(0)) for w, b in zip(self.weights, self.biases)]
        outs = []
        for e, h in enumerate(chunks):
            if h.shape[0] == 0:
                outs.append(h.new_zeros(0, self.out_dim))
                continue
            for ws, bs in layers:
                h = torch.relu(torch.addmm(bs[e], h, ws[e]))
            outs.append(h)
        return outs


def mix(expert_out: torch.Tensor, gate_logits: torch.Tensor) -> torch.Tensor:
    """Softmax-gated mixture. expert_out: [B, E, D]; gate_logits: [B, E]. Returns [B, D]."""
    weights = torch.softmax(gate_logits, dim=-1)
    return torch.bmm(weights.unsqueeze(1), expert_out).squeeze(1)
