"""M3oE's experts at run time: inlined into every generated model.py with an m3oe layer."""

import torch
from torch import nn
from torch.nn import functional as F


class _DwcNormExperts(nn.Module):
    """`count` expert MLPs on one input, each layer Linear -> LayerNorm -> ReLU (M3oE's shared,
    domain and task experts in one module): B x in -> B x count x out. Initialised as PyTorch's
    nn.Linear and nn.LayerNorm are, expert by expert.

    The first layers of all experts run as one GEMM on the shared input; the deeper ones as one
    batched matmul over the experts (count x B x width, no copies between layers). The norm's
    per-expert scale and shift are one fused multiply-add, the ReLU in place on its fresh output.
    """

    def __init__(self, count: int, dims: list[int]) -> None:
        super().__init__()
        self.count, self.dims = count, dims  # static sizes (a traced shape is a tensor)
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
        layers = zip(self.dims[1:], self.weights, self.biases, self.norm_weights,
                     self.norm_biases, strict=True)
        for i, (width, weight, bias, norm_weight, norm_bias) in enumerate(layers):
            if i == 0:  # every expert's first layer in one GEMM: B x count x width
                flat = weight.permute(1, 0, 2).reshape(self.dims[0], self.count * width)
                h = torch.addmm(bias.reshape(-1), x, flat).view(-1, self.count, width)
            else:  # count x B x width
                h = torch.baddbmm(bias.unsqueeze(1), h, weight)
                norm_weight, norm_bias = norm_weight.unsqueeze(1), norm_bias.unsqueeze(1)
            h = torch.addcmul(norm_bias, F.layer_norm(h, [width]), norm_weight).relu_()
            if i == 0:
                h = h.transpose(0, 1)  # a view: the next layers batch over the experts
        return h.transpose(0, 1)  # B x count x width
