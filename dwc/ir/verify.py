"""The IR verifier: invariants every graph satisfies after lowering and after every pass.

A violation is a compiler bug, not a user error, so it raises `VerificationError` (reported by the
CLI as DW900 with the offending op). One function per graph-wide invariant, in the torch.fx
`Graph.lint` style; what an op of one kind must satisfy is that op's own `verify` (xdsl's
`verify_`), so this module knows no op kind.
"""

from __future__ import annotations

from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.ir.ops import VerificationError


def _fail(op: ir.Op, message: str) -> None:
    op.invalid(message)


def _unique_and_ordered(graph: Graph) -> None:
    seen: dict[str, ir.Op] = {}
    for op in graph.ops:
        if op.result in seen:
            _fail(op, "value defined twice")
        for name in op.inputs:
            if name not in seen:
                _fail(op, f"uses %{name} before it is defined (or it does not exist)")
        seen[op.result] = op


def _modules_unique(graph: Graph) -> None:
    owners: dict[str, ir.Op] = {}
    for op in graph.ops:
        names = op.modules()
        if op.params() and not names:
            _fail(op, "owns parameters but has no module name")
        for name in names:
            if name in owners:
                _fail(op, f"module name {name!r} already used by %{owners[name].result}")
            owners[name] = op


def _ops(graph: Graph) -> None:
    """Every op's own invariants (`Op.verify`), given its inputs' types."""
    producers = graph.producers()
    for op in graph.ops:
        op.verify(tuple(producers[name].type for name in op.inputs), producers)


def _outputs(graph: Graph) -> None:
    producers = graph.producers()
    if not graph.outputs:
        raise VerificationError("graph has no outputs")
    for out in graph.outputs:
        if out.value not in producers or out.logit not in producers:
            raise VerificationError(f"output {out.name!r} refers to a missing value")


CHECKS = (_unique_and_ordered, _modules_unique, _ops, _outputs)


def verify(graph: Graph) -> None:
    """Check every invariant; raises VerificationError on the first violation."""
    for check in CHECKS:
        check(graph)
