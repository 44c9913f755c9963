"""MMoE's gate mixture at run time: inlined into every generated model.py with a mix (with the
experts' softmax it imports)."""

import torch
from torch import nn

from dwc.backends.torch.helpers.softmax import _dwc_softmax_experts


class _DwcMix(nn.Module):
    """MMoE gate: softmax(linear(g)) weights over the experts, then their weighted sum."""

    def __init__(self, n_in: int, count: int) -> None:
        super().__init__()
        self.gate = nn.Linear(n_in, count)

    def forward(self, experts: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        weights = _dwc_softmax_experts(self.gate(g))
        return torch.einsum("be,beh->bh", weights, experts)
