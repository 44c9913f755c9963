"""The IR container: a model's inputs, its ops in topological order, and its outputs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from dwc.ir.ops import Op
from dwc.source import NO_SPAN, Span


@dataclass(frozen=True)
class InputSpec:
    """One named input tensor of the generated module (its signature, for every backend)."""

    name: str
    dtype: str
    """"int64" or "float32"."""
    shape: tuple[int, ...]
    """Per-sample shape: () for one id, (T,) for a sequence, (w,) for numerics."""
    feature: str
    role: str
    """"ids", "sequence", "lengths" or "numeric"."""
    vocab: int | None = None
    scenario: bool = False
    span: Span = NO_SPAN
    """The feature's declaration (for ops a pass inserts to read this input)."""


@dataclass(frozen=True)
class OutputSpec:
    """A named model output: the value holding the head's result, and its pre-head logit."""

    name: str
    value: str
    logit: str
    head: str
    loss: str
    weight: float
    width: int
    span: Span = NO_SPAN


@dataclass(frozen=True)
class Graph:
    """A whole model in IR form. Immutable: passes return a new Graph."""

    model: str
    ops: tuple[Op, ...]
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    scenario: tuple[str, ...] = ()
    """Scenario features whose cross product are the scenario cells (`scenarios a * b`)."""
    scenario_cells: int = 0
    scenario_span: Span = NO_SPAN
    """The `scenarios` declaration (for the cell id a pass inserts)."""
    options: dict[str, object] = field(default_factory=dict)
    """Resolved model-level settings, reported in the generated docstring."""

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def op(self, result: str) -> Op:
        for op in self.ops:
            if op.result == result:
                return op
        raise KeyError(result)

    def producers(self) -> dict[str, Op]:
        return {op.result: op for op in self.ops}

    def readers(self) -> dict[str, list[Op]]:
        """Value -> the ops that read it, in graph order (an op once per input naming it)."""
        readers: dict[str, list[Op]] = {}
        for op in self.ops:
            for name in op.inputs:
                readers.setdefault(name, []).append(op)
        return readers

    def output_values(self) -> set[str]:
        """The values the graph's outputs name (each output's value and logit)."""
        return {name for out in self.outputs for name in (out.value, out.logit)}

    def ancestors(self, name: str, stop: type | tuple[type, ...] = ()) -> set[str]:
        """`name` and every value it depends on; the inputs of ops of type `stop` are not followed."""
        producers = self.producers()
        seen: set[str] = set()
        stack = [name]
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                op = producers[current]
                if not isinstance(op, stop):
                    stack.extend(op.inputs)
        return seen

    def source_features(self, name: str) -> set[str]:
        """The features whose inputs `name` depends on."""
        producers = self.producers()
        return {op.feature for op in map(producers.get, self.ancestors(name))
                if op.kind == "input"}

    def with_ops(self, ops: tuple[Op, ...] | list[Op]) -> Graph:
        return replace(self, ops=tuple(ops))
