"""The IR verifier: invariants every graph satisfies after lowering and after every pass.

A violation is a compiler bug, not a user error, so it raises `VerificationError` (reported by the
CLI as DW900 with the offending op). One function per invariant, in the torch.fx `Graph.lint` style.
"""

from __future__ import annotations

from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.ir.types import FieldsType, IdsType, TableType, VecType


class VerificationError(Exception):
    """The IR broke an invariant (a dwc bug)."""


def _fail(op: ir.Op, message: str) -> None:
    raise VerificationError(f"%{op.result} ({op.kind}): {message}")


def _unique_and_ordered(graph: Graph) -> None:
    seen: dict[str, ir.Op] = {}
    for op in graph.ops:
        if op.result in seen:
            _fail(op, "value defined twice")
        for name in op.inputs:
            if name not in seen:
                _fail(op, f"uses %{name} before it is defined (or it does not exist)")
        seen[op.result] = op


def _modules_unique(graph: Graph) -> None:
    owners: dict[str, ir.Op] = {}
    for op in graph.ops:
        names = [p.module for p in op.parts] if isinstance(op, ir.FusedGenerator) else []
        if op.params() and op.module is None and not names:
            _fail(op, "owns parameters but has no module name")
        if op.module is not None:
            names.append(op.module)
        for name in names:
            if name in owners:
                _fail(op, f"module name {name!r} already used by %{owners[name].result}")
            owners[name] = op


