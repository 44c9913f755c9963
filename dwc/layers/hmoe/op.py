"""HMoE's op: the scenario part over MMoE's shared experts (gates, towers, fusion, heads), its
costs and invariants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dwc.ir.ops import CellWeights, Op
from dwc.ir.types import ExpertsType, IdsType, VecType

FUSIONS = ("label", "tower")
"""`label`: the heads' logits are fused (the paper's label space); `tower`: the towers' outputs,
before the last linear (the public ports)."""


def mlp_params(dims: tuple[int, ...]) -> int:
    """Weights and biases of an MLP with these widths (input first)."""
    return sum(a * b + b for a, b in zip(dims, dims[1:], strict=False))


def mlp_flops(dims: tuple[int, ...]) -> int:
    return sum(2 * a * b for a, b in zip(dims, dims[1:], strict=False))


@dataclass(frozen=True, kw_only=True)
class Hmoe(Op):
    """HMoE over E shared experts and T scenarios (docs/models.md, 'HMoE'): a sample of
    scenario d gets the fused logit of head d.

    inputs = (x, scenario ids, experts). For every scenario t: a gate g_t = softmax(MLP(x) G_t)
    mixes the experts, tower t maps the mixture to h_t, head t is l_t = h_t w_t + beta_t. Only
    the sample's own scenario d computes its fusion weights a_d = softmax(MLP(x) A_d) (T of
    them) and its output: `label` fusion sum_j a_dj l_j, `tower` fusion
    (sum_j a_dj h_j) w_d + beta_d. In training every other scenario's l_j (h_j) enters through
    a stop-gradient, so the loss of a sample reaches only its own scenario's path. The gates and
    fusion nets have no bias on their last layer. `heads` is T, `experts` E.
    """

    kind: ClassVar[str] = "hmoe"
    in_features: int
    experts: int
    expert_dim: int
    heads: int
    gate: tuple[int, ...]
    tower: tuple[int, ...]
    fusion: tuple[int, ...]
    fuse: str = "label"
    act: str = "relu"

    @property
    def tower_dim(self) -> int:
        return self.tower[-1]

    def params(self):
        d, e, t = self.in_features, self.experts, self.heads
        gates = mlp_params((d, *self.gate)) + self.gate[-1] * e
        towers = mlp_params((self.expert_dim, *self.tower))
        fusion = mlp_params((d, *self.fusion)) + self.fusion[-1] * t
        heads = self.tower_dim + 1
        return t * (gates + towers + fusion + heads)

    def flops(self):
        d, e, t, h = self.in_features, self.experts, self.heads, self.tower_dim
        every = t * (mlp_flops((d, *self.gate)) + 2 * self.gate[-1] * e  # all T gates
                     + 2 * e * self.expert_dim  # mixing the experts
                     + mlp_flops((self.expert_dim, *self.tower)))  # all T towers
        own = mlp_flops((d, *self.fusion)) + 2 * self.fusion[-1] * t  # the sample's fusion net
        if self.fuse == "label":
            return every + own + 2 * t * h + 2 * t  # every head's logit, their weighted sum
        return every + own + 2 * t * h + 2 * h  # the towers' weighted sum, the own head

    def activations(self):
        # every scenario's gate, mixture, tower and logit; the own fusion net; the output
        per_head = sum(self.gate) + self.experts + self.expert_dim + sum(self.tower) + 1
        return self.heads * per_head + sum(self.fusion) + self.heads + 1

    def attrs(self):
        return {"heads": self.heads, "experts": self.experts, "gate": list(self.gate),
                "tower": list(self.tower), "fusion": list(self.fusion), "fuse": self.fuse,
                "act": self.act}

    def conditioning_inputs(self):
        return (self.inputs[1],)

    def cell_weights(self):
        # the fusion nets run per scenario present (one matmul each, or gathered weights)
        dims = (self.in_features, *self.fusion, self.heads)
        pairs = list(zip(dims, dims[1:], strict=False))
        return CellWeights(gathered=max(a * b for a, b in pairs),
                           copied=sum(a + 2 * b for a, b in pairs))

    def verify(self, ins, producers):
        x, ids, experts = ins
        if x.width != self.in_features:
            self.invalid(f"input width {x.width} != in_features {self.in_features}")
        if ids != IdsType(self.heads):
            self.invalid(f"scenario ids {ids} != ids[{self.heads}]")
        if experts != ExpertsType(self.experts, self.expert_dim):
            self.invalid(f"experts {experts} != experts[{self.experts}; {self.expert_dim}]")
        if self.type != VecType(1):
            self.invalid(f"type {self.type} != vec[1] (the own head's logit)")
        if self.fuse not in FUSIONS:
            self.invalid(f"fuse {self.fuse!r} is not one of {', '.join(FUSIONS)}")
        if not (self.gate and self.tower and self.fusion):
            self.invalid("gates, towers and fusion nets need at least one hidden layer")
