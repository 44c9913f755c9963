"""fold-star: STAR's W * W_p[d] and b + b_p[d] merged once per domain for inference;
fold-partitioned-norm: the partitioned normalisation's running statistics and affines merged
into one scale and shift per domain."""

from __future__ import annotations

from dataclasses import dataclass

from dwc.ir.graph import Graph
from dwc.layers.star.op import (
    FoldedPartitionedNorm,
    FoldedStarLinear,
    PartitionedNorm,
    StarLinear,
)
from dwc.passes.base import Pass, PassResult, Rewriter, mark_ops, register


@register
@dataclass(frozen=True)
class FoldStar(Pass):
    name = "fold-star"
    after = "fold-overparam"
    stage = "inference"
    summary = "STAR's shared * per-domain weights merged per domain (a gather, no product)"

    def run(self, graph: Graph) -> PassResult:
        rw = Rewriter(graph)
        for op in graph.ops:
            if isinstance(op, StarLinear):
                rw.replace(op, FoldedStarLinear, in_features=op.in_features,
                           out_features=op.out_features, domains=op.domains)
        return rw.result()


@register
@dataclass(frozen=True)
class FoldPartitionedNorm(Pass):
    name = "fold-partitioned-norm"
    after = "fold-star"
    stage = "inference"
    summary = "a partitioned norm's running statistics and affines as one scale and shift per domain"

    def run(self, graph: Graph) -> PassResult:
        return mark_ops(graph, PartitionedNorm, FoldedPartitionedNorm)
