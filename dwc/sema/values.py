"""What the checked walk knows about the names of a spec: features and network values. Layer
kinds' lowerings (dwc/layers/<kind>/lower.py) receive and return `Value`s."""

from __future__ import annotations

from dataclasses import dataclass

from dwc.ir.types import FieldsType, VecType
from dwc.source import Span


@dataclass
class Feature:
    name: str
    kind: str
    span: Span
    scenario: bool
    vocab: int = 0
    dim: int = 0
    table: str = ""
    width: int = 0
    norm: str = "none"
    max_len: int = 0
    pool: str = "mean"
    column: str = ""
    """Data options (`dwc data prepare`; never part of the model): the raw-data column."""
    encoding: str = "vocabulary"
    min_count: int = 1
    fill: float = 0.0
    splitter: str = "^"


@dataclass
class Value:
    """A resolved network value: its SSA name, type and the features it depends on."""

    ssa: str
    type: VecType | FieldsType
    deps: frozenset[str]
    span: Span


@dataclass
class DynamicLayer:
    """A `linear`/`mlp` call with `dynamic(...)` being lowered, as a modifier that
    re-parameterises it (a layer kind's `Kind.modifiers`, e.g. `apg(...)`) receives it."""

    call: object
    """The layer's call (dwc.parse.ast.Call)."""
    binding: str
    dims: tuple[int, ...]
    """Widths: the input's, then each layer's output."""
    by: object
    """The `by` condition's AST node (resolve it per layer with the elaborator's `condition`)."""
    generator: dict[str, object]
    """The checked options of `dynamic(...)` (hidden, act, bias, init)."""
    bias: str
    """Each layer's bias: "generated", "static" or "none"."""
    init: str
    """The generators' last-layer init, resolved (`generator_init`)."""
    deps: set[str]
    """The features the statement reads; add each condition's."""
