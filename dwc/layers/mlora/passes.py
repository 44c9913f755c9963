"""fold-mlora: MLoRA's adapters merged into per-domain weights for inference, W + A[d] B[d] and
b + c[d], where the merged weights fit a memory ceiling.

The choice per layer (n -> m, D domains, rank r): the merged form holds D (n m + m) numbers and
serves each sample with one product (2 n m FLOPs, one GEMM per domain present); the factored
form holds n m + m + D (r (n + m) + m) and needs three (2 (n m + r (n + m)) FLOPs: the shared
GEMM, then x A[d] and B[d] per domain present). Merging is exact (dropout is off at inference)
and never slower, but costs memory D times the shared layer's: a layer is merged when that holds
no more numbers than its factors, or when the merged weights take at most `ceiling_mib` MiB
(float32). Beyond the ceiling the per-domain weights no longer stay in cache across a batch that
touches many domains, and the shared GEMM plus the small adapter products win.
"""

from __future__ import annotations

from dataclasses import dataclass

from dwc.ir.graph import Graph
from dwc.layers.mlora.op import MergedMloraLinear, MloraLinear
from dwc.passes.base import Pass, PassResult, Rewriter, register


def merges(op: MloraLinear, ceiling_mib: int) -> bool:
    """Whether fold-mlora merges `op` (the module's docstring gives the rule)."""
    merged = op.merged_params()
    return merged <= op.params() or 4 * merged <= ceiling_mib * 2**20


@register
@dataclass(frozen=True)
class FoldMlora(Pass):
    name = "fold-mlora"
    stage = "inference"
    summary = "MLoRA's W + A[d] B[d] merged per domain where the merged weights fit the ceiling"
    after = "fold-star"

    ceiling_mib: int = 4
    """The most MiB of float32 merged weights a layer may take (beyond: kept factored)."""

    def run(self, graph: Graph) -> PassResult:
        rw = Rewriter(graph)
        for op in graph.ops:
            if isinstance(op, MloraLinear) and merges(op, self.ceiling_mib):
                rw.replace(op, MergedMloraLinear, in_features=op.in_features,
                           out_features=op.out_features, domains=op.domains)
        return rw.result()
