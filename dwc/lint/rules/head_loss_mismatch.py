"""DW512 head-loss-mismatch."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.lint.rules.base import Rule
from dwc.parse import ast
from dwc.sema.signatures import LOSSES


class HeadLossMismatch(Rule):
    """## What it does
    Flags an output whose head does not fit its loss (sigmoid with ce, Poisson without exp).

    ## Why is this bad?
    The loss is computed from the head's logit: a mismatched pair trains the wrong objective (e.g.
    Poisson on an unconstrained rate).

    ## Example
    ```
    output clicks = identity(linear(h, 1)) loss = poisson
    ```

    ## Use instead
    ```
    output clicks = exp(linear(h, 1)) loss = poisson
    ```
    """

    code = "DW512"

    def check(self, ctx):
        for out, stmt in zip(ctx.graph.outputs, (s for s in ctx.spec.statements
                                                  if isinstance(s, ast.OutputDecl)), strict=True):
            expected = LOSSES[out.loss]
            if out.head != expected:
                label = Label(stmt.loss.span if stmt.loss else stmt.span, f"loss {out.loss}")
                yield self.diag(
                    f"output '{out.name}' uses the {out.head} head, but loss {out.loss} expects "
                    f"{expected}", label,
                    f"write '{expected}(...)' for loss {out.loss}, or the loss that fits "
                    f"{out.head}: " + next(k for k, v in LOSSES.items() if v == out.head),
                    Label(stmt.value.span, f"{out.head} head"))
