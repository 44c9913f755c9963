"""IR operations: the core's ops, and every op class by name.

Each op produces one value, names its inputs, and knows its own costs. Costs follow the conventions
of docs/models.md: one multiply-add = 2 FLOPs, counts per sample. `params()` is the number of
static (trained) parameters the op owns, `generated()` the numbers per sample that are produced by
a generator instead of stored. Ops are frozen; passes rewrite with `dataclasses.replace`.

This module is the IR's namespace (`from dwc.ir import ops as ir`): it defines the small core ops
and re-exports the `Op` base with its protocol (`dwc.ir.op`) and the dynamic-weight ops
(`dwc.ir.dynamic`); a layer kind's op resolves by name too (`ir.Lhuc`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dwc.ir.dynamic import (
    DynamicLinear,
    DynamicWeights,
    FusedGenerator,
    Generator,
    GeneratorPart,
    ScenarioLinear,
    ScenarioTable,
    Slot,
    verify_slot_layout,
)
from dwc.ir.dynamic import _fix as _fix  # layer kinds re-lay-out their slots with it
from dwc.ir.op import CellWeights, Op, VerificationError
from dwc.ir.types import FieldsType, IdsType, TableType, ValueType, VecType


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
class Slice(Op):
    """Columns `start` .. `start + width - 1` of its input, `width` being its own; a view (one
    task's logit of a multi-task layer)."""

    kind: ClassVar[str] = "slice"
    start: int

    def attrs(self):
        return {"start": self.start, "width": self.type.width}

    def activations(self):
        return 0  # a view of its input

    def verify(self, ins, producers):
        end = self.start + self.type.width
        if not isinstance(self.type, VecType) or self.start < 0 or end > ins[0].width:
            self.invalid(f"columns {self.start}..{end - 1} of a width-{ins[0].width} input")


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
class NormFoldedLinear(Linear):
    """Inference form of a linear layer and the eval-mode batch norm right before or after it
    (fold-batch-norm): one linear layer whose weights and bias absorb the norm's scale
    s = gamma / sqrt(running_var + eps) and shift t = beta - running_mean * s.

    After the layer (`norm_first` False): y = (x W + b) s + t, so W' = W diag(s), b' = b s + t.
    Before it: y = (x s + t) W + b, so W' = diag(s) W, b' = t W + b. `linear` and `norm` name the
    training modules the weights are computed from; `linear_bias` whether the trained layer
    has a bias (the folded one always has)."""

    kind: ClassVar[str] = "norm_folded_linear"
    linear: str
    norm: str
    norm_first: bool
    linear_bias: bool

    def attrs(self):
        return {**super().attrs(), "linear": self.linear, "linear_bias": self.linear_bias,
                "norm": self.norm, "norm_first": self.norm_first}


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
class DomainLinear(Op):
    """What every linear layer with weights chosen per domain id shares (inputs = (x, domain
    ids)): its shape, its conditioning input, its per-cell weights for batch grouping."""

    in_features: int
    out_features: int
    domains: int

    def attrs(self):
        return {"in": self.in_features, "out": self.out_features, "domains": self.domains}

    def conditioning_inputs(self):
        return (self.inputs[1],)

    def allocates(self):
        return True

    def cell_weights(self):
        n, m = self.in_features, self.out_features
        return CellWeights(gathered=n * m, copied=n + 2 * m)

    def verify(self, ins, producers):
        if ins[0].width != self.in_features or self.type != VecType(self.out_features):
            self.invalid(f"expects vec[{self.in_features}] -> vec[{self.out_features}]")
        if ins[1] != IdsType(self.domains):
            self.invalid(f"domain ids {ins[1]} != ids[{self.domains}]")


@dataclass(frozen=True, kw_only=True)
class IndexedLinear(DomainLinear):
    """A linear layer with one weight set per domain id (per-scenario heads): inputs = (x, ids)."""

    kind: ClassVar[str] = "indexed_linear"

    def params(self):
        return self.domains * (self.in_features * self.out_features + self.out_features)

    def flops(self):
        return 2 * self.in_features * self.out_features


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
    "Activation", "Add", "CellWeights", "Concat", "DomainLinear", "Dot", "Dropout",
    "DynamicLinear", "DynamicWeights", "FieldsType", "FusedGenerator", "Generator",
    "GeneratorPart", "Head", "IdsType", "IndexedLinear", "Input", "Linear", "Lookup", "Norm",
    "NormFoldedLinear", "Normalize", "Op",
    "ScenarioIndex", "ScenarioLinear", "ScenarioTable", "SeqPool", "Slice", "Slot", "StopGradient",
    "Table",
    "TableType", "ValueType", "VecType", "VerificationError", "verify_slot_layout",
]
