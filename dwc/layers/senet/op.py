"""The SENet op: its costs and invariants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dwc.ir.ops import Op
from dwc.ir.types import FieldsType


@dataclass(frozen=True, kw_only=True)
class SeNet(Op):
    """FiBiNET's SENet field gating on F fields of equal width d (self-conditioned).

    Squeeze z = mean over each field, excite a = act2(W2 relu(W1 z)), W1: F x r_F, W2: r_F x F,
    no biases; re-weight each field by its a. `reduced` is r_F = max(1, F // reduction).
    """

    kind: ClassVar[str] = "senet"
    fields: int
    reduced: int
    act: str = "relu"

    def params(self):
        return 2 * self.fields * self.reduced

    def flops(self):
        return 2 * self.type.width + 4 * self.fields * self.reduced

    def attrs(self):
        return {"fields": self.fields, "reduced": self.reduced, "act": self.act}

    def verify(self, ins, producers):
        x = ins[0]
        if not isinstance(x, FieldsType) or len(x.dims) != self.fields or len(set(x.dims)) != 1:
            self.invalid(f"input {x} is not {self.fields} fields of equal width")
        if self.type != x:
            self.invalid(f"type {self.type} != its input's {x}")
        if not 1 <= self.reduced <= self.fields:
            self.invalid(f"bottleneck {self.reduced} not in 1..{self.fields}")
        if self.act not in ("relu", "sigmoid"):
            self.invalid(f"unknown excitation {self.act!r}")
