"""Dead-code elimination: drop ops whose values no output needs (inputs stay in the signature)."""

from __future__ import annotations

from dataclasses import dataclass

from dwc.ir.graph import Graph
from dwc.passes.base import Pass, PassResult, register


@register
@dataclass(frozen=True)
class DeadCodeElimination(Pass):
    name = "dce"
    stage = "train"
    summary = "remove ops no output depends on"

    def run(self, graph: Graph) -> PassResult:
        live = graph.output_values()
        kept = []
        for op in reversed(graph.ops):
            if op.result in live:
                kept.append(op)
                live.update(op.inputs)
        kept.reverse()
        return PassResult(graph.with_ops(kept), len(kept) != len(graph.ops))
