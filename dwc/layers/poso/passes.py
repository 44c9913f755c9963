"""fold-scenario-gates: a per-cell gate table that feeds a per-cell linear layer on the same cell
index is multiplied into that layer's weights, `(x * G[c]) W_c + b_c = x (diag(G[c]) W_c) + b_c`.

After fold-scenario-table, a gate whose condition reads only the scenario features (POSO's
discrete personalisation code, a PPNet gate on scenario priors) is a gather and a multiply,
`x * G[c]` (a ScenarioGate). The product with the next layer's weights is exact for any
activation before the gate, but the fold pays only where the cost model says it does: when the
next layer already holds one weight set per cell on the same index (`linear(h, 1, per =
scenario)`, a folded STAR layer), it removes the table (cells x n parameters) and n multiplies per
sample and adds nothing. A shared next layer keeps the table: folding would give it a weight set
per cell (cells x n x m parameters instead of cells x n) and per-cell execution (grouping copies,
or every cell's product in an exported graph) to save n multiplies.

Runs after strip-training (a dropout between the gate and the layer is gone by then).
"""

from __future__ import annotations

from dataclasses import dataclass

from dwc.cost import Cost
from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.layers.gate.op import ScenarioGate
from dwc.layers.poso.op import GatedIndexedLinear
from dwc.passes.base import Pass, PassResult, Rewriter, register


def _per_cell_cost(ops: list[ir.Op]) -> tuple[int, int, int, int]:
    """What the cost model weighs: parameters, FLOPs per sample, and the per-cell execution the
    ops need (weight floats gathered and words copied per sample, `Op.cell_weights`)."""
    cost = Cost()
    gathered = copied = 0
    for op in ops:
        cost.add(op)
        cells = op.cell_weights()
        if cells is not None:
            gathered, copied = gathered + cells.gathered, copied + cells.copied
        elif isinstance(op, ScenarioGate):
            gathered += op.type.width  # its row of the table
    return cost.params, cost.flops_per_sample, gathered, copied


def cheaper(before: list[ir.Op], after: ir.Op) -> bool:
    """Whether `after` costs no more than `before` in every respect the cost model weighs, and
    less in parameters or FLOPs."""
    old, new = _per_cell_cost(before), _per_cell_cost([after])
    return all(n <= o for n, o in zip(new, old, strict=True)) and new[:2] < old[:2]


@register
@dataclass(frozen=True)
class FoldScenarioGates(Pass):
    name = "fold-scenario-gates"
    stage = "inference"
    summary = "per-cell gate tables multiplied into the per-cell layer they feed (diag(G[c]) W_c)"
    after = "strip-training"

    def run(self, graph: Graph) -> PassResult:
        readers, outputs = graph.readers(), graph.output_values()
        rw = Rewriter(graph)
        for gate in graph.ops:
            if not isinstance(gate, ScenarioGate) or gate.result in outputs:
                continue
            users = readers.get(gate.result, [])
            if len(users) != 1 or not isinstance(users[0], ir.IndexedLinear):
                continue
            layer = users[0]
            x, cell = gate.inputs
            if layer.inputs != (gate.result, cell) or layer.domains != gate.cells:
                continue
            folded = GatedIndexedLinear(
                result=layer.result, inputs=(x, cell), type=layer.type, span=layer.span,
                module=layer.module, binding=layer.binding, in_features=layer.in_features,
                out_features=layer.out_features, domains=layer.domains, gate=gate, layer=layer)
            if cheaper([gate, layer], folded):
                rw.replace(layer, folded)
                rw.erase(gate)
        return rw.result()
