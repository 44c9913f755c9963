"""fold-lhuc: an LHUC layer's gates 2 sigmoid(r) computed once per condition id for inference
(registered by dwc/passes/__init__.py, which imports this module)."""

from __future__ import annotations

from dataclasses import dataclass

from dwc.ir.graph import Graph
from dwc.layers.lhuc.op import FoldedLhuc, Lhuc
from dwc.passes.base import Pass, PassResult, mark_ops, register


@register
@dataclass(frozen=True)
class FoldLhuc(Pass):
    name = "fold-lhuc"
    stage = "inference"
    summary = "LHUC's gates 2 sigmoid(r) tabulated per condition id (inference)"
    after = "fold-scenario-gates"

    def run(self, graph: Graph) -> PassResult:
        return mark_ops(graph, Lhuc, FoldedLhuc)
