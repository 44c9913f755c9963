"""fold-scenario-table: a generator whose condition is a function of the scenario cell alone is
precomputed for every cell into a table; inference gathers a row instead of running it.

Other ops that say which of their inputs is such a condition (`Op.table_condition`; a Gate
NU of PPNet or `gate` by scenario features only) are functions of the cell too: each becomes its
per-cell form (`Op.as_table`; a gate's values gamma * sigmoid(...) in a per-cell table, a
ScenarioGate), so the network computing them does not run at serving time.

Applies when every input the condition reads is a feature of the `scenarios a * b` declaration and
the table stays small (cells <= max_cells and cells x outputs <= max_floats).
"""

from __future__ import annotations

from dataclasses import dataclass

from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.ir.types import IdsType
from dwc.passes.base import Pass, PassResult, Rewriter, register


@register
@dataclass(frozen=True)
class FoldScenarioTable(Pass):
    name = "fold-scenario-table"
    stage = "inference"
    summary = "scenario-only generators and gates -> per-cell lookup tables (a gather)"
    max_cells: int = 4096
    max_floats: int = 16_777_216

    def run(self, graph: Graph) -> PassResult:
        if not graph.scenario or graph.scenario_cells > self.max_cells:
            return PassResult(graph, False)
        allowed = set(graph.scenario)

        def condition(op: ir.Op) -> str | None:
            if isinstance(op, ir.Generator | ir.FusedGenerator):
                return op.inputs[0]
            return op.table_condition()

        targets = [op for op in graph.ops if condition(op) is not None
                   and graph.scenario_cells * op.type.width <= self.max_floats
                   and graph.source_features(condition(op)) <= allowed]
        if not targets:
            return PassResult(graph, False)
        rw = Rewriter(graph)
        ops = rw.ops
        index = next((op for op in ops if isinstance(op, ir.ScenarioIndex)), None)
        if index is None:
            index = self._scenario_index(graph, rw, targets[0])
        elif ops.index(index) > ops.index(targets[0]):
            # The cell id is computed later (for a STAR or LHUC layer): move it, and the id
            # inputs it reads (inputs have no inputs of their own), ahead of the first table.
            moved = [op for op in ops if op.result in index.inputs and ops.index(op) >
                     ops.index(targets[0])] + [index]
            for op in moved:
                rw.erase(op)
            rw.insert_before(targets[0], *moved)
        for gen in targets:
            if not isinstance(gen, ir.Generator | ir.FusedGenerator):  # it says its own form
                rw.replace(gen, gen.as_table(index.result, graph.scenario_cells,
                                             rw.fresh_module(f"{gen.module}_table")))
                continue
            hint = gen.module if isinstance(gen, ir.Generator) else f"{gen.binding}_generators"
            rw.replace(gen, ir.ScenarioTable, inputs=(index.result,),
                       module=rw.fresh_module(f"{hint}_table"), cells=graph.scenario_cells,
                       generator=gen.result, slots=gen.slots)
        return rw.result()

    @staticmethod
    def _scenario_index(graph: Graph, rw: Rewriter, before: ir.Op) -> ir.ScenarioIndex:
        """Insert the scenario cell id (and any id inputs it needs) ahead of `before`."""
        names, new = [], []
        for feature in graph.scenario:
            found = next((op for op in rw.ops if isinstance(op, ir.Input)
                          and op.feature == feature), None)
            if found is None:
                spec = next(s for s in graph.inputs if s.name == feature)
                found = ir.Input(result=f"{feature}.ids", type=IdsType(spec.vocab),
                                 feature=feature, span=spec.span, binding=feature)
                new.append(found)
            names.append(found.result)
        radices = tuple(next(s.vocab for s in graph.inputs if s.name == f) for f in graph.scenario)
        index = ir.ScenarioIndex(result="scenario.cell", inputs=tuple(names),
                                 type=IdsType(graph.scenario_cells), radices=radices,
                                 span=graph.scenario_span, binding="scenario")
        rw.insert_before(before, *new, index)
        return index
