"""DW503 condition-without-scenario."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.ir import ops as ir
from dwc.lint.rules.base import Rule


class ConditionWithoutScenario(Rule):
    """## What it does
    Notes a dynamic layer conditioned only on its own input (self-wise).

    ## Why is this bad?
    Self-wise weights follow each sample, not the scenario; right for APG self-wise, wrong when
    per-scenario adaptation was the goal.

    ## Example
    ```
    h = mlp(x, [64]) dynamic(by = self)
    ```

    ## Use instead
    ```
    h = mlp(x, [64]) dynamic(by = concat(self, z))
    ```
    """

    code = "DW503"

    def check(self, ctx):
        scenario = ctx.scenario_features()
        for op in ctx.model.ops:
            if isinstance(op, ir.Generator) and not ctx.model.source_features(op.inputs[0]) \
                    & scenario:
                yield self.diag(f"the dynamic weights of '{op.binding}' depend on no scenario "
                                "feature", Label(op.span, "conditioned on its own input"),
                                "intended for APG self-wise; for scenario adaptation write "
                                "'by = z' with a scenario condition (or 'concat(self, z)')")
