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


@register
@dataclass(frozen=True)
class FoldBatchNorm(Pass):
    name = "fold-batch-norm"
    stage = "inference"
    summary = "eval batch norms before or after a linear layer -> that layer's weights"

    def run(self, graph: Graph) -> PassResult:
        producers, readers, outputs = graph.producers(), graph.readers(), graph.output_values()

        def only_reader(value: str) -> ir.Op | None:
            """The one op reading `value`, if nothing else (no other op, no output) does."""
            ops = readers.get(value, [])
            return ops[0] if len(ops) == 1 and value not in outputs else None

        rw = Rewriter(graph)
        alias: dict[str, str] = {}
        folded: set[str] = set()  # layers already holding a norm: at most one each
        for norm in graph.ops:
            if not (isinstance(norm, ir.Norm) and norm.mode == "batch"):
                continue
            before = producers.get(norm.inputs[0])
            after = only_reader(norm.result)
            if type(before) is ir.Linear and only_reader(before.result) is norm:
                linear, norm_first = before, False
            elif type(after) is ir.Linear:
                linear, norm_first = after, True
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

