"""fold-hamur-hypernet: HAMUR's hyper-network with each batch norm merged into the linear before
it, for inference; fold-hamur-domain-norm: an adapter's domain norm as one scale and shift per
domain (registered by dwc/passes/__init__.py, which imports this module).

In eval mode a batch norm is an affine map per feature, BN(y) = y s + (beta - mean s) with
s = gamma / sqrt(var + eps), so Linear -> BN -> ReLU is Linear' -> ReLU with W' = s W and
b' = (b - mean) s + beta. Runs after fold-scenario-table: a hyper-network reading scenario
features only is a per-cell table by then (computed in eval mode, so its norms are folded there).
"""

from __future__ import annotations

from dataclasses import dataclass

from dwc.ir.graph import Graph
from dwc.layers.hamur.op import (
    FoldedHamurAdapter,
    FoldedHamurHyperNetwork,
    HamurAdapter,
    HamurHyperNetwork,
)
from dwc.passes.base import Pass, PassResult, mark_ops, register


@register
@dataclass(frozen=True)
class FoldHamurHypernet(Pass):
    name = "fold-hamur-hypernet"
    stage = "inference"
    summary = "HAMUR's hyper-network: batch norms merged into its linears (inference)"
    after = "fold-scenario-table"

    def run(self, graph: Graph) -> PassResult:
        return mark_ops(graph, HamurHyperNetwork, FoldedHamurHyperNetwork)


@register
@dataclass(frozen=True)
class FoldHamurDomainNorm(Pass):
    name = "fold-hamur-domain-norm"
    stage = "inference"
    summary = "HAMUR's domain norms as one scale and shift per domain (inference)"
    after = "fold-scenario-layers"

    def run(self, graph: Graph) -> PassResult:
        # after fold-scenario-layers: an adapter it made per-cell folds its norm there already
        return mark_ops(graph, HamurAdapter, FoldedHamurAdapter)
