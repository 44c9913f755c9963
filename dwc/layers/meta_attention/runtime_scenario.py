"""M2M's meta attention in its per-cell inference form (fold-scenario-layers) at run time:
inlined into every generated model.py whose meta unit is generated from the scenario only (with
the per-domain, activation and softmax helpers it imports)."""

import torch
from torch import nn

from dwc.backends.torch.helpers.activation import _dwc_activation_
from dwc.backends.torch.helpers.per_domain import _dwc_per_domain_linear, _DwcRows
from dwc.backends.torch.helpers.softmax import _dwc_softmax_experts


class _DwcScenarioMetaAttention(nn.Module):
    """Inference form of M2M meta attention whose meta unit depends on the scenario cell only
    (fold-scenario-layers): each cell's layer weights computed once by `for_inference()`.

    The task representation is the same for every sample, so its rows of the first layer are
    folded into that layer's per-cell bias. The experts' rows (samples x experts) then run
    through each layer with one matmul per cell present, or with each row's cell weights
    gathered in small batches (_dwc_per_domain_linear); scores and mixing are the training form's.
    """

    def __init__(self, cells: int, dims: list[int], act: str) -> None:
        super().__init__()
        pairs = list(zip(dims, dims[1:]))
        self.weights = nn.ParameterList(
            nn.Parameter(torch.zeros(cells, n_in, n_out)) for n_in, n_out in pairs
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(cells, n_out)) for _, n_out in pairs
        )
        self.score = nn.Parameter(torch.ones(dims[-1]))
        self.act = act

    def forward(
        self, experts: torch.Tensor, cell: torch.Tensor, rows: _DwcRows | None
    ) -> torch.Tensor:
        batch, count, width = experts.shape
        cells = cell.repeat_interleave(count)  # row b * count + e belongs to sample b's cell
        if rows is not None:
            order, present, counts = rows
            if order is not None:
                expert = torch.arange(count, device=cell.device)
                order = (order.unsqueeze(1) * count + expert).flatten()
            rows = (order, present, [n * count for n in counts])
        h = experts.reshape(batch * count, width)
        for weight, bias in zip(self.weights, self.biases):
            h = _dwc_activation_(_dwc_per_domain_linear(h, cells, rows, weight, bias), self.act)
        alpha = _dwc_softmax_experts((h @ self.score).reshape(batch, count))
        return torch.bmm(alpha.unsqueeze(1), experts).squeeze(1)
