"""fuse-gates: the first layers of Gate NUs that read the same condition run as one GEMM.

PPNet and PEPNet put a Gate NU on every layer of every task tower, all reading the same prior z:
each gate computes `relu(W1 z + b1)` from the same z, then its own `W2 h + b2`. This pass stacks
the gates' W1 into one GateHidden op (one B x d x sum(hidden) GEMM, z read once, one call instead
of one per gate) and points every gate at its columns of the result. The gates keep their module
names, so their second layers still load from the training state_dict; the stacked first layer is
computed from the training gates by `for_inference()` (the GateHidden fold, torch.py).

An inference pass, like fuse-generators: in training, the stacked weight would have to be
concatenated from the gates' parameters on every step, and its gradient split back.
"""

from __future__ import annotations

from dataclasses import dataclass

from dwc.ir.graph import Graph
from dwc.ir.types import VecType
from dwc.layers.gate.op import Gate, GateHidden
from dwc.passes.base import Pass, PassResult, Rewriter, register


@register
@dataclass(frozen=True)
class FuseGates(Pass):
    name = "fuse-gates"
    after = "fold-scenario-layers"
    stage = "inference"
    summary = "Gate NUs on the same condition -> one GEMM for their hidden layers"

    def run(self, graph: Graph) -> PassResult:
        groups: dict[str, list[Gate]] = {}
        for op in graph.ops:
            if isinstance(op, Gate) and op.hidden_offset is None:
                groups.setdefault(op.inputs[1], []).append(op)
        groups = {z: gates for z, gates in groups.items() if len(gates) > 1}
        if not groups:
            return PassResult(graph, False)
        rw = Rewriter(graph)
        for z, gates in groups.items():
            width = sum(g.hidden for g in gates)
            first = gates[0]
            # z is defined before its first gate: the stacked GEMM goes there
            stacked = GateHidden(
                result=f"{z}.gate_hidden", inputs=(z,), type=VecType(width),
                in_features=first.in_features, parts=tuple((g.module, g.hidden) for g in gates),
                module=rw.fresh_module(f"{z.replace('.', '_')}_gate_hidden"),
                span=first.span, binding=first.binding)
            rw.insert_before(first, stacked)
            offset = 0
            for gate in gates:
                rw.update(gate, inputs=(gate.inputs[0], stacked.result), hidden_offset=offset)
                offset += gate.hidden
        return rw.result()
