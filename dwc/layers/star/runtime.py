"""STAR's star-topology linear at run time: inlined into every generated model.py with a star
layer (with the per-domain helper it imports)."""

import torch
from torch import nn

from dwc.backends.torch.helpers.per_domain import _dwc_per_domain_linear, _DwcRows


class _DwcStarLinear(nn.Module):
    """STAR's star-topology linear: y = x (W * W_p[d]) + (b + b_p[d]).

    W_p starts at 1 and b_p at 0 (the shared model). Computed per domain present in the batch
    (grouped in eager mode, one side-by-side matmul when traced); never all domains' towers with
    a mask, and never a per-sample copy of the weights.
    """

    dwc_scenario_parameters = ("domain_weight", "domain_bias")  # `dwc train --two-stage`

    def __init__(self, n_in: int, n_out: int, domains: int) -> None:
        super().__init__()
        shared = nn.Linear(n_in, n_out)
        self.weight = nn.Parameter(shared.weight.detach().t().contiguous())
        self.bias = nn.Parameter(shared.bias.detach().clone())
        self.domain_weight = nn.Parameter(torch.ones(domains, n_in, n_out))
        self.domain_bias = nn.Parameter(torch.zeros(domains, n_out))

    def forward(
        self,
        x: torch.Tensor,
        domain: torch.Tensor,
        rows: _DwcRows | None,
    ) -> torch.Tensor:
        weight = self.weight * self.domain_weight
        return _dwc_per_domain_linear(x, domain, rows, weight, self.bias + self.domain_bias)
