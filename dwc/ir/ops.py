"""IR operations. Each op produces one value, names its inputs, and knows its own costs.

Costs follow the conventions of docs/models.md: one multiply-add = 2 FLOPs, counts per sample.
`params()` is the number of static (trained) parameters the op owns, `generated()` the numbers per
sample that are produced by a generator instead of stored. Ops are frozen; passes rewrite with
`dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, NamedTuple, NoReturn

from dwc.ir.types import FieldsType, IdsType, TableType, ValueType, VecType
from dwc.source import NO_SPAN, Span


@dataclass(frozen=True, kw_only=True)
class Op:
    """Base of every IR op."""

    kind: ClassVar[str] = "op"
    result: str
    """The SSA name of the produced value (unique in the graph)."""
    inputs: tuple[str, ...] = ()
    type: ValueType
    span: Span = NO_SPAN
    module: str | None = None
    """Stable name of the parameter owner in generated code (ops with parameters only)."""
    binding: str = ""
    """The spec name (value, condition, feature or output) this op was lowered from."""

    def params(self) -> int:
        return 0

    def generated(self) -> int:
        return 0

    def flops(self) -> int:
        return 0

    def activations(self) -> int:
        """Floats per sample this op materialises (its output, plus any large temporary)."""
        return self.type.width

    def attrs(self) -> dict[str, object]:
        """Op-specific attributes, in printing order."""
        return {}

    # -- the protocol generic code uses instead of branching on op types

    def verify(self, ins: tuple[ValueType, ...], producers: dict[str, Op]) -> None:
        """Check this op's own invariants (xdsl's `verify_`); `ins` are the types of its inputs,
        `producers` every op of the graph by result. Report a violation with `self.invalid`."""

    def invalid(self, message: str) -> NoReturn:
        raise VerificationError(f"%{self.result} ({self.kind}): {message}")

    def modules(self) -> tuple[str, ...]:
        """The parameter owners this op declares in generated code (their names are unique)."""
        return (self.module,) if self.module is not None else ()

    def conditioning_inputs(self) -> tuple[str, ...]:
        """The inputs that adapt this op's weights (a generator's condition, a gate's, a domain
        index): what scenario analysis and lint follow back to features."""
        return ()

    def tabulated(self) -> str | None:
        """For an op an inference fold made from a per-cell table: the training value the
        table holds for every scenario cell (`for_inference()` computes it once)."""
        return None

    def per_cell_condition(self) -> str | None:
        """The conditioning input which, when it depends on the scenario cell alone, makes this
        op a function of the cell that an inference fold may tabulate (fold-scenario-table puts
        `per_cell(...)` in its place); None for ops that cannot be tabulated so."""
        return None

    def per_cell(self, cell: str, cells: int, module: str) -> Op:
        """This op as a per-cell table (fold-scenario-table; only where `per_cell_condition()`
        is not None): it reads the scenario cell id `cell` (ids[cells]) instead of that
        condition, and its table is owned by `module`. Same result, type, span and binding."""
        raise NotImplementedError(f"{type(self).__name__} has no per-cell form")

    def slots_read(self) -> tuple[Slot, ...]:
        """The slots of its generator input (inputs[1]) this op reads."""
        return ()

    def with_slots(self, slots: dict[str, Slot]) -> Op:
        """This op reading the re-laid-out slots `slots` (by name) of its generator."""
        return self

    def same_width(self, ins: tuple[ValueType, ...]) -> None:
        """The invariant of width-preserving ops: one input, of this op's width."""
        if len(ins) != 1 or ins[0].width != self.type.width:
            self.invalid("must preserve the width of its single input")

    def generator_input(self, producers: dict[str, Op]) -> None:
        """The invariant of ops reading generated numbers: inputs[1] is a generator (or table)
        whose layout has every slot this op reads."""
        gen = producers[self.inputs[1]]
        if not gen.generates():
            self.invalid("weights must come from a generator")
        slots = {s.name: s for s in gen.slots}
        for slot in self.slots_read():
            if slots.get(slot.name) != slot:
                self.invalid(f"slot {slot.name} does not match generator %{gen.result}")

    def generates(self) -> bool:
        """Whether this op's output is a layout of generated numbers (`slots`)."""
        return False

    def allocates(self) -> bool:
        """Whether its result is a newly allocated tensor (never an input, a view or an alias
        of one), so an activation that is its only reader may overwrite it in place."""
        return False

    def dynamic_weights(self) -> DynamicWeights | None:
        """For a dynamic linear layer (y = x W(z) + b): how W(z) is made from its generator's
        output, which fold-scenario-layers computes once per scenario cell; None otherwise."""
        return None

    def per_cell_form(self, table: ScenarioTable) -> Op | None:
        """This op's inference form when the generated numbers it reads (inputs[1]) come from
        `table`, a generator tabulated per scenario cell: the op that computes each cell's
        weights once (fold-scenario-layers); None when it has none (a dynamic linear layer's
        comes from `dynamic_weights`)."""
        return None

    def cell_weights(self) -> CellWeights | None:
        """For an op applying one weight set per cell (inputs = (x, cell or domain ids)), run
        per cell present: what the inference forward's batch grouping weighs (CellWeights);
        None for every other op."""
        return None


