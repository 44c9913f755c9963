"""MMoE's shared experts at run time: inlined into every generated model.py with an experts
value (with the activation helper it imports)."""

import torch
from torch import nn

from dwc.backends.torch.helpers.activation import _dwc_activation


class _DwcExperts(nn.Module):
    """`count` expert MLPs on one input, computed as batched matmuls: B x in -> B x count x out."""

    def __init__(self, count: int, dims: list[int], act: str) -> None:
        super().__init__()
        self.act = act
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for n_in, n_out in zip(dims, dims[1:], strict=False):
            bound = n_in**-0.5
            self.weights.append(
                nn.Parameter(torch.empty(count, n_in, n_out).uniform_(-bound, bound))
            )
            self.biases.append(nn.Parameter(torch.empty(count, n_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.einsum("bi,eio->beo", x, self.weights[0]) + self.biases[0]
        h = _dwc_activation(h, self.act)
        for weight, bias in zip(self.weights[1:], self.biases[1:], strict=True):
            h = _dwc_activation(torch.einsum("bei,eio->beo", h, weight) + bias, self.act)
        return h