def _types(graph: Graph) -> None:
    producers = graph.producers()

    def kind_of(name: str):
        return producers[name].type

    for op in graph.ops:
        ins = [kind_of(n) for n in op.inputs]
        if isinstance(op, ir.Linear | ir.DynamicLinear):
            if ins[0].width != op.in_features:
                _fail(op, f"input width {ins[0].width} != in_features {op.in_features}")
            if op.type != VecType(op.out_features):
                _fail(op, f"type {op.type} != vec[{op.out_features}]")
        if isinstance(op, ir.DynamicLinear | ir.LowRankDynamicLinear | ir.MetaAttention):
            gen = producers[op.inputs[1]]
            if not isinstance(gen, _GENERATED):
                _fail(op, "weights must come from a generator")
            slots = {s.name: s for s in gen.slots}
            for slot in _slots_read(op):
                if slots.get(slot.name) != slot:
                    _fail(op, f"slot {slot.name} does not match generator %{gen.result}")
        if isinstance(op, ir.LowRankDynamicLinear):
            n, m, k = op.in_features, op.out_features, op.rank
            if not 1 <= k <= min(n, m):
                _fail(op, f"rank {k} outside 1..min({n}, {m})")
            if op.core.shape != (k, k):
                _fail(op, f"core slot shape {op.core.shape} != ({k}, {k})")
            if op.share != (op.u is None and op.v is None):
                _fail(op, "shared factors are static (no u/v slots); unshared ones are generated")
            if not op.share and (op.u.shape != (n, k) or op.v.shape != (k, m)):
                _fail(op, "u/v slot shapes do not match (in, rank) and (rank, out)")
            if op.overparam and not op.share:
                _fail(op, "over-parameterisation needs shared static factors")
        if isinstance(op, ir.DynamicLinear) and op.weight.shape != (op.in_features,
                                                                     op.out_features):
            _fail(op, f"weight slot shape {op.weight.shape} != ({op.in_features}, "
                  f"{op.out_features})")
        if isinstance(op, ir.DynamicLinear | ir.LowRankDynamicLinear):
            if (op.bias == "generated") != (op.bias_slot is not None):
                _fail(op, "generated bias needs a bias slot (and only then)")
            if op.bias_slot is not None and op.bias_slot.shape != (op.out_features,):
                _fail(op, "bias slot shape does not match the output width")
        if isinstance(op, ir.Generator | ir.FusedGenerator | ir.ScenarioTable):
            if isinstance(op, ir.Generator) and ins[0].width != op.in_features:
                _fail(op, f"condition width {ins[0].width} != in_features {op.in_features}")
            if isinstance(op, ir.FusedGenerator) and any(
                    p.in_features != ins[0].width for p in op.parts):
                _fail(op, "every fused part must read the condition's width")
            end = 0
            for slot in op.slots:
                if slot.offset != end:
                    _fail(op, f"slot {slot.name} starts at {slot.offset}, expected {end}")
                end = slot.end
            if end != op.type.width:
                _fail(op, f"slots cover {end} numbers, generator emits {op.type.width}")
        if isinstance(op, ir.ScenarioLinear):
            if ins[0].width != op.in_features or op.type != VecType(op.out_features):
                _fail(op, f"expects vec[{op.in_features}] -> vec[{op.out_features}]")
            if ins[1] != IdsType(op.cells):
                _fail(op, f"cell index {ins[1]} != ids[{op.cells}]")
            f = op.folded
            if (f.in_features, f.out_features) != (op.in_features, op.out_features):
                _fail(op, "the folded layer's shape differs")
            if op.rank is not None and not (isinstance(f, ir.LowRankDynamicLinear) and f.share
                                             and f.rank == op.rank):
                _fail(op, "a shared U needs a shared-factor low-rank layer of the same rank")
            if op.v_shared and op.rank is None:
                _fail(op, "a shared V needs a rank")
        if isinstance(op, ir.Gate) and op.hidden_offset is not None:
            stacked = producers[op.inputs[1]]
            if not isinstance(stacked, ir.GateHidden):
                _fail(op, "a fused gate reads its hidden units from a gate_hidden op")
            offset = 0
            for module, hidden in stacked.parts:
                if module == op.module:
                    break
                offset += hidden
            else:
                _fail(op, f"not among the parts of %{stacked.result}")
            if (offset, hidden) != (op.hidden_offset, op.hidden):
                _fail(op, f"hidden columns {op.hidden_offset}+{op.hidden} != its part's "
                      f"{offset}+{hidden}")
        if isinstance(op, ir.GateHidden):
            if ins[0].width != op.in_features:
                _fail(op, f"condition width {ins[0].width} != in_features {op.in_features}")
            if op.type.width != sum(h for _, h in op.parts):
                _fail(op, "width != the sum of its parts' hidden widths")
        if isinstance(op, ir.ScenarioGate):
            if ins[1] != IdsType(op.cells) or ins[0].width != op.type.width:
                _fail(op, f"expects (vec[{op.type.width}], ids[{op.cells}])")
            if op.type != op.folded.type:
                _fail(op, "the folded gate's type differs")
        if isinstance(op, ir.ScenarioMetaAttention):
            if ins[1] != IdsType(op.cells):
                _fail(op, f"cell index {ins[1]} != ids[{op.cells}]")
            if op.type != op.folded.type:
                _fail(op, "the folded meta attention's type differs")
        if isinstance(op, ir.Lookup | ir.SeqPool):
            if not isinstance(ins[0], TableType) or not isinstance(ins[1], IdsType):
                _fail(op, "expects (table, ids)")
            if op.type != VecType(ins[0].dim):
                _fail(op, f"type {op.type} != vec[{ins[0].dim}]")
        if isinstance(op, ir.Concat):
            total = sum(t.width for t in ins)
            if op.type.width != total or not isinstance(op.type, VecType | FieldsType):
                _fail(op, f"width {op.type.width} != sum of inputs {total}")
        if isinstance(op, ir.Add):
            if any(t.width != op.type.width for t in ins):
                _fail(op, "inputs of unequal width")
        if isinstance(op, ir.Activation | ir.Norm | ir.Dropout | ir.Head | ir.Normalize):
            if len(ins) != 1 or ins[0].width != op.type.width:
                _fail(op, "must preserve the width of its single input")


_GENERATED = (ir.Generator, ir.FusedGenerator, ir.ScenarioTable)


def _slots_read(op: ir.Op) -> list[ir.Slot]:
    if isinstance(op, ir.DynamicLinear):
        return [s for s in (op.weight, op.bias_slot) if s is not None]
    if isinstance(op, ir.LowRankDynamicLinear):
        return [s for s in (op.core, op.u, op.v, op.bias_slot) if s is not None]
    return list(op.slots)


def _outputs(graph: Graph) -> None:
    producers = graph.producers()
    if not graph.outputs:
        raise VerificationError("graph has no outputs")
    for out in graph.outputs:
        if out.value not in producers or out.logit not in producers:
            raise VerificationError(f"output {out.name!r} refers to a missing value")


CHECKS = (_unique_and_ordered, _modules_unique, _types, _outputs)


def verify(graph: Graph) -> None:
    """Check every invariant; raises VerificationError on the first violation."""
    for check in CHECKS:
        check(graph)
