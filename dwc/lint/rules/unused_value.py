"""DW513 unused-value."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.lint.rules.base import Rule, refs, remove_statement
from dwc.parse import ast


class UnusedValue(Rule):
    """## What it does
    Flags a value or condition no output depends on.

    ## Why is this bad?
    Its parameters are created and trained for nothing, and it is usually a wiring mistake.

    ## Example
    ```
    h2 = mlp(h, [32])
    output ctr = sigmoid(linear(h, 1))
    ```

    ## Use instead
    ```
    output ctr = sigmoid(linear(h2, 1))
    ```
    """

    code = "DW513"

    def check(self, ctx):
        referenced = {ref for stmt in ctx.spec.statements for ref in refs(stmt)}
        live: set[str] = set()
        for out in ctx.graph.outputs:
            live |= ctx.graph.ancestors(out.value)
        bound = {op.binding for op in ctx.graph.ops}
        bindings_live = {op.binding for op in ctx.graph.ops if op.result in live}
        for stmt in ctx.spec.statements:
            if not isinstance(stmt, ast.LetDecl | ast.ConditionDecl):
                continue
            name = stmt.name.text
            dead_ops = name in bound and name not in bindings_live
            if name not in referenced or dead_ops:
                fixes = () if name in referenced else (
                    remove_statement(ctx.source.text, stmt, f"the statement of '{name}'"),)
                yield self.diag(f"'{name}' is computed but no output depends on it",
                                Label(stmt.name.span, "never reaches an output"),
                                "use it, or remove the statement", fixes=fixes)
