"""What the AOTInductor build's rewrites of an exported graph share: reading its nodes (which
call, what example value) and the match-and-rewrite loop (dwc.backends.aoti_per_cell,
dwc.backends.aoti_bags)."""

from __future__ import annotations

import torch
from torch import fx


def called(node, *targets) -> fx.Node | None:
    """`node` if it is a call of one of `targets`, else None."""
    if isinstance(node, fx.Node) and node.op == "call_function" and node.target in targets:
        return node
    return None


def example_value(node):
    """The example value torch.export recorded for a node (a FakeTensor or SymInt), or None."""
    return node.meta.get("val") if isinstance(node, fx.Node) else None


def same_size(a, b) -> bool:
    """Whether two sizes (ints or SymInts) are the same expression."""
    if isinstance(a, torch.SymInt) and isinstance(b, torch.SymInt):
        return a.node.expr == b.node.expr
    return isinstance(a, int) and isinstance(b, int) and a == b


def rewrite_matches(program: torch.export.ExportedProgram, match, rewrite) -> int:
    """Calls `rewrite(graph, node, found)` on every node of `program`'s graph for which
    `match(node)` finds something (not None), in graph order; a rewrite may erase the node and
    what it alone used before it. Lints and recompiles the graph if anything was rewritten;
    returns how many nodes were."""
    graph = program.graph_module.graph
    rewritten = 0
    for node in list(graph.nodes):
        found = match(node)
        if found is not None:
            rewrite(graph, node, found)
            rewritten += 1
    if rewritten:
        graph.lint()
        program.graph_module.recompile()
    return rewritten
