"""DW506 rank-saves-nothing."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.lint.rules.base import Rule, apg_layers


class RankSavesNothing(Rule):
    """## What it does
    Flags an APG rank K with K (N + M) >= N M.

    ## Why is this bad?
    The factors U (N x K) and V (K x M) then hold more numbers than W itself.

    ## Example
    ```
    h = linear(x, 32) dynamic(by = z) apg(rank = 32)
    ```

    ## Use instead
    ```
    h = linear(x, 32) dynamic(by = z) apg(rank = 8)
    ```
    """

    code = "DW506"

    def check(self, ctx):
        for op in apg_layers(ctx):
            n, m, k = op.in_features, op.out_features, op.rank
            if k * (n + m) >= n * m:
                best = max(1, (n * m) // (2 * (n + m)))
                yield self.diag(
                    f"rank {k} of a {n} -> {m} layer saves nothing: factors hold {k * (n + m):,} "
                    f"numbers, the full matrix {n * m:,}", Label(op.span, f"layer {op.layer or 0}"),
                    f"use a rank below {n * m // (n + m)} (e.g. {best}), or a static layer")
