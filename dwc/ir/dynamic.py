"""Dynamic weights in the IR: generators, the layers that read what they generate, and the
inference forms fold-scenario-table and fold-scenario-layers make of them.

A generator (`Generator`, or several fused into one GEMM by fuse-generators: `FusedGenerator`)
maps a condition z to a vector of numbers per sample; its `slots` lay that vector out as the
weights and biases of the layers that read it (`Slot`, tiled in order: `verify_slot_layout`). A
`DynamicLinear` computes `y = x W(z) + b` from its slots (`DynamicWeights` says how W(z) is made,
for every dynamic linear layer, a layer kind's included). When the condition depends on the
scenario cell alone, inference precomputes: `ScenarioTable` holds the generator's output for every
cell, and `ScenarioLinear` one weight set per cell for a dynamic linear layer reading it.

`dwc.ir.ops` re-exports every name here (`ir.Generator`); code may import from either.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

from dwc.ir.op import CellWeights, Op
from dwc.ir.types import IdsType, VecType


@dataclass(frozen=True)
class Slot:
    """A named slice `[offset, offset + size)` of a generator's output, reshaped to `shape`."""

    name: str
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class DynamicWeights:
    """How a dynamic linear's per-sample weight is made: W(z) = U G V, G the product of the
    generator slots `generated` (in order), between static factors U (in x rank) and V (rank x
    out) shared by every sample when `rank` is set; W(z) = G without a rank."""

    generated: tuple[Slot, ...]
    rank: int | None = None
    module: str | None = None
    """The layer's own parameter owner (its static factors and bias), whose name the layer's
    per-cell form takes over; None when the op's module holds only a static bias (or none)."""


def verify_slot_layout(op: Op) -> None:
    """A generator's slots tile its output exactly, in order."""
    end = 0
    for slot in op.slots:
        if slot.offset != end:
            op.invalid(f"slot {slot.name} starts at {slot.offset}, expected {end}")
        end = slot.end
    if end != op.type.width:
        op.invalid(f"slots cover {end} numbers, generator emits {op.type.width}")


def _fix(slots: dict[str, Slot], slot: Slot | None) -> Slot | None:
    return None if slot is None else slots.get(slot.name, slot)


@dataclass(frozen=True, kw_only=True)
class Generator(Op):
    """The hyper-network G: an MLP from the condition z (inputs[0]) to `out` numbers per sample.

    Its last layer is linear. `slots` is the documented layout of the output vector (per generated
    layer: weight in row-major (in, out) order, then bias), which `init = hyperfan` uses to scale
    each slot to its target layer's fan-in.
    """

    kind: ClassVar[str] = "generator"
    in_features: int
    hidden: tuple[int, ...] = ()
    act: str = "relu"
    init: str = "default"
    slots: tuple[Slot, ...] = field(default_factory=tuple)

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.in_features, *self.hidden, self.type.width)

    def params(self):
        w = self.widths
        return sum(a * b + b for a, b in zip(w, w[1:], strict=False))

    def generated(self):
        return self.type.width

    def flops(self):
        w = self.widths
        return sum(2 * a * b for a, b in zip(w, w[1:], strict=False))

    def attrs(self):
        return {"hidden": list(self.hidden), "act": self.act, "init": self.init,
                "slots": [f"{s.name}@{s.offset}:{'x'.join(map(str, s.shape))}" for s in self.slots]}

    def generates(self):
        return True

    def verify(self, ins, producers):
        if ins[0].width != self.in_features:
            self.invalid(f"condition width {ins[0].width} != in_features {self.in_features}")
        verify_slot_layout(self)

    def conditioning_inputs(self):
        return (self.inputs[0],)


