"""fuse-gates: the first layers of Gate NUs that read the same condition run as one GEMM.

PPNet and PEPNet put a Gate NU on every layer of every task tower, all reading the same prior z:
each gate computes `relu(W1 z + b1)` from the same z, then its own `W2 h + b2`. This pass stacks
the gates' W1 into one GateHidden op (one B x d x sum(hidden) GEMM, z read once, one call instead
of one per gate) and points every gate at its columns of the result. The gates keep their module
names, so their second layers still load from the training state_dict; the stacked first layer is
computed from the training gates by `for_inference()` (derived "gate_hidden").

An inference pass, like fuse-generators: in training, the stacked weight would have to be
concatenated from the gates' parameters on every step, and its gradient split back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.ir.types import VecType
from dwc.passes.apg import fresh_module
from dwc.passes.base import Pass, PassResult, register


@register
@dataclass(frozen=True)
class FuseGates(Pass):
    name = "fuse-gates"
    stage = "inference"
    summary = "Gate NUs on the same condition -> one GEMM for their hidden layers"

    def run(self, graph: Graph) -> PassResult:
        groups: dict[str, list[ir.Gate]] = {}
        for op in graph.ops:
            if isinstance(op, ir.Gate) and op.hidden_offset is None:
                groups.setdefault(op.inputs[1], []).append(op)
        groups = {z: gates for z, gates in groups.items() if len(gates) > 1}
        if not groups:
            return PassResult(graph, False)
        hidden_of: dict[str, ir.GateHidden] = {}  # first gate's result -> the op placed before it
        fused: dict[str, ir.Gate] = {}
        for z, gates in groups.items():
            width = sum(g.hidden for g in gates)
            first = gates[0]
            stacked = ir.GateHidden(
                result=f"{z}.gate_hidden", inputs=(z,), type=VecType(width),
                in_features=first.in_features, parts=tuple((g.module, g.hidden) for g in gates),
                module=fresh_module(graph, f"{z.replace('.', '_')}_gate_hidden"),
                span=first.span, binding=first.binding,
                derived="gate_hidden")
            hidden_of[first.result] = stacked
            offset = 0
            for gate in gates:
                fused[gate.result] = replace(gate, inputs=(gate.inputs[0], stacked.result),
                                             hidden_offset=offset)
                offset += gate.hidden
        ops: list[ir.Op] = []
        for op in graph.ops:
            if op.result in hidden_of:  # z is defined before its first gate: place the GEMM there
                ops.append(hidden_of[op.result])
            ops.append(fused.get(op.result, op))
        return PassResult(graph.with_ops(ops), True)
