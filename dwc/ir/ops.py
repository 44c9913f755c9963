"""IR operations. Each op produces one value, names its inputs, and knows its own costs.

Costs follow DW-MODELS.md conventions: one multiply-add = 2 FLOPs, counts per sample. `params()` is
the number of static (trained) parameters the op owns, `generated()` the numbers per sample that
are produced by a generator instead of stored. Ops are frozen; passes rewrite with
`dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

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

    def attrs(self) -> dict[str, object]:
        """Op-specific attributes, in printing order."""
        return {}


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

    def params(self):
        assert isinstance(self.type, TableType)
        return self.type.vocab * self.type.dim


@dataclass(frozen=True, kw_only=True)
class Lookup(Op):
    """`table[ids]`: one embedding row per sample. inputs = (table, ids)."""

    kind: ClassVar[str] = "lookup"


@dataclass(frozen=True, kw_only=True)
class SeqPool(Op):
    """Embeds a padded id sequence and pools it over its valid positions.

    inputs = (table, ids, lengths); `mode` is mean | sum | max.
    """

    kind: ClassVar[str] = "seq_pool"
    mode: str
    max_len: int

    def flops(self):
        return self.max_len * self.type.width

    def attrs(self):
        return {"mode": self.mode, "max_len": self.max_len}


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


@dataclass(frozen=True, kw_only=True)
class Concat(Op):
    """Concatenation along the feature axis; the result is `vec` (`fields` keeps field structure)."""

    kind: ClassVar[str] = "concat"


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


@dataclass(frozen=True, kw_only=True)
class Activation(Op):
    kind: ClassVar[str] = "activation"
    fn: str

    def flops(self):
        return self.type.width

    def attrs(self):
        return {"fn": self.fn}


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


@dataclass(frozen=True, kw_only=True)
class Dropout(Op):
    kind: ClassVar[str] = "dropout"
    p: float

    def attrs(self):
        return {"p": self.p}


@dataclass(frozen=True, kw_only=True)
class Add(Op):
    """Element-wise sum of equal-width values (residual connections)."""

    kind: ClassVar[str] = "add"

    def flops(self):
        return (len(self.inputs) - 1) * self.type.width


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

    def params(self):
        return self.out_features if self.bias == "static" else 0

    def flops(self):
        return 2 * self.in_features * self.out_features

    def attrs(self):
        a: dict[str, object] = {"in": self.in_features, "out": self.out_features,
                                "weight": self.weight.name, "bias": self.bias}
        if self.bias_slot:
            a["bias_slot"] = self.bias_slot.name
        return a


@dataclass(frozen=True, kw_only=True)
class Head(Op):
    """An output head: sigmoid, softmax, identity or exp (Poisson rate)."""

    kind: ClassVar[str] = "head"
    fn: str

    def flops(self):
        return self.type.width

    def attrs(self):
        return {"fn": self.fn}


WIDTH_TYPES = (VecType, FieldsType)
__all__ = [
    "Activation", "Add", "Concat", "Dropout", "DynamicLinear", "FieldsType", "Generator", "Head",
    "IdsType", "Input", "Linear", "Lookup", "Norm", "Normalize", "Op", "SeqPool", "Slot",
    "StopGradient", "Table", "TableType", "VecType",
]
