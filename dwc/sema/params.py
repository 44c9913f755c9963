"""The vocabulary signatures are written in: `Param` (one argument), `Signature` (one callable
construct) and `param()`. Layer kinds (dwc/layers/) declare theirs with these; dwc/sema/signatures.py
assembles the table of every construct."""

from __future__ import annotations

from dataclasses import dataclass

REQUIRED = object()
"""Marks an option without a default."""

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "leaky_relu", "silu", "none")


@dataclass(frozen=True)
class Param:
    """One argument of an operation.

    `kind` is one of: value (a network value), values (one or more network values, positional
    only), feature (a feature name), int, float, bool, enum, int_list, string (a quoted string),
    rank, overparam, condition.
    """

    name: str
    kind: str
    doc: str
    default: object = REQUIRED
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    positional: bool = False
    max_exclusive: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Signature:
    name: str
    context: str
    """"feature" (after `feature x :`), "network" (in expressions), "head" (outputs), "modifier"."""
    params: tuple[Param, ...]
    doc: str
    example: str
    dynamic: bool = False
    """Whether `dynamic(...)` may follow the call."""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    @property
    def positional(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.positional)


def param(name, kind, doc, default=REQUIRED, **kw) -> Param:
    """A `Param` (the short form every signature table uses)."""
    return Param(name, kind, doc, default, **kw)
