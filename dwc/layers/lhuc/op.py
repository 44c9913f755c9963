"""The LHUC op: its costs and invariants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dwc.ir.ops import Op
from dwc.ir.types import IdsType


@dataclass(frozen=True, kw_only=True)
class Lhuc(Op):
    """LHUC: `x * 2 sigmoid(r[id])`, one free vector r per condition id, initialised to 0 (gate 1).

    inputs = (x, ids); `conditions` is the number of ids.
    """

    kind: ClassVar[str] = "lhuc"
    conditions: int

    def params(self):
        return self.conditions * self.type.width

    def flops(self):
        return 2 * self.type.width

    def attrs(self):
        return {"conditions": self.conditions}

    def conditioning_inputs(self):
        return (self.inputs[1],)

    def verify(self, ins, producers):
        if ins[0].width != self.type.width:
            self.invalid(f"input width {ins[0].width} != its width {self.type.width}")
        if ins[1] != IdsType(self.conditions):
            self.invalid(f"ids {ins[1]} != ids[{self.conditions}]")


@dataclass(frozen=True, kw_only=True)
class FoldedLhuc(Lhuc):
    """fold-lhuc's form of an Lhuc op (inference): the gates `2 sigmoid(r)` of every condition id
    computed once by `for_inference()` (the op type is the fold's marker), so a sample's gate is a
    gather."""

    def flops(self):
        return self.type.width

    def attrs(self):
        return {**super().attrs(), "gates": "folded"}
