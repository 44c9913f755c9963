"""M3oE's experts at run time: inlined into every generated model.py with an m3oe layer."""

import torch
from torch import nn
from torch.nn import functional as F

from dwc.backends.torch.helpers.static import _dwc_is_static


class _DwcNormExperts(nn.Module):
    """`count` expert MLPs on one input, each layer Linear -> LayerNorm -> ReLU (M3oE's shared,
    domain and task experts in one module): B x in -> B x count x out. Initialised as PyTorch's
    nn.Linear and nn.LayerNorm are, expert by expert.

    Each expert runs as its own chain of fused kernels (addmm, layer norm with its scale and
    shift, ReLU in place on the norm's fresh output): measured on the CPU, that is twice as fast
    as one wide GEMM for every expert's first layer followed by batched matmuls, whose norms'
    per-expert scale and shift cannot be fused.
    """

    def __init__(self, count: int, dims: list[int]) -> None:
        super().__init__()
        self.count, self.widths = count, dims[1:]  # static sizes (a traced shape is a tensor)
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
        # eager: each stacked parameter split into its experts' views once, one unbind per
        # tensor rather than a select per expert and layer (at B = 1 every dispatch counts);
        # traced, the selects stay (an exported unbind is a split and a squeeze per expert)
        static = _dwc_is_static()
        layers = [
            (width, *(tensor if static else tensor.unbind(0) for tensor in tensors))
            for width, *tensors in zip(
                self.widths,
                self.weights,
                self.biases,
                self.norm_weights,
                self.norm_biases,
                strict=True,
            )
        ]
        experts = []
        for k in range(self.count):
            h = x
            for width, weight, bias, norm_weight, norm_bias in layers:
                h = torch.addmm(bias[k], h, weight[k])
                h = F.layer_norm(h, [width], norm_weight[k], norm_bias[k]).relu_()
            experts.append(h)
        return torch.stack(experts, dim=1)
