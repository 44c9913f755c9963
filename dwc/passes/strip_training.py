"""Remove what only training needs: stop-gradients and dropout are identities at inference."""

from __future__ import annotations

from dataclasses import dataclass, replace

from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.passes.base import Pass, PassResult, register


def forward_uses(graph: Graph, removed: set[str], alias: dict[str, str]) -> Graph:
    """Drop `removed` ops and point every use of them (and of outputs) at their alias."""

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    ops = [replace(op, inputs=tuple(resolve(i) for i in op.inputs))
           for op in graph.ops if op.result not in removed]
    outputs = tuple(replace(o, value=resolve(o.value), logit=resolve(o.logit))
                    for o in graph.outputs)
    return replace(graph.with_ops(ops), outputs=outputs)


@register
@dataclass(frozen=True)
class StripTraining(Pass):
    name = "strip-training"
    stage = "inference"
    summary = "drop stop_gradient and dropout (identities at inference)"

    def run(self, graph: Graph) -> PassResult:
        alias = {op.result: op.inputs[0] for op in graph.ops
                 if isinstance(op, ir.StopGradient | ir.Dropout)}
        if not alias:
            return PassResult(graph, False)
        return PassResult(forward_uses(graph, set(alias), alias), True)
