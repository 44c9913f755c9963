"""fuse-generators: linear generators that read the same condition run as one GEMM.

Each generator keeps its parameters in the training class (and their names, so state_dicts
still load); the inference class holds them stacked in one linear layer that `for_inference()`
fills once, and the consumers read shifted slices of its output. Only linear generators (no
hidden layer) fuse; a generator with hidden layers stays on its own.

It is an inference pass: in training, the fused output's gradient has to be concatenated back
from every consumer, which costs more than the GEMMs it saves (measured in benchmarks/peers.py:
the concatenation was 17 % of an APG training step).
"""

from __future__ import annotations

from dataclasses import dataclass

from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.ir.types import VecType
from dwc.passes.base import Pass, PassResult, Rewriter, register


@register
@dataclass(frozen=True)
class FuseGenerators(Pass):
    name = "fuse-generators"
    stage = "inference"
    summary = "linear generators on the same condition -> one batched GEMM"

    def run(self, graph: Graph) -> PassResult:
        groups: dict[str, list[ir.Generator]] = {}
        for op in graph.ops:
            if isinstance(op, ir.Generator) and not op.hidden:
                groups.setdefault(op.inputs[0], []).append(op)
        groups = {z: gens for z, gens in groups.items() if len(gens) > 1}
        if not groups:
            return PassResult(graph, False)
        rw = Rewriter(graph)
        moved: dict[tuple[str, str], ir.Slot] = {}  # (old generator, slot) -> fused slot
        fused_of: dict[str, str] = {}
        fused_ops: dict[str, ir.FusedGenerator] = {}
        for z, gens in groups.items():
            parts, slots, offset = [], [], 0
            result = f"{z}.generated"
            for gen in gens:
                shifted = []
                for s in gen.slots:
                    new = ir.Slot(f"{gen.module}.{s.name}", offset + s.offset, s.shape)
                    moved[(gen.result, s.name)] = new
                    shifted.append(new)
                slots += shifted
                parts.append(ir.GeneratorPart(gen.module, gen.in_features, gen.type.width,
                                              gen.init, tuple(ir.Slot(s.name, s.offset, s.shape)
                                                              for s in gen.slots)))
                offset += gen.type.width
                fused_of[gen.result] = result
            fused_ops[gens[0].result] = ir.FusedGenerator(
                result=result, inputs=(z,), type=VecType(offset), parts=tuple(parts),
                slots=tuple(slots), module=rw.fresh_module(f"{z.replace('.', '_')}_generator"),
                span=gens[0].span, binding=gens[0].binding)
        for op in graph.ops:
            if op.result in fused_ops:
                rw.replace(op, fused_ops[op.result])
            elif op.result in fused_of:
                rw.erase(op)
            elif len(op.inputs) > 1 and op.inputs[1] in fused_of:
                old = op.inputs[1]
                rw.replace(op, op.with_slots({s.name: moved[(old, s.name)]
                                              for s in op.slots_read()}),
                           inputs=(op.inputs[0], fused_of[old], *op.inputs[2:]))
        return rw.result()
