"""DW511 gate-without-stop-gradient."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.ir import ops as ir
from dwc.lint.rules.base import Rule


class GateWithoutStopGradient(Rule):
    """## What it does
    Notes a gate whose condition reads the gated value without stop_gradient.

    ## Why is this bad?
    PEPNet stops gradients from the gate network into the embeddings it gates, so the gate cannot
    pull the shared representation towards itself (anti-seesaw).

    ## Example
    ```
    condition g = concat(domain, e)
    ep = gate(e, by = g)
    ```

    ## Use instead
    ```
    condition g = concat(domain, stop_gradient(e))
    ```
    """

    code = "DW511"

    def check(self, ctx):
        g = ctx.model
        for op in g.ops:
            if not isinstance(op, ir.Gate):
                continue
            gated, condition = op.inputs
            if gated in g.ancestors(condition, stop=ir.StopGradient):
                yield self.diag(
                    f"the gate of '{op.binding}' reads the value it gates without "
                    "stop_gradient", Label(op.span, "gate"),
                    "wrap it: concat(..., stop_gradient(x)) as PEPNet does")
