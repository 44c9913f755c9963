"""POSO's per-expert gates at run time: inlined into every generated model.py with a
`poso_experts` value (a `poso` stack's gates are the Gate NU helper, dwc/layers/gate/runtime.py)."""

import torch
from torch import nn


class _DwcExpertGates(nn.Module):
    """POSO(MMoE)'s gates: expert k's output times gamma * sigmoid(relu(z W1_k + b1_k) W2_k + b2_k).

    Every expert has its own two-layer gate network on the personalisation code z, initialised
    as an nn.Linear of its fan-in (a gate starts near gamma / 2). The first layers of all the
    experts' gates run as one matmul, the second layers as one batched matmul.
    """

    def __init__(self, n_in: int, hidden: int, count: int, width: int, gamma: float) -> None:
        super().__init__()
        self.gamma = gamma
        first, second = n_in**-0.5, hidden**-0.5
        self.hidden_weight = nn.Parameter(torch.empty(count, n_in, hidden).uniform_(-first, first))
        self.hidden_bias = nn.Parameter(torch.empty(count, hidden).uniform_(-first, first))
        self.out_weight = nn.Parameter(torch.empty(count, hidden, width).uniform_(-second, second))
        self.out_bias = nn.Parameter(torch.empty(count, width).uniform_(-second, second))

    def gates(self, z: torch.Tensor) -> torch.Tensor:
        """The gate values, B x count x width, in (0, gamma)."""
        hidden = torch.relu(torch.einsum("bi,eih->beh", z, self.hidden_weight) + self.hidden_bias)
        logits = torch.einsum("beh,eho->beo", hidden, self.out_weight) + self.out_bias
        return torch.sigmoid(logits) * self.gamma

    def forward(self, experts: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return experts * self.gates(z)
