"""Helpers for passes that change what a generator emits: re-laying out its slots and updating
every op that reads them."""

from __future__ import annotations

from dataclasses import replace

from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.ir.types import VecType


def relayout(graph: Graph, generator: str, new_slots: dict[str, list[tuple[str, tuple[int, ...]]]]
             ) -> tuple[Graph, dict[str, ir.Slot]]:
    """Replace slots of `generator` (by name) with new (name, shape) slots, packing offsets.

    Slots not mentioned keep their place in order. Returns the new graph (generator re-typed)
    and the final slot of every name, for updating the consumers.
    """
    gen = graph.op(generator)
    assert gen.generates() and not isinstance(gen, ir.ScenarioTable), gen
    laid: list[ir.Slot] = []
    offset = 0
    for slot in gen.slots:
        for name, shape in new_slots.get(slot.name, [(slot.name, slot.shape)]):
            laid.append(ir.Slot(name, offset, shape))
            offset = laid[-1].end
    by_name = {s.name: s for s in laid}
    ops = [replace(op, slots=tuple(laid), type=VecType(offset)) if op.result == generator
           else _reslot(op, generator, by_name) for op in graph.ops]
    return graph.with_ops(ops), by_name


def _reslot(op: ir.Op, generator: str, by_name: dict[str, ir.Slot]) -> ir.Op:
    """Point `op`'s slot references at the re-laid-out slots (matched by name)."""
    if len(op.inputs) < 2 or op.inputs[1] != generator:
        return op
    return op.with_slots(by_name)