class VerificationError(Exception):
    """The IR broke an invariant (a dwc bug)."""


class CellWeights(NamedTuple):
    """What a per-cell op weighs in the batch-grouping decision (`Op.cell_weights`), per sample."""

    gathered: int
    """Floats of one cell's weights a sample gathers in a small batch (the generated layers
    switch to one matmul per cell when B times this is too large to gather)."""
    copied: int
    """Words the op copies when it groups its own rows by cell: its input once, its output twice
    (concatenation, scatter back), for each of its matmuls."""


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
class Input(Op):
    """A model input: a feature's ids (categorical / sequence) or its floats (numeric)."""

    kind: ClassVar[str] = "input"
    feature: str

    def attrs(self):
        return {"feature": self.feature}


@dataclass(frozen=True, kw_only=True)
class Table(Op):
    """An embedding table, owned by the categorical feature that declares it."""

    kind: ClassVar[str] = "table"
    frozen: bool = False
    """Excluded from training (e.g. PTUPCDR's pre-trained embeddings)."""

    def attrs(self):
        return {"frozen": True} if self.frozen else {}

    def params(self):
        assert isinstance(self.type, TableType)
        return self.type.vocab * self.type.dim


@dataclass(frozen=True, kw_only=True)
class Lookup(Op):
    """`table[ids]`: one embedding row per sample. inputs = (table, ids)."""

    kind: ClassVar[str] = "lookup"

    def verify(self, ins, producers):
        if not isinstance(ins[0], TableType) or not isinstance(ins[1], IdsType):
            self.invalid("expects (table, ids)")
        if self.type != VecType(ins[0].dim):
            self.invalid(f"type {self.type} != vec[{ins[0].dim}]")


@dataclass(frozen=True, kw_only=True)
class ScenarioIndex(Op):
    """The scenario cell id of each sample: mixed-radix combination of the scenario features' ids.

    inputs = the ids of the `scenarios a * b ...` features, in order; `radices` their vocabularies.
    """

    kind: ClassVar[str] = "scenario_index"
    radices: tuple[int, ...]

    def attrs(self):
        return {"radices": list(self.radices)}


@dataclass(frozen=True, kw_only=True)
class SeqPool(Op):
    """Embeds a padded id sequence and pools it over its valid positions.

    inputs = (table, ids, lengths); `mode` is mean | sum | max.
    """

    kind: ClassVar[str] = "seq_pool"
    mode: str
    max_len: int

    def params(self):
        # attention pooling (PTUPCDR): a_j = w2 . relu(W1 v_j + b1), W1: d x d, w2: d
        d = self.type.width
        return d * d + 2 * d if self.mode == "attention" else 0

    def flops(self):
        d = self.type.width
        if self.mode == "attention":
            return self.max_len * (2 * d * d + 2 * d + 2 * d)
        return self.max_len * d

    def attrs(self):
        return {"mode": self.mode, "max_len": self.max_len}

    def verify(self, ins, producers):
        if not isinstance(ins[0], TableType) or not isinstance(ins[1], IdsType):
            self.invalid("expects (table, ids)")
        if self.type != VecType(ins[0].dim):
            self.invalid(f"type {self.type} != vec[{ins[0].dim}]")


@dataclass(frozen=True, kw_only=True)
class Normalize(Op):
    """Input normaliser of a numeric feature: `log1p` (sign-preserving) or `batch` (BatchNorm)."""

    kind: ClassVar[str] = "normalize"
    mode: str

    def params(self):
        return 2 * self.type.width if self.mode == "batch" else 0

    def flops(self):
        return 2 * self.type.width

    def attrs(self):
        return {"mode": self.mode}

    def verify(self, ins, producers):
        self.same_width(ins)


@dataclass(frozen=True, kw_only=True)
class Concat(Op):
    """Concatenation along the feature axis; the result is `vec` (`fields` keeps field structure)."""

    kind: ClassVar[str] = "concat"

    def verify(self, ins, producers):
        total = sum(t.width for t in ins)
        if self.type.width != total or not isinstance(self.type, VecType | FieldsType):
            self.invalid(f"width {self.type.width} != sum of inputs {total}")