@dataclass(frozen=True, kw_only=True)
class DynamicLinear(Op):
    """`y = x W(z) + b` with per-sample W read from a generator's output.

    inputs = (x, generated). `weight` names the generator slot of shape (in, out); `bias` is
    "generated" (slot `bias_slot`), "static" (a trained bias owned by this op) or "none".
    """

    kind: ClassVar[str] = "dynamic_linear"
    in_features: int
    out_features: int
    weight: Slot
    bias: str = "generated"
    bias_slot: Slot | None = None
    apg: object | None = None
    """What a spec's `apg(...)` asked for this layer (dwc.layers.apg's ApgKnobs; the APG
    passes carry it out)."""
    layer: str = ""
    """The layer's index within its statement ("" for a single layer), for derived names."""

    def params(self):
        return self.out_features if self.bias == "static" else 0

    def flops(self):
        return 2 * self.in_features * self.out_features

    def activations(self):
        # the generated slice is reshaped into a contiguous B x in x out weight
        return self.out_features + self.in_features * self.out_features

    def attrs(self):
        a: dict[str, object] = {"in": self.in_features, "out": self.out_features,
                                "weight": self.weight.name, "bias": self.bias}
        if self.bias_slot:
            a["bias_slot"] = self.bias_slot.name
        if self.apg:
            a["apg"] = str(self.apg)
        return a

    def allocates(self):
        return True

    def dynamic_weights(self):
        return DynamicWeights((self.weight,))

    def slots_read(self):
        return tuple(s for s in (self.weight, self.bias_slot) if s is not None)

    def with_slots(self, slots):
        return replace(self, weight=_fix(slots, self.weight), bias_slot=_fix(slots, self.bias_slot))

    def verify(self, ins, producers):
        if ins[0].width != self.in_features:
            self.invalid(f"input width {ins[0].width} != in_features {self.in_features}")
        if self.type != VecType(self.out_features):
            self.invalid(f"type {self.type} != vec[{self.out_features}]")
        self.generator_input(producers)
        if self.weight.shape != (self.in_features, self.out_features):
            self.invalid(f"weight slot shape {self.weight.shape} != ({self.in_features}, "
                         f"{self.out_features})")
        if (self.bias == "generated") != (self.bias_slot is not None):
            self.invalid("generated bias needs a bias slot (and only then)")
        if self.bias_slot is not None and self.bias_slot.shape != (self.out_features,):
            self.invalid("bias slot shape does not match the output width")


@dataclass(frozen=True, kw_only=True)
class ScenarioTable(Op):
    """Inference form of a generator whose condition is a function of the scenario cell only:
    its output for every cell, precomputed into a table and gathered by cell id.

    inputs = (scenario index,). `generator` names the training graph's generator module the table
    is computed from; `slots` keep the generator's layout.
    """

    kind: ClassVar[str] = "scenario_table"
    cells: int
    generator: str
    slots: tuple[Slot, ...] = ()

    def params(self):
        return self.cells * self.type.width

    def attrs(self):
        return {"cells": self.cells, "generator": self.generator}

    def generates(self):
        return True

    def verify(self, ins, producers):
        verify_slot_layout(self)

    def tabulated(self):
        return self.generator


