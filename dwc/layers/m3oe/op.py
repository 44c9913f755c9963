"""M3oE's ops: the STAR slot, the layer-normed expert MLPs, the two-level fusion (and its folded
form with the fusion weights as constants) and the per-(domain, task) towers.

A `m3oe(...)` call lowers to these plus core ops (the shared-representation MLPs, the skip path's
sum, the stop-gradient the gates read, the gates as an IndexedLinear):

    s  = M3oESlot(x, d)                         x (W_s * W_d) + (b_s + b_d)
    h  = LNMLP(s) + LNMLP(x)                    Linear, Norm(layer), Activation(relu), Add
    e  = NormExperts(h)                         E shared, D domain, T task expert LNMLPs
    g  = IndexedLinear(stop_gradient(h), d)     the sample's domain's T gates over E experts
    f  = M3oEFusion(e, g, d)                    f_t for the sample's domain, every task t
    y  = M3oETowers(f, d)                       the sample's domain's T towers: B x T logits
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dwc.ir.ops import CellWeights, Op
from dwc.ir.types import ExpertsType, IdsType, VecType
from dwc.layers.experts.op import verify_expert_stack
from dwc.layers.star.op import StarLinear


@dataclass(frozen=True, kw_only=True)
class M3oESlot(StarLinear):
    """M3oE's STAR slot, `s = x (W_s * W_d) + (b_s + b_d)`: STAR's star-topology linear with
    M3oE's initialisation (W_s and every W_d xavier-uniform, both biases zero). Being a
    StarLinear, fold-star merges it per domain for inference like any star layer."""

    kind: ClassVar[str] = "m3oe_slot"


@dataclass(frozen=True, kw_only=True)
class NormExperts(Op):
    """`count` expert MLPs on one input, each layer Linear -> LayerNorm -> ReLU: B x count x H.

    inputs = (h,). M3oE's experts: E shared, then D domain, then T task experts, in one op.
    """

    kind: ClassVar[str] = "norm_experts"
    in_features: int
    widths: tuple[int, ...]

    @property
    def count(self) -> int:
        return self.type.count  # type: ignore[union-attr]

    def _layers(self):
        dims = (self.in_features, *self.widths)
        return list(zip(dims, dims[1:], strict=False))

    def params(self):
        return self.count * sum(a * b + 3 * b for a, b in self._layers())

    def flops(self):
        return self.count * sum(2 * a * b + 5 * b for a, b in self._layers())  # + norm, relu

    def attrs(self):
        return {"count": self.count, "widths": list(self.widths)}

    def verify(self, ins, producers):
        verify_expert_stack(self, ins)


@dataclass(frozen=True, kw_only=True)
class M3oEFusion(Op):
    """M3oE's two-level fusion at the sample's own domain d, for every task t:

        f_t = sum_k g_{t,k} S_k + sigmoid(a_D) u_d + sigmoid(a_T) v_t
        u_d = sigmoid(b_D) D_d + (1 - sigmoid(b_D)) / (D - 1) * sum_{j != d} D_j
        v_t = sigmoid(b_T) T_t + (1 - sigmoid(b_T)) / (T - 1) * sum_{j != t} T_j

    with g_t = softmax over the E shared experts of the gate logits. inputs = (experts: the
    E + D + T experts, gate logits: B x T*E of the sample's domain, domain ids); result
    B x T x H. Owns the four scalars a_D, a_T, b_D, b_T (a one-domain or one-task sum over
    the others is empty: zero).
    """

    kind: ClassVar[str] = "m3oe_fusion"
    shared: int
    domains: int
    tasks: int

    @property
    def width(self) -> int:
        return self.type.dim  # type: ignore[union-attr]

    def params(self):
        return 4

    def flops(self):
        # the gate-weighted sum of the shared experts per task, then one multiply-add per
        # domain / task expert element (own and summed terms)
        h = self.width
        return 2 * self.tasks * self.shared * h + 2 * (self.domains + 2 * self.tasks) * h

    def attrs(self):
        return {"shared": self.shared, "domains": self.domains, "tasks": self.tasks}

    def conditioning_inputs(self):
        return (self.inputs[2],)

    def verify(self, ins, producers):
        experts, gates, ids = ins
        count = self.shared + self.domains + self.tasks
        if experts != ExpertsType(count, self.width):
            self.invalid(f"experts {experts} != experts[{count}; {self.width}]")
        if self.type != ExpertsType(self.tasks, self.width):
            self.invalid(f"type {self.type} != experts[{self.tasks}; {self.width}]")
        if gates.width != self.tasks * self.shared:
            self.invalid(f"gate logits {gates} != vec[{self.tasks * self.shared}]")
        if ids != IdsType(self.domains):
            self.invalid(f"domain ids {ids} != ids[{self.domains}]")


@dataclass(frozen=True, kw_only=True)
class FoldedM3oEFusion(M3oEFusion):
    """fold-m3oe's form of an M3oEFusion: the same function with sigmoid(a), sigmoid(b) and
    the 1 / (D - 1), 1 / (T - 1) factors folded into four constants that `for_inference()`
    computes once from the training scalars (the op type is the fold's marker)."""

    kind: ClassVar[str] = "folded_m3oe_fusion"

    def params(self):
        return 0


@dataclass(frozen=True, kw_only=True)
class M3oETowers(Op):
    """M3oE's towers, one per (domain, task): `y_t = Linear(H -> 1)(relu(LN(Linear(H -> H)(f_t))))`
    with the sample's own domain's T towers. inputs = (fused: B x T x H, domain ids); result
    B x T logits. Run per domain present (grouped, gathered in small batches, or all domains
    side by side when traced), never all D x T towers with a mask."""

    kind: ClassVar[str] = "m3oe_towers"
    domains: int
    tasks: int
    width: int

    def params(self):
        h = self.width
        return self.domains * self.tasks * (h * h + 3 * h + h + 1)

    def flops(self):
        h = self.width
        return self.tasks * (2 * h * h + 5 * h + 2 * h)  # first layer, norm and relu, logit

    def attrs(self):
        return {"domains": self.domains, "tasks": self.tasks, "width": self.width}

    def conditioning_inputs(self):
        return (self.inputs[1],)

    def allocates(self):
        return True

    def cell_weights(self):
        # a sample gathers its domain's T first layers; grouping copies the input once and the
        # logits twice (both layers run on the grouped rows)
        h, t = self.width, self.tasks
        return CellWeights(gathered=t * h * h, copied=t * h + 2 * t)

    def verify(self, ins, producers):
        fused, ids = ins
        if fused != ExpertsType(self.tasks, self.width):
            self.invalid(f"input {fused} != experts[{self.tasks}; {self.width}]")
        if self.type != VecType(self.tasks):
            self.invalid(f"type {self.type} != vec[{self.tasks}]")
        if ids != IdsType(self.domains):
            self.invalid(f"domain ids {ids} != ids[{self.domains}]")

