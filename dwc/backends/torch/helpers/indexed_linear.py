"""A linear layer with one weight set per domain id (linear(x, n, per = d)).

Inlined into every generated model.py that needs it (dwc/backends/torch/inline.py)."""

from __future__ import annotations

import torch
from torch import nn

from dwc.backends.torch.helpers.per_domain import _dwc_per_domain_linear, _DwcRows


class _DwcIndexedLinear(nn.Module):
    """A linear layer with one weight set per domain id (per-scenario heads, folded STAR layers).

    Eager: samples are grouped by domain and each group runs one dense matmul (no per-sample
    weight copies). Traced/exported: one matmul against every domain's weights side by side, then
    a gather of each sample's slice (no data-dependent control flow).
    """

    def __init__(self, n_in: int, n_out: int, domains: int) -> None:
        super().__init__()
        bound = n_in**-0.5
        self.weight = nn.Parameter(torch.empty(domains, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(domains, n_out).uniform_(-bound, bound))

    def forward(
        self,
        x: torch.Tensor,
        domain: torch.Tensor,
        rows: _DwcRows | None,
    ) -> torch.Tensor:
        return _dwc_per_domain_linear(x, domain, rows, self.weight, self.bias)
