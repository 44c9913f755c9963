"""DW507 overparam-below-rank."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.lint.rules.base import Rule, apg_layers


class OverparamBelowRank(Rule):
    """## What it does
    Flags over-parameterisation P smaller than the rank K.

    ## Why is this bad?
    U = U_l U_r through P < K has rank at most P: it shrinks the factors' capacity, the opposite of
    over-parameterisation.

    ## Example
    ```
    apg(rank = 16, overparam = 8)
    ```

    ## Use instead
    ```
    apg(rank = 16, overparam = 4x)
    ```
    """

    code = "DW507"

    def check(self, ctx):
        for op in apg_layers(ctx):
            if op.overparam and op.overparam < op.rank:
                yield self.diag(f"overparam width {op.overparam} is below rank {op.rank}",
                                Label(op.span, f"layer {op.layer or 0}"),
                                f"use overparam >= {op.rank} (e.g. {2 * op.rank} or '2x'), or none")