@dataclass(frozen=True, kw_only=True)
class Linear(Op):
    """`y = x W + b`, W: in x out."""

    kind: ClassVar[str] = "linear"
    in_features: int
    out_features: int
    bias: bool = True

    def params(self):
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)

    def flops(self):
        return 2 * self.in_features * self.out_features

    def attrs(self):
        return {"in": self.in_features, "out": self.out_features, "bias": self.bias}

    def verify(self, ins, producers):
        if ins[0].width != self.in_features:
            self.invalid(f"input width {ins[0].width} != in_features {self.in_features}")
        if self.type != VecType(self.out_features):
            self.invalid(f"type {self.type} != vec[{self.out_features}]")

    def allocates(self):
        return True


@dataclass(frozen=True, kw_only=True)
class Activation(Op):
    kind: ClassVar[str] = "activation"
    fn: str

    def flops(self):
        return self.type.width

    def attrs(self):
        return {"fn": self.fn}

    def verify(self, ins, producers):
        self.same_width(ins)


@dataclass(frozen=True, kw_only=True)
class Norm(Op):
    """Batch or layer normalisation with an affine scale and shift."""

    kind: ClassVar[str] = "norm"
    mode: str

    def params(self):
        return 2 * self.type.width

    def flops(self):
        return 4 * self.type.width

    def attrs(self):
        return {"mode": self.mode}

    def verify(self, ins, producers):
        self.same_width(ins)


@dataclass(frozen=True, kw_only=True)
class Dropout(Op):
    kind: ClassVar[str] = "dropout"
    p: float

    def attrs(self):
        return {"p": self.p}

    def verify(self, ins, producers):
        self.same_width(ins)


@dataclass(frozen=True, kw_only=True)
class Add(Op):
    """Element-wise sum of equal-width values (residual connections)."""

    kind: ClassVar[str] = "add"

    def flops(self):
        return (len(self.inputs) - 1) * self.type.width

    def verify(self, ins, producers):
        if any(t.width != self.type.width for t in ins):
            self.invalid("inputs of unequal width")

    def allocates(self):
        return True


@dataclass(frozen=True, kw_only=True)
class StopGradient(Op):
    """Identity in the forward pass; blocks gradients (removed from inference graphs)."""

    kind: ClassVar[str] = "stop_gradient"


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

    Each part keeps its own parameters (and names, so weights travel); the op concatenates them
    and applies one matmul. The output is the parts' outputs side by side; `slots` is the merged
    layout (each part's slots shifted by its offset).
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
class Head(Op):
    """An output head: sigmoid, softmax, identity or exp (Poisson rate)."""

    kind: ClassVar[str] = "head"
    fn: str

    def flops(self):
        return self.type.width

    def attrs(self):
        return {"fn": self.fn}

    def verify(self, ins, producers):
        self.same_width(ins)


@dataclass(frozen=True, kw_only=True)
class IndexedLinear(Op):
    """A linear layer with one weight set per domain id (per-scenario heads): inputs = (x, ids)."""

    kind: ClassVar[str] = "indexed_linear"
    in_features: int
    out_features: int
    domains: int

    def params(self):
        return self.domains * (self.in_features * self.out_features + self.out_features)

    def flops(self):
        return 2 * self.in_features * self.out_features

    def attrs(self):
        return {"in": self.in_features, "out": self.out_features, "domains": self.domains}

    def conditioning_inputs(self):
        return (self.inputs[1],)

    def allocates(self):
        return True

    def cell_weights(self):
        n, m = self.in_features, self.out_features
        return CellWeights(gathered=n * m, copied=n + 2 * m)


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


@dataclass(frozen=True, kw_only=True)
class Dot(Op):
    """Row-wise inner product of two equal-width values (PTUPCDR's prediction): B x 1."""

    kind: ClassVar[str] = "dot"
    in_features: int

    def flops(self):
        return 2 * self.in_features


def __getattr__(name: str) -> type[Op]:
    """The op classes of layer kinds (dwc/layers/<kind>/op.py) by name, for code that names a
    kind's op (a lint rule, a test): `ir.Lhuc` is `dwc.layers.lhuc.op.Lhuc`."""
    if name.startswith("__"):  # the import system probes module attributes (`__path__`)
        raise AttributeError(name)
    from dwc import layers

    for kind in layers.kinds().values():
        for cls in kind.ops:
            if cls.__name__ == name:
                return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Activation", "Add", "Concat", "Dropout", "DynamicLinear", "FieldsType", "Generator", "Head",
    "IdsType", "Input", "Linear", "Lookup", "Norm", "Normalize", "Op", "SeqPool", "Slot",
    "StopGradient", "Table", "TableType", "VecType",
]
