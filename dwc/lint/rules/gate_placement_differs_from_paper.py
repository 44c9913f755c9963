"""DW510 gate-placement-differs-from-paper."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.lint.rules.base import Rule, calls
from dwc.parse import ast


class GatePlacementDiffersFromPaper(Rule):
    """## What it does
    Notes a PPNet tower whose gates sit elsewhere than the paper's (pre-linear).

    ## Why is this bad?
    Public implementations disagree on placement (docs/models.md); results are not comparable with
    the paper's unless the placement is.

    ## Example
    ```
    t = ppnet(e, [64], by = prior, placement = post_dropout)
    ```

    ## Use instead
    ```
    t = ppnet(e, [64], by = prior)
    ```
    """

    code = "DW510"

    def check(self, ctx):
        for stmt in ctx.spec.statements:
            value = getattr(stmt, "value", None)
            for call in calls(value):
                if call.func.text != "ppnet":
                    continue
                for kw in call.kwargs:
                    if kw.name.text == "placement" and isinstance(kw.value, ast.Ref) \
                            and kw.value.name != "pre_linear":
                        yield self.diag(
                            f"PPNet gates at '{kw.value.name}'; the PEPNet paper gates each "
                            "layer's input (pre_linear)", Label(kw.span, "implementation variant"),
                            "keep it to match that implementation (docs/models.md lists them), "
                            "or use placement = pre_linear for the paper's form")
