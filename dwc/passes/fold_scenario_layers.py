"""fold-scenario-layers: a dynamic linear whose generated weights come from a scenario table has
one weight set per cell; compute each cell's weights once and run each cell's samples together.

After fold-scenario-table, such a layer still gathers each sample's whole table row (every
generated number, B x row width) and applies it sample by sample. Here it becomes a
ScenarioLinear that reads only its own per-cell weights: APG layers with shared U and V keep U, V
and one K x K core per cell (`y = ((x U) S[c]) V + b[c]`, for small batches: each sample gathers
its core) and each cell's core times V (`y = (x U) W[c] + b[c]`, W[c] = S[c] V, for batches
grouped by cell: one GEMM per cell, its bias included, no K x K stage) unless C x K x M exceeds
max_cell_floats. Other dynamic layers hold the cell's full in x out matrix (U S V multiplied out
for unshared low-rank layers). M2M's meta attention becomes a ScenarioMetaAttention: each cell's
meta-unit layers, the task representation's share of the first layer folded into a per-cell
bias. The generated code runs one dense matmul per cell present when the batch has many rows per
cell, and gathers each sample's cell weights when it has few. The table itself goes once no
other op reads it (the `dce` after the folds).

Applies when the folded layer stays small (its parameters, per-cell weights included, at most
max_floats).
"""

from __future__ import annotations

from dataclasses import dataclass

from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.passes.base import Pass, PassResult, Rewriter, register


@register
@dataclass(frozen=True)
class FoldScenarioLayers(Pass):
    name = "fold-scenario-layers"
    stage = "inference"
    summary = "dynamic layers fed by a scenario table -> per-cell weights, one matmul per cell"
    max_floats: int = 16_777_216
    max_cell_floats: int = 2_097_152

    def run(self, graph: Graph) -> PassResult:
        rw = Rewriter(graph)
        producers = graph.producers()  # tables are never replaced here, so this stays valid
        for op in graph.ops:
            table = producers[op.inputs[1]] if len(op.inputs) > 1 else None
            if not isinstance(table, ir.ScenarioTable):
                continue
            unit = op.per_cell_form(table)  # a layer kind's own (M2M's meta attention)
            if unit is not None:
                if unit.params() <= self.max_floats:
                    rw.replace(op, unit)
                continue
            weights = op.dynamic_weights()  # a dynamic linear layer's, else None
            if weights is None:
                continue
            inputs = (op.inputs[0], table.inputs[0])
            rank = weights.rank  # shared static factors (APG): kept, with a core per cell
            # A full-rank dynamic linear's own module is only its static bias (`h_bias0`): the
            # per-cell layer holding weights and biases is named after the layer instead.
            folded = ir.ScenarioLinear(
                result=op.result, inputs=inputs, type=op.type, span=op.span, binding=op.binding,
                module=weights.module or rw.fresh_module(f"{op.binding}_fc{op.layer}"),
                in_features=op.in_features,
                out_features=op.out_features, cells=table.cells, rank=rank,
                generator=table.generator, folded=op,
                v_shared=rank is not None
                and table.cells * rank * op.out_features > self.max_cell_floats)
            if folded.params() <= self.max_floats:
                rw.replace(op, folded)
        return rw.result()
