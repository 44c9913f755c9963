"""fold-scenario-layers: a dynamic linear whose generated weights come from a scenario table has
one weight set per cell; compute each cell's weights once and run every cell's samples as one
dense matmul.

After fold-scenario-table, such a layer still gathers each sample's generated numbers (B x
generated per layer) and applies them sample by sample (a batched matmul over 1-row matrices,
memory-bound). Here it becomes a ScenarioLinear: APG layers with shared U and V keep U
(`y = (x U) W[c] + b[c]` with W[c] = S[c] V, rank x out per cell: fewer FLOPs than U S V), other
dynamic layers get the cell's full in x out matrix (U S V multiplied out for unshared low-rank
layers). The table itself goes once no other op reads it (the `dce` after the folds).

Applies when the cell's weights stay small (cells x per-cell floats <= max_floats).
"""

from __future__ import annotations

from dataclasses import dataclass

from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.passes.apg import fresh_module
from dwc.passes.base import Pass, PassResult, register
from dwc.passes.slots import replace_op


@register
@dataclass(frozen=True)
class FoldScenarioLayers(Pass):
    name = "fold-scenario-layers"
    stage = "inference"
    summary = "dynamic layers fed by a scenario table -> per-cell weights, one matmul per cell"
    max_floats: int = 16_777_216

    def run(self, graph: Graph) -> PassResult:
        changed = False
        for op in list(graph.ops):
            if not isinstance(op, ir.DynamicLinear | ir.LowRankDynamicLinear):
                continue
            table = graph.producers()[op.inputs[1]]
            if not isinstance(table, ir.ScenarioTable):
                continue
            shared = isinstance(op, ir.LowRankDynamicLinear) and op.share
            rank = op.rank if shared else None
            inner = rank or op.in_features
            if table.cells * (inner + 1) * op.out_features > self.max_floats:
                continue
            module = op.module or fresh_module(graph, f"{op.binding}_fc{op.layer}")
            graph = replace_op(graph, op, ir.ScenarioLinear(
                result=op.result, inputs=(op.inputs[0], table.inputs[0]), type=op.type,
                span=op.span, module=module, binding=op.binding, derived="scenario_linear",
                in_features=op.in_features, out_features=op.out_features, cells=table.cells,
                rank=rank, generator=table.generator, folded=op))
            changed = True
        return PassResult(graph, changed)
