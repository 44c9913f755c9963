"""M3oE's experts at run time: inlined into every generated model.py with an m3oe layer."""

import torch
from torch import nn
from torch.nn import functional as F


class _DwcNormExperts(nn.Module):
    """`count` expert MLPs on one input, each layer Linear -> LayerNorm -> ReLU (M3oE's shared,
    domain and task experts in one module), as batched matmuls: B x in -> B x count x out.
    Initialised as PyTorch's nn.Linear and nn.LayerNorm are, expert by expert."""

    def __init__(self, count: int, dims: list[int]) -> None:
        super().__init__()
        self.widths = dims[1:]  # static widths for the norms (a traced shape is a tensor)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.norm_weights = nn.ParameterList()
        self.norm_biases = nn.ParameterList()
        for n_in, n_out in zip(dims, dims[1:], strict=False):
            bound = n_in**-0.5
            self.weights.append(
                nn.Parameter(torch.empty(count, n_in, n_out).uniform_(-bound, bound))
            )
            self.biases.append(nn.Parameter(torch.empty(count, n_out).uniform_(-bound, bound)))
            self.norm_weights.append(nn.Parameter(torch.ones(count, n_out)))
            self.norm_biases.append(nn.Parameter(torch.zeros(count, n_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        layers = zip(self.widths, self.weights, self.biases, self.norm_weights, self.norm_biases,
                     strict=True)
        for i, (width, weight, bias, norm_weight, norm_bias) in enumerate(layers):
            # the first layer reads the shared B x in input, the others each expert's own rows
            equation = "bi,eio->beo" if i == 0 else "bei,eio->beo"
            h = torch.einsum(equation, h, weight) + bias
            h = torch.relu(F.layer_norm(h, [width]) * norm_weight + norm_bias)
        return h
