"""The per-cell form of a dynamic linear fed by a scenario table (fold-scenario-layers).

Inlined into every generated model.py that needs it (dwc/backends/torch/inline.py)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dwc.backends.torch.helpers.per_domain import _dwc_gathers, _dwc_per_domain_linear, _DwcRows


class _DwcScenarioLinear(nn.Module):
    """Inference form of a dynamic linear whose weights depend on the scenario cell only
    (fold-scenario-layers): each cell's weights computed once by `for_inference()`.

    With a rank (APG with shared factors), two forms of the same layer: y = ((x U) S[c]) V + b[c]
    with one K x K core per cell, which small batches apply by gathering each sample's core; and
    y = (x U) W[c] + b[c] with W[c] = S[c] V, one GEMM per cell (its bias included) for batches
    grouped by cell. With `shared_v` (many cells) only the first. Without a rank: y = x W[c] + b[c],
    W[c] the cell's in x out matrix.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        cells: int,
        rank: int | None,
        bias: bool,
        shared_v: bool = False,
    ) -> None:
        super().__init__()
        # U stored rank x in (nn.Linear's layout): narrow ranks run 2-3x faster than from in x rank
        self.u_weight = nn.Parameter(torch.zeros(rank, n_in)) if rank else None
        self.core = nn.Parameter(torch.zeros(cells, rank, rank)) if rank else None
        self.v_weight = nn.Parameter(torch.zeros(rank, n_out)) if rank else None
        self.weight = None if shared_v else nn.Parameter(torch.zeros(cells, rank or n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(cells, n_out)) if bias else None

    def forward(
        self,
        x: torch.Tensor,
        cell: torch.Tensor,
        rows: _DwcRows | None,
    ) -> torch.Tensor:
        if self.u_weight is None:
            return _dwc_per_domain_linear(x, cell, rows, self.weight, self.bias)
        h = F.linear(x, self.u_weight)
        rank = self.u_weight.shape[0]
        if self.weight is not None and rows is not None:
            if not _dwc_gathers(x.shape[0], rank * rank, len(rows[1])):
                return _dwc_per_domain_linear(h, cell, rows, self.weight, self.bias)
        h = _dwc_per_domain_linear(h, cell, rows, self.core, None)
        if self.bias is None:
            return h @ self.v_weight
        return self.bias.index_select(0, cell).addmm_(h, self.v_weight)
