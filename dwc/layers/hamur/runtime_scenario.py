"""HAMUR's adapter cell in its per-cell inference form (fold-scenario-layers) at run time:
inlined into every generated model.py whose hyper-network reads scenario features only (with the
per-domain helper it imports)."""

import torch
from torch import nn

from dwc.backends.torch.helpers.per_domain import _dwc_per_domain_linear, _DwcRows


class _DwcScenarioHamurAdapter(nn.Module):
    """Inference form of a HAMUR cell whose core H depends on the scenario cell only: each cell's
    maps W_down[c] = U1 H[c] V1 and W_up[c] = U2 H[c] V2 computed once by `for_inference()`,
    y = h + DN_d(sigmoid(h W_down[c] + b1) W_up[c] + b2).

    Each map runs as one matmul per cell present, or with each sample's cell weights gathered in a
    small batch (_dwc_per_domain_linear). Without `domains`, the domain norm's domain is the cell
    and its scale and shift are already in W_up[c] and the per-cell bias; with `domains`, each
    domain's scale and shift (from the running statistics) are applied after the up map.
    """

    def __init__(self, width: int, bottleneck: int, cells: int, domains: int | None = None) -> None:
        super().__init__()
        self.weight_down = nn.Parameter(torch.zeros(cells, width, bottleneck))
        self.bias_down = nn.Parameter(torch.zeros(cells, bottleneck))
        self.weight_up = nn.Parameter(torch.zeros(cells, bottleneck, width))
        self.bias_up = nn.Parameter(torch.zeros(cells, width))
        self.norm_scale = nn.Parameter(torch.ones(domains, width)) if domains else None
        self.norm_shift = nn.Parameter(torch.zeros(domains, width)) if domains else None

    def forward(
        self,
        h: torch.Tensor,
        cell: torch.Tensor,
        rows: _DwcRows | None,
        domain: torch.Tensor | None = None,
    ) -> torch.Tensor:
        s = torch.sigmoid(_dwc_per_domain_linear(h, cell, rows, self.weight_down, self.bias_down))
        u = _dwc_per_domain_linear(s, cell, rows, self.weight_up, self.bias_up)
        if self.norm_scale is not None:
            shift = self.norm_shift.index_select(0, domain)
            u = torch.addcmul(shift, u, self.norm_scale.index_select(0, domain))
        return h + u
