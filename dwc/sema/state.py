"""The state of the checked walk (dwc.sema.elaborate) over one spec, and its statement abort."""

from __future__ import annotations

from dataclasses import dataclass, field

from dwc.diagnostics import Diagnostic
from dwc.ir import ops as ir
from dwc.ir.graph import InputSpec, OutputSpec
from dwc.parse import ast
from dwc.sema.values import Feature, Value
from dwc.source import SourceFile, Span


class Skip(Exception):
    """Abandons the current statement after its diagnostic has been recorded."""


@dataclass
class State:
    source: SourceFile
    diagnostics: list[Diagnostic] = field(default_factory=list)
    model: str | None = None
    model_span: Span | None = None
    features: dict[str, Feature] = field(default_factory=dict)
    values: dict[str, Value] = field(default_factory=dict)
    conditions: set[str] = field(default_factory=set)
    defined: dict[str, Span] = field(default_factory=dict)
    ops: list[ir.Op] = field(default_factory=list)
    ssa_names: set[str] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)
    inputs: list[InputSpec] = field(default_factory=list)
    outputs: list[OutputSpec] = field(default_factory=list)
    scenario: tuple[str, ...] = ()
    scenario_cells: int = 0
    scenario_span: Span | None = None
    defaults: dict[str, dict[str, ast.Kwarg]] = field(default_factory=dict)
    feature_values: dict[str, Value] = field(default_factory=dict)
    feature_ids: dict[str, str] = field(default_factory=dict)
    scenario_index: str | None = None
    poisoned: set[str] = field(default_factory=set)
    """Names whose statement had an error: later uses are not reported again."""
    forward_names: dict[str, Span] = field(default_factory=dict)
    target_columns: dict[str, str] = field(default_factory=dict)
    """Output -> the raw-data column of its target (a data option, dwc.sema.data)."""
