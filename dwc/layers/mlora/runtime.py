"""MLoRA's layer at run time: inlined into every generated model.py with an mlora layer (with the
per-domain helper it imports)."""

import torch
from torch import nn
from torch.nn import functional as F

from dwc.backends.torch.helpers.per_domain import _dwc_per_domain_linear, _DwcRows


class _DwcMloraLinear(nn.Module):
    """MLoRA's layer: y = Dropout(x W + b) + (x A[d]) B[d] + c[d], d each sample's own domain.

    W (in x out) and b are shared; A[d] (in x rank), B[d] (rank x out) and c[d] are domain d's
    low-rank adapter. W and A are Glorot-uniform with Keras' fans (for the 3-D A: in * domains
    and rank * domains, as MLoRA's code has it); b, B and c start at 0, so the layer starts as
    the shared linear. Dropout is on the shared path only.

    Each sample gets its own domain's adapter, computed one of two ways. When every domain's
    adapter costs no more than the shared product (domains * rank * (in + out) <= in * out
    multiply-adds), side by side: one GEMM for x W and every domain's x A[d], each sample's own
    rank columns kept by a mask, one GEMM with every domain's B[d] stacked. Otherwise per domain
    present (`_dwc_per_domain_linear`: grouped in eager mode, each sample's factors gathered in
    small batches). A batch of one domain takes its factors directly.

    `dwc_scenario_parameters` names the adapter: `dwc train --two-stage` first trains the shared
    parts with it frozen at its start, then only the adapter.
    """

    dwc_scenario_parameters = ("domain_a", "domain_b", "domain_bias")

    def __init__(self, n_in: int, n_out: int, domains: int, rank: int, dropout: float) -> None:
        super().__init__()
        self.dropout = dropout
        self.side_by_side = domains * rank * (n_in + n_out) <= n_in * n_out
        bound = (6.0 / (n_in + n_out)) ** 0.5
        self.weight = nn.Parameter(torch.empty(n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(n_out))
        bound = (6.0 / (domains * (n_in + rank))) ** 0.5
        self.domain_a = nn.Parameter(torch.empty(domains, n_in, rank).uniform_(-bound, bound))
        self.domain_b = nn.Parameter(torch.zeros(domains, rank, n_out))
        self.domain_bias = nn.Parameter(torch.zeros(domains, n_out))

    def forward(
        self,
        x: torch.Tensor,
        domain: torch.Tensor,
        rows: _DwcRows | None,
    ) -> torch.Tensor:
        if self.side_by_side and (rows is None or len(rows[1]) > 1):
            return self.side_by_side_forward(x, domain)
        shared = F.dropout(torch.addmm(self.bias, x, self.weight), self.dropout, self.training)
        low = _dwc_per_domain_linear(x, domain, rows, self.domain_a, None)
        adapted = _dwc_per_domain_linear(low, domain, rows, self.domain_b, self.domain_bias)
        return shared.add_(adapted)  # addmm and dropout keep no output for their backward

    def side_by_side_forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        domains, n_in, rank = self.domain_a.shape
        n_out = self.weight.shape[1]
        every_a = self.domain_a.permute(1, 0, 2).reshape(n_in, domains * rank)
        products = x @ torch.cat([self.weight, every_a], dim=1)
        shared = F.dropout(products[:, :n_out] + self.bias, self.dropout, self.training)
        own = domain.unsqueeze(1) == torch.arange(domains, device=domain.device)
        low = products[:, n_out:].reshape(-1, domains, rank) * own.unsqueeze(2).to(x.dtype)
        adapted = torch.addmm(
            self.domain_bias.index_select(0, domain),
            low.reshape(-1, domains * rank),
            self.domain_b.reshape(domains * rank, n_out),
        )
        return adapted.add_(shared)
