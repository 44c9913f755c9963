"""The `Op` base class: the fields every IR op has and the protocol generic code uses.

Each op produces one value (`result`), names its inputs, and knows its own costs; the verifier,
the passes and the backends ask an op through the methods below instead of branching on its type
(docs/architecture.md, "Layer kinds"). Costs follow the conventions of docs/models.md: one
multiply-add = 2 FLOPs, counts per sample. Ops are frozen; passes rewrite with
`dataclasses.replace`.

The core's ops are in `dwc.ir.ops` (which re-exports this module's names), the dynamic-weight ops
in `dwc.ir.dynamic`, a layer kind's in `dwc/layers/<kind>/op.py`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, NamedTuple, NoReturn, TypeVar

from dwc.ir.types import ValueType
from dwc.source import NO_SPAN, Span

if TYPE_CHECKING:
    from dwc.ir.dynamic import DynamicWeights, ScenarioTable, Slot

_Marked = TypeVar("_Marked", bound="Op")


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

    def table_condition(self) -> str | None:
        """The conditioning input which, when it depends on the scenario cell alone, makes this
        op a function of the cell that an inference fold may tabulate (fold-scenario-table puts
        `as_table(...)` in its place); None for ops that cannot be tabulated so."""
        return None

    def retyped(self, cls: type[_Marked], **changes) -> _Marked:
        """This op as an instance of `cls`, every field kept but `changes`: how an inference
        fold marks an op (e.g. an Lhuc as a FoldedLhuc), the marker subclass changing what the
        backends emit and what `for_inference()` computes, not what the op reads or produces."""
        return cls(**{**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                      **changes})

    def as_table(self, cell: str, cells: int, module: str) -> Op:
        """This op as a per-cell table (fold-scenario-table; only where `table_condition()`
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