@dataclass(frozen=True)
class GeneratorPart:
    """One linear generator folded into a FusedGenerator: its module and output width."""

    module: str
    in_features: int
    out_features: int
    init: str = "default"
    slots: tuple[Slot, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FusedGenerator(Op):
    """Several linear generators reading the same condition, run as one GEMM.

    Each part keeps its own parameters in the training class (and their names, so weights
    travel); the inference class holds them stacked in one linear layer (`module`), which
    `for_inference()` fills by concatenating the parts once, so serving never concatenates. The
    output is the parts' outputs side by side; `slots` is the merged layout (each part's slots
    shifted by its offset).
    """

    kind: ClassVar[str] = "fused_generator"
    parts: tuple[GeneratorPart, ...]
    slots: tuple[Slot, ...] = ()

    def params(self):
        return sum(p.in_features * p.out_features + p.out_features for p in self.parts)

    def generated(self):
        return self.type.width

    def flops(self):
        return sum(2 * p.in_features * p.out_features for p in self.parts)

    def attrs(self):
        return {"parts": [p.module for p in self.parts]}

    def generates(self):
        return True

    def modules(self):
        return (*(p.module for p in self.parts), *super().modules())

    def verify(self, ins, producers):
        if any(p.in_features != ins[0].width for p in self.parts):
            self.invalid("every fused part must read the condition's width")
        verify_slot_layout(self)


@dataclass(frozen=True, kw_only=True)
class ScenarioLinear(Op):
    """Inference form of a dynamic linear whose generated numbers depend on the scenario cell only
    (they come from a ScenarioTable): one weight set per cell, computed once, applied to each
    cell's samples together. inputs = (x, scenario cell index).

    With `rank` (APG with shared U and V): U, V and one K x K core S[c] per cell, applied as
    `y = ((x U) S[c]) V + b[c]` when the batch is small (each sample gathers its core), plus each
    cell's K x M product W[c] = S[c] V for batches grouped by cell, `y = (x U) W[c] + b[c]` (one
    GEMM per cell, its bias included, no K x K stage). With `v_shared` (C x K x M too large) only
    the cores. Without a rank: `y = x W[c] + b[c]` with the cell's full in x out matrix (U S V
    multiplied out for unshared low-rank layers). The cost model counts the grouped form.
    `folded` is the training op the weights are computed from, `generator` the training value its
    table tabulates.
    """

    kind: ClassVar[str] = "scenario_linear"
    in_features: int
    out_features: int
    cells: int
    rank: int | None
    generator: str
    folded: Op
    """A dynamic linear layer (`folded.dynamic_weights()` says how its weights are made)."""
    v_shared: bool = False

    @property
    def bias(self) -> bool:
        return self.folded.bias != "none"

    @property
    def cell_shape(self) -> tuple[int, int]:
        """Shape of the weight matrix each cell's rows are multiplied by in a grouped batch."""
        k = self.rank
        if k is None:
            return (self.in_features, self.out_features)
        return (k, k) if self.v_shared else (k, self.out_features)

    def params(self):
        n, m, k = self.in_features, self.out_features, self.rank
        per_cell = (m if self.bias else 0) + (0 if self.v_shared else (k or n) * m)
        return (n * k + k * m + self.cells * k * k if k else 0) + self.cells * per_cell

    def flops(self):
        n, m, k = self.in_features, self.out_features, self.rank
        if k is None:
            return 2 * n * m
        return 2 * (n * k + (k * k if self.v_shared else 0) + k * m)

    def activations(self):
        k = self.rank or 0
        return k + (k if self.v_shared else 0) + self.out_features

    def attrs(self):
        out = {"in": self.in_features, "out": self.out_features, "cells": self.cells,
               "rank": self.rank, "generator": self.generator, "folded": self.folded.kind}
        if self.v_shared:
            out["v_shared"] = True
        return out

    def verify(self, ins, producers):
        if ins[0].width != self.in_features or self.type != VecType(self.out_features):
            self.invalid(f"expects vec[{self.in_features}] -> vec[{self.out_features}]")
        if ins[1] != IdsType(self.cells):
            self.invalid(f"cell index {ins[1]} != ids[{self.cells}]")
        f = self.folded
        if (f.in_features, f.out_features) != (self.in_features, self.out_features):
            self.invalid("the folded layer's shape differs")
        weights = f.dynamic_weights()
        if weights is None:
            self.invalid("the folded op is not a dynamic linear layer")
        if self.rank is not None and weights.rank != self.rank:
            self.invalid("a shared U needs a shared-factor low-rank layer of the same rank")
        if self.v_shared and self.rank is None:
            self.invalid("a shared V needs a rank")

    def allocates(self):
        return True

    def tabulated(self):
        return self.generator

    def cell_weights(self):
        n, m, k = self.in_features, self.out_features, self.rank
        return CellWeights(gathered=k * k if k else n * m,  # with a rank: its K x K core
                           copied=n + 2 * m)
