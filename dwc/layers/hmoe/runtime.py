"""HMoE's scenario part at run time: inlined into every generated model.py with an hmoe layer
(with the experts, per-domain, activation and softmax helpers it imports)."""

import torch
from torch import nn

from dwc.backends.torch.helpers.activation import _dwc_activation
from dwc.backends.torch.helpers.per_domain import _dwc_per_domain_linear, _DwcRows
from dwc.backends.torch.helpers.softmax import _dwc_softmax_experts
from dwc.layers.experts.runtime import _DwcExperts


def _dwc_uniform(fan_in: int, *shape: int) -> nn.Parameter:
    """A parameter initialised like nn.Linear's weights and biases: uniform in
    +-1/sqrt(fan_in)."""
    bound = fan_in**-0.5
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


class _DwcHmoe(nn.Module):
    """HMoE over the shared experts' outputs: the logit of each sample's own scenario head.

    For every scenario t: g_t = softmax(MLP_t(x) G_t) mixes the experts, h_t = Tower_t(mix),
    and head t's logit is l_t = h_t w_t + beta_t. A sample of scenario d computes only its own
    fusion weights a_d = softmax(MLP_d(x) A_d) (one per scenario: one matmul per scenario
    present in the batch, or gathered weights for small batches) and returns, by `fuse`:
    `label`, sum_j a_dj l_j; `tower`, (sum_j a_dj h_j) w_d + beta_d. While autograd records,
    the other scenarios' l_j (`label`) or h_j (`tower`) enter through a stop-gradient, so a
    sample's loss trains only its own scenario's gate, tower, fusion net and head (and the
    experts through its own gate). G_t and A_d have no bias; beta starts at 0.
    """

    def __init__(
        self,
        n_in: int,
        experts: int,
        expert_dim: int,
        heads: int,
        gate: list[int],
        tower: list[int],
        fusion: list[int],
        fuse: str,
        act: str,
    ) -> None:
        super().__init__()
        self.fuse = fuse
        self.act = act
        self.gates = _DwcExperts(heads, [n_in, *gate], act)  # every gate's hidden layers on x
        self.gate_out = _dwc_uniform(gate[-1], heads, gate[-1], experts)
        towers = list(zip([expert_dim, *tower], tower, strict=False))
        self.tower_weights = nn.ParameterList(_dwc_uniform(a, heads, a, b) for a, b in towers)
        self.tower_biases = nn.ParameterList(_dwc_uniform(a, heads, b) for a, b in towers)
        fusions = list(zip([n_in, *fusion], fusion, strict=False))
        self.fusion_weights = nn.ParameterList(_dwc_uniform(a, heads, a, b) for a, b in fusions)
        self.fusion_biases = nn.ParameterList(_dwc_uniform(a, heads, b) for a, b in fusions)
        self.fusion_out = _dwc_uniform(fusion[-1], heads, fusion[-1], heads)
        self.head_weight = _dwc_uniform(tower[-1], heads, tower[-1])
        self.head_bias = nn.Parameter(torch.zeros(heads))

    def forward(
        self,
        x: torch.Tensor,
        domain: torch.Tensor,
        rows: _DwcRows | None,
        experts: torch.Tensor,
    ) -> torch.Tensor:
        batch, heads, count = x.shape[0], self.gate_out.shape[0], self.gate_out.shape[2]
        # per-scenario matmuls as bmm over T x B x in views (einsum's dispatch costs 2-3x at B = 1)
        scores = torch.bmm(self.gates(x).transpose(0, 1), self.gate_out).transpose(0, 1)
        mixing = _dwc_softmax_experts(scores.reshape(batch * heads, count))
        h = torch.bmm(mixing.reshape(batch, heads, count), experts)  # B x T x expert width
        for weight, bias in zip(self.tower_weights, self.tower_biases, strict=True):
            h = torch.baddbmm(bias.unsqueeze(1), h.transpose(0, 1), weight).transpose(0, 1)
            h = _dwc_activation(h, self.act)
        a = x
        for weight, bias in zip(self.fusion_weights, self.fusion_biases, strict=True):
            a = _dwc_activation(_dwc_per_domain_linear(a, domain, rows, weight, bias), self.act)
        a = _dwc_softmax_experts(_dwc_per_domain_linear(a, domain, rows, self.fusion_out, None))
        own = None
        if torch.is_grad_enabled():  # stop the other scenarios' gradients (identity otherwise)
            own = torch.arange(heads, device=domain.device) == domain.unsqueeze(1)
        if self.fuse == "label":
            logits = (h * self.head_weight).sum(dim=2) + self.head_bias
            if own is not None:
                logits = torch.where(own, logits, logits.detach())
            return (a * logits).sum(dim=1, keepdim=True)
        if own is not None:
            h = torch.where(own.unsqueeze(2), h, h.detach())
        fused = torch.bmm(a.unsqueeze(1), h).squeeze(1)
        head = (fused * self.head_weight.index_select(0, domain)).sum(dim=1, keepdim=True)
        return head + self.head_bias.index_select(0, domain).unsqueeze(1)
