"""fold-m3oe: M3oE's fusion weights sigmoid(a), sigmoid(b) become constants for inference.

M3oE's STAR slot is a StarLinear, so fold-star (which runs just before) already merges its
W_s * W_d and b_s + b_d per domain; the gates and towers run only the sample's own domain's in
training too. What is left is the fusion: its four trained scalars pass through a sigmoid and
the 1 / (D - 1), 1 / (T - 1) factors on every forward; at inference they are four constants.
"""

from __future__ import annotations

from dataclasses import dataclass

from dwc.ir.graph import Graph
from dwc.layers.m3oe.op import FoldedM3oEFusion, M3oEFusion
from dwc.passes.base import Pass, PassResult, Rewriter, register


@register
@dataclass(frozen=True)
class FoldM3oE(Pass):
    name = "fold-m3oe"
    after = "fold-star"
    stage = "inference"
    summary = "M3oE's fusion weights sigmoid(a), sigmoid(b) -> constants"

    def run(self, graph: Graph) -> PassResult:
        rw = Rewriter(graph)
        for op in graph.ops:
            if type(op) is M3oEFusion:
                rw.replace(op, FoldedM3oEFusion, shared=op.shared, domains=op.domains,
                           tasks=op.tasks)
        return rw.result()
