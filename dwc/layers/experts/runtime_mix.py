"""MMoE's gate mixture at run time: inlined into every generated model.py with a mix (with the
experts' softmax and the static-trace test it imports)."""

import torch
from torch import nn

from dwc.backends.torch.helpers.softmax import _dwc_softmax_experts
from dwc.backends.torch.helpers.static import _dwc_is_static


class _DwcMix(nn.Module):
    """MMoE gate: softmax(linear(g)) weights over the experts, then their weighted sum."""

    def __init__(self, n_in: int, count: int) -> None:
        super().__init__()
        self.gate = nn.Linear(n_in, count)

    def forward(self, experts: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        weights = _dwc_softmax_experts(self.gate(g))
        if _dwc_is_static():  # exported as before: ORT ran the multiply-and-sum 1.29x slower at
            # B = 8192 (benchmarks/ab.py, poso)
            return torch.einsum("be,beh->bh", weights, experts)
        # eager, one multiply and reduction: at B = 1 a third of einsum's cost (its Python
        # dispatch), at B >= 64 about half of einsum's and of bmm's (tiny per-sample matrices)
        return (weights.unsqueeze(2) * experts).sum(dim=1)
