"""APG's rewrites (docs/models.md, "APG") as passes on any dynamic linear (registered by
dwc/passes/__init__.py, which imports this module).

    lowrank         W(z) (N x M generated)  ->  U(z) S(z) V(z) at rank K (NK + K^2 + KM generated)
    share           U, V generated          ->  U, V static and shared; only S (K^2) generated
    overparam       static U, V             ->  U = U_l U_r, V = V_l V_r through width P (training)
    decompose       W = U S V formed        ->  ((x U) S) V applied in turn (same function)
    fold-overparam  U_l U_r, V_l V_r        ->  U, V multiplied out once (inference)

The first three change the model's parameters: they carry out a spec's `apg(...)` knobs (and run
at every optimisation level); with an explicit option (`lowrank{rank=8}`, `overparam{width=64}`)
they also apply to dynamic layers the spec did not mark.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.layers.apg.op import FoldedLowRankDynamicLinear, LowRankDynamicLinear
from dwc.passes.base import Pass, PassResult, Rewriter, register, rewrite_ops
from dwc.passes.slots import relayout


def _suffix(slot: ir.Slot) -> str:
    return slot.name[1:]


@register
@dataclass(frozen=True)
class LowRank(Pass):
    """Factor every marked full-rank dynamic linear as W = U S V with all three generated.

    Options: rank: also factor unmarked dynamic layers at this rank (clipped to min(N, M)).
    """

    name = "lowrank"
    stage = "model"
    summary = "W(z) -> U(z) S(z) V(z) at rank K"
    rank: int = 0

    def run(self, graph: Graph) -> PassResult:
        changed = False
        for op in list(graph.ops):
            if not isinstance(op, ir.DynamicLinear) or (op.apg is None and not self.rank):
                continue
            n, m = op.in_features, op.out_features
            k = op.apg.rank if op.apg else min(self.rank, n, m)
            sfx = _suffix(op.weight)
            graph, slots = relayout(graph, op.inputs[1], {op.weight.name: [
                (f"u{sfx}", (n, k)), (f"s{sfx}", (k, k)), (f"v{sfx}", (k, m))]})
            rw = Rewriter(graph)
            current = rw.op(op.result)
            rw.replace(current, LowRankDynamicLinear, in_features=n, out_features=m, rank=k,
                       core=slots[f"s{sfx}"], share=False, overparam=None, decompose=False,
                       u=slots[f"u{sfx}"], v=slots[f"v{sfx}"], bias=op.bias,
                       bias_slot=current.bias_slot, apg=op.apg, layer=op.layer)
            graph = rw.current()
            changed = True
        return PassResult(graph, changed)


@register
@dataclass(frozen=True)
class Share(Pass):
    """Make U and V static parameters shared by all samples; only S stays generated."""

    name = "share"
    stage = "model"
    summary = "U(z), V(z) -> static shared U, V; only the K x K core generated"

    def run(self, graph: Graph) -> PassResult:
        changed = False
        for op in list(graph.ops):
            if not isinstance(op, LowRankDynamicLinear) or op.share:
                continue
            if op.apg is not None and not op.apg.share:
                continue
            graph, _ = relayout(graph, op.inputs[1], {op.u.name: [], op.v.name: []})
            rw = Rewriter(graph)
            rw.update(rw.op(op.result), share=True, u=None, v=None,
                      module=op.module or rw.fresh_module(f"{op.binding}_fc{op.layer}"))
            graph = rw.current()
            changed = True
        return PassResult(graph, changed)


@register
@dataclass(frozen=True)
class Overparam(Pass):
    """Train the shared factors as products of wider ones: U = U_l U_r, V = V_l V_r (width P).

    Options: width: also over-parameterise unmarked layers to this width.
    """

    name = "overparam"
    stage = "model"
    summary = "static U, V -> U_l U_r, V_l V_r through width P (training capacity)"
    width: int = 0

    def run(self, graph: Graph) -> PassResult:
        def rewrite(op: ir.Op) -> ir.Op | None:
            if not isinstance(op, LowRankDynamicLinear) or not op.share or op.overparam:
                return None
            p = op.apg.overparam if op.apg else (self.width or None)
            return replace(op, overparam=p) if p else None

        return rewrite_ops(graph, rewrite)


@register
@dataclass(frozen=True)
class Decompose(Pass):
    """Apply ((x U) S) V in turn instead of forming the per-sample N x M matrix U S V."""

    name = "decompose"
    stage = "train"
    summary = "never materialise the per-sample N x M weight"

    def run(self, graph: Graph) -> PassResult:
        def rewrite(op: ir.Op) -> ir.Op | None:
            wanted = isinstance(op, LowRankDynamicLinear) and not op.decompose and (
                op.apg is None or op.apg.decompose)
            return replace(op, decompose=True) if wanted else None

        return rewrite_ops(graph, rewrite)


@register
@dataclass(frozen=True)
class FoldOverparam(Pass):
    """Multiply the over-parameterised factors out once: inference keeps N K + K M parameters."""

    name = "fold-overparam"
    stage = "inference"
    summary = "U_l U_r, V_l V_r -> U, V (inference)"

    def run(self, graph: Graph) -> PassResult:
        def rewrite(op: ir.Op) -> ir.Op | None:
            if isinstance(op, LowRankDynamicLinear) and op.overparam:
                return op.retyped(FoldedLowRankDynamicLinear, overparam=None)
            return None

        return rewrite_ops(graph, rewrite)
