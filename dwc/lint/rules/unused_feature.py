"""DW501 unused-feature."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.lint.rules.base import Rule, refs, remove_statement
from dwc.parse import ast


class UnusedFeature(Rule):
    """## What it does
    Flags a declared feature that no value, condition, sequence or output reads.

    ## Why is this bad?
    Every feature is an input of every artifact (and often a table): an unused one costs memory and
    serving bandwidth, and usually means a typo elsewhere.

    ## Example
    ```
    feature price : numeric
    x = concat(user_id, item_id)
    ```

    ## Use instead
    ```
    x = concat(user_id, item_id, price)
    ```
    """

    code = "DW501"

    def check(self, ctx):
        referenced = {ref for stmt in ctx.spec.statements for ref in refs(stmt)}
        for stmt in ctx.spec.statements:
            if isinstance(stmt, ast.ScenarioDecl):
                referenced.update(n.text for n in stmt.features)
        for stmt in ctx.spec.statements:
            if isinstance(stmt, ast.FeatureDecl) and stmt.name.text not in referenced:
                yield self.diag(f"feature '{stmt.name.text}' is never used", Label(stmt.name.span,
                                "declared here, read nowhere"),
                                "use it in a value or condition, or remove the declaration",
                                fixes=(remove_statement(ctx.source.text, stmt, "the declaration of "
                                                        f"'{stmt.name.text}'"),))
