"""The gate ops: PEPNet's Gate NU (`gate`, and every layer of a `ppnet` tower), and the two forms
inference folds make of it (the type is the marker): GateHidden (fuse-gates) and ScenarioGate
(fold-scenario-table)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dwc.ir.ops import Op
from dwc.ir.types import FieldsType, IdsType, VecType


@dataclass(frozen=True, kw_only=True)
class Gate(Op):
    """PEPNet's Gate NU: `x * gamma * sigmoid(W2 relu(W1 z + b1) + b2)`.

    inputs = (x, z). `granularity` is "element" (one gate per coordinate) or "field" (one per
    field of `fields`, broadcast over the field's width).
    """

    kind: ClassVar[str] = "gate"
    in_features: int
    hidden: int
    gamma: float = 2.0
    granularity: str = "element"
    fields: tuple[int, ...] = ()
    hidden_offset: int | None = None
    """Set by fuse-gates: inputs[1] is then a GateHidden's output (relu(W1 z + b1) of every gate
    on the same z, side by side) and this gate reads its `hidden` columns from here on."""

    @property
    def gates(self) -> int:
        return len(self.fields) if self.granularity == "field" else self.type.width

    def params(self):
        d, h, g = self.in_features, self.hidden, self.gates
        first = 0 if self.hidden_offset is not None else d * h + h
        return first + h * g + g

    def flops(self):
        d, h, g = self.in_features, self.hidden, self.gates
        first = 0 if self.hidden_offset is not None else 2 * d * h
        return first + 2 * h * g + self.type.width

    def attrs(self):
        a: dict[str, object] = {"hidden": self.hidden, "gamma": self.gamma,
                                "granularity": self.granularity}
        if self.granularity == "field":
            a["fields"] = list(self.fields)
        if self.hidden_offset is not None:
            a["hidden_offset"] = self.hidden_offset
        return a

    def verify(self, ins, producers):
        x, z = ins
        if x.width != self.type.width:
            self.invalid(f"gated width {x.width} != its width {self.type.width}")
        if self.granularity == "field":
            if x != FieldsType(self.fields) or self.type != x:
                self.invalid(f"field gates need fields{list(self.fields)}, got {x}")
        elif self.granularity != "element" or not isinstance(self.type, VecType):
            self.invalid(f"element gates make a vec, not {self.type} ({self.granularity})")
        if self.hidden < 1:
            self.invalid(f"hidden width {self.hidden} < 1")
        if self.hidden_offset is None:
            if z.width != self.in_features:
                self.invalid(f"condition width {z.width} != in_features {self.in_features}")
            return
        stacked = producers[self.inputs[1]]
        if not isinstance(stacked, GateHidden):
            self.invalid("a fused gate reads its hidden units from a gate_hidden op")
        offset = 0
        for module, hidden in stacked.parts:
            if module == self.module:
                break
            offset += hidden
        else:
            self.invalid(f"not among the parts of %{stacked.result}")
        if (offset, hidden) != (self.hidden_offset, self.hidden):
            self.invalid(f"hidden columns {self.hidden_offset}+{self.hidden} != its part's "
                         f"{offset}+{hidden}")

    def conditioning_inputs(self):
        return (self.inputs[1],)

    def table_condition(self):
        # a fused gate's hidden units are another op's: it no longer owns its whole network
        return self.inputs[1] if self.hidden_offset is None else None

    def as_table(self, cell, cells, module):
        return ScenarioGate(result=self.result, inputs=(self.inputs[0], cell), type=self.type,
                            span=self.span, binding=self.binding, module=module, cells=cells,
                            generator=self.inputs[1], folded=self)


@dataclass(frozen=True, kw_only=True)
class GateHidden(Op):
    """The first layers of several Gate NUs on the same condition, as one GEMM (fuse-gates):
    `relu(z W1^T + b1)` with every gate's W1 stacked; output the gates' hidden units side by
    side, in `parts` order (gate module, hidden width). Only fuse-gates makes it:
    `for_inference()` concatenates its parameters from the training gates' first layers."""

    kind: ClassVar[str] = "gate_hidden"
    in_features: int
    parts: tuple[tuple[str, int], ...]

    def params(self):
        return (self.in_features + 1) * self.type.width

    def flops(self):
        return 2 * self.in_features * self.type.width

    def attrs(self):
        return {"parts": [f"{module}:{hidden}" for module, hidden in self.parts]}

    def verify(self, ins, producers):
        if ins[0].width != self.in_features:
            self.invalid(f"condition width {ins[0].width} != in_features {self.in_features}")
        if self.type.width != sum(h for _, h in self.parts):
            self.invalid("width != the sum of its parts' hidden widths")


@dataclass(frozen=True, kw_only=True)
class ScenarioGate(Op):
    """Inference form of a Gate NU whose condition depends on the scenario cell only
    (fold-scenario-table): `x * G[c]`, the gate values gamma * sigmoid(...) of every cell
    computed once (per element, field gates expanded). inputs = (x, scenario cell index);
    `generator` is the condition value the table is computed from, `folded` the training gate.
    """

    kind: ClassVar[str] = "scenario_gate"
    cells: int
    generator: str
    folded: Gate

    def params(self):
        return self.cells * self.type.width

    def flops(self):
        return self.type.width

    def attrs(self):
        return {"cells": self.cells, "condition": self.generator, "folded": self.folded.kind}

    def verify(self, ins, producers):
        if ins[1] != IdsType(self.cells) or ins[0].width != self.type.width:
            self.invalid(f"expects (vec[{self.type.width}], ids[{self.cells}])")
        if self.type != self.folded.type:
            self.invalid("the folded gate's type differs")

    def tabulated(self):
        return self.generator
