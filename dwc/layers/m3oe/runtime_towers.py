"""M3oE's per-(domain, task) towers at run time: inlined into every generated model.py with an
m3oe layer (with the per-domain helper it imports)."""

import torch
from torch import nn
from torch.nn import functional as F

from dwc.backends.torch.helpers.per_domain import _dwc_gathers, _DwcRows


class _DwcM3oETowers(nn.Module):
    """M3oE's towers: y_t = w2 . relu(LN(f_t W1 + b1)) + b2 with the T towers of each sample's
    own domain (one per task), B x T x H -> B x T logits; initialised as nn.Linear and
    nn.LayerNorm are.

    Eager: per domain present, its T towers on its rows (fused kernels per task), or each
    sample's tower weights gathered when the batch is small (_dwc_gathers). Traced: every
    domain's towers side by side, then each sample's (no data-dependent control flow). Never all
    D x T towers on every sample with a mask in eager mode.
    """

    def __init__(self, domains: int, tasks: int, width: int) -> None:
        super().__init__()
        self.tasks, self.width = tasks, width  # static sizes (a traced shape is a tensor)
        bound = width**-0.5

        def uniform(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.weight = uniform(domains, tasks, width, width)
        self.bias = uniform(domains, tasks, width)
        self.norm_weight = nn.Parameter(torch.ones(domains, tasks, width))
        self.norm_bias = nn.Parameter(torch.zeros(domains, tasks, width))
        self.out_weight = uniform(domains, tasks, width)
        self.out_bias = uniform(domains, tasks)

    def _parameters_at(self, index: torch.Tensor | None) -> list[torch.Tensor]:
        """The towers' tensors: every domain's (None) or each sample's (its domain's)."""
        tensors = [
            self.weight,
            self.bias,
            self.norm_weight,
            self.norm_bias,
            self.out_weight,
            self.out_bias,
        ]
        return tensors if index is None else [t.index_select(0, index) for t in tensors]

    def _one_domain(self, x: torch.Tensor, d: int) -> torch.Tensor:
        """Domain d's T towers on its rows x (n x T x H), each a chain of fused kernels (eager
        only). Every tensor is split into its tasks' views once, so the dispatches do not grow
        with the towers (at B = 1 each one counts)."""
        per_task = [tensor[d].unbind(0) for tensor in self._parameters_at(None)]
        logits = []
        for f, weight, bias, norm_weight, norm_bias, out_weight, out_bias in zip(
            x.unbind(1), *per_task, strict=True
        ):
            h = torch.addmm(bias, f, weight)
            h = F.layer_norm(h, [self.width], norm_weight, norm_bias)
            logits.append(torch.addmv(out_bias, h.relu_(), out_weight))
        return torch.stack(logits, dim=1)

    def _towers(self, x: torch.Tensor, layer: str, logit: str, tensors: list[torch.Tensor]):
        """The towers on `x` (rows x T x H) with `tensors`; `layer` and `logit` are the einsum
        equations that pair the rows with those towers (each row's, or every domain's)."""
        weight, bias, norm_weight, norm_bias, out_weight, out_bias = tensors
        h = torch.einsum(layer, x, weight) + bias
        h = torch.addcmul(norm_bias, F.layer_norm(h, [self.width]), norm_weight).relu_()
        return torch.einsum(logit, h, out_weight) + out_bias

    def forward(
        self, fused: torch.Tensor, domain: torch.Tensor, rows: _DwcRows | None
    ) -> torch.Tensor:
        if rows is None:  # traced: every domain's towers, then each sample's domain's logits
            every = self._towers(
                fused, "btf,dtfg->bdtg", "bdtg,dtg->bdt", self._parameters_at(None)
            )
            index = domain.view(-1, 1, 1).expand(-1, 1, every.shape[2])
            return every.gather(1, index).squeeze(1)
        order, present, counts = rows
        if len(present) == 1:
            return self._one_domain(fused, present[0])
        if _dwc_gathers(fused.shape[0], self.tasks * self.width * self.width, len(present)):
            return self._towers(fused, "btf,btfg->btg", "btg,btg->bt", self._parameters_at(domain))
        parts = (fused if order is None else fused.index_select(0, order)).split(counts)
        out = torch.cat([self._one_domain(part, d) for d, part in zip(present, parts, strict=True)])
        return out if order is None else torch.empty_like(out).index_copy_(0, order, out)
