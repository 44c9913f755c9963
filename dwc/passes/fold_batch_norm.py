"""fold-batch-norm: an eval-mode batch norm next to a linear layer is folded into that layer.

At inference a batch norm is a fixed affine map per column, y = x s + t with s = gamma /
sqrt(running_var + eps) and t = beta - running_mean * s, so

    norm(linear(x)) = x (W diag(s)) + (b s + t)        (AdaSparse's and `mlp`'s Linear -> BN)
    linear(norm(x)) = x (diag(s) W) + (t W + b)        (CAN's input BN, a BN ahead of a head)

are each one linear layer (`ir.NormFoldedLinear`) whose weights for_inference() computes from
the trained layer and norm. One pass over every activation less, in every backend.

Applies to a batch norm (not layer norm, not the per-domain norms) whose neighbour is a plain
`linear` and that is the neighbour's only use (after) or whose only use is the layer (before);
a value something else also reads keeps its norm.
"""

from __future__ import annotations

from dataclasses import dataclass

from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.passes.base import Pass, PassResult, Rewriter, register
from dwc.passes.strip_training import forward_uses


def _uses(graph: Graph) -> dict[str, int]:
    """How many op inputs and outputs read each value."""
    counts: dict[str, int] = {}
    for op in graph.ops:
        for name in op.inputs:
            counts[name] = counts.get(name, 0) + 1
    for out in graph.outputs:
        for name in {out.value, out.logit}:
            counts[name] = counts.get(name, 0) + 1
    return counts


@register
@dataclass(frozen=True)
class FoldBatchNorm(Pass):
    name = "fold-batch-norm"
    stage = "inference"
    summary = "eval batch norms before or after a linear layer -> that layer's weights"

    def run(self, graph: Graph) -> PassResult:
        uses = _uses(graph)
        producers = graph.producers()
        readers: dict[str, list[ir.Op]] = {}
        for op in graph.ops:
            for name in op.inputs:
                readers.setdefault(name, []).append(op)
        rw = Rewriter(graph)
        alias: dict[str, str] = {}
        folded: set[str] = set()  # layers already holding a norm: at most one each
        for norm in graph.ops:
            if not (isinstance(norm, ir.Norm) and norm.mode == "batch"):
                continue
            before = producers.get(norm.inputs[0])
            after = readers.get(norm.result, [])
            if type(before) is ir.Linear and uses.get(before.result) == 1:
                linear, norm_first = before, False
            elif uses.get(norm.result) == 1 and len(after) == 1 and type(after[0]) is ir.Linear:
                linear, norm_first = after[0], True
            else:
                continue
            if linear.result in folded:
                continue
            folded.add(linear.result)
            rw.replace(linear, self._folded(rw, linear, norm, norm_first))
            rw.erase(norm)
            if not norm_first:
                alias[norm.result] = linear.result
        if not rw.changed:
            return PassResult(graph, False)
        # every read of an after-norm's value now reads the folded layer's
        return PassResult(forward_uses(rw.current(), set(), alias), True)

    @staticmethod
    def _folded(rw: Rewriter, linear: ir.Linear, norm: ir.Norm,
                norm_first: bool) -> ir.NormFoldedLinear:
        assert linear.module is not None and norm.module is not None
        return ir.NormFoldedLinear(
            result=linear.result, inputs=norm.inputs if norm_first else linear.inputs,
            type=linear.type, span=linear.span, binding=linear.binding,
            module=rw.fresh_module(f"{linear.module}_folded"),
            in_features=linear.in_features, out_features=linear.out_features, bias=True,
            linear=linear.module, norm=norm.module, norm_first=norm_first,
            linear_bias=linear.bias)

