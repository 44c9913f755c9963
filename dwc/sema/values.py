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


@dataclass
class Value:
    """A resolved network value: its SSA name, type and the features it depends on."""

    ssa: str
    type: VecType | FieldsType
    deps: frozenset[str]
    span: Span
