"""DW508 generated-tensor-too-large."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.ir import ops as ir
from dwc.lint.rules.base import Rule


class GeneratedTensorTooLarge(Rule):
    """## What it does
    Flags a full-rank dynamic layer whose generated weights at the reference batch exceed the
    memory budget (`--batch`, `memory-budget-mib`).

    ## Why is this bad?
    B x N x M floats are generated per step and kept for backward (docs/models.md, 'Generic
    dynamic-weight MLP').

    ## Example
    ```
    h = linear(x, 1024) dynamic(by = z)
    ```

    ## Use instead
    ```
    h = linear(x, 1024) dynamic(by = z) apg(rank = 32)
    ```
    """

    code = "DW508"

    def check(self, ctx):
        budget = ctx.memory_budget_mib * 2**20
        for op in ctx.model.ops:
            if not isinstance(op, ir.DynamicLinear):
                continue
            n, m = op.in_features, op.out_features
            size = 4 * ctx.batch * n * m
            if size > budget:
                k = max(1, min(n, m) // 8)
                apg = 4 * ctx.batch * k * k
                yield self.diag(
                    f"the generated {n} x {m} weights of '{op.binding}' take "
                    f"{size / 2**20:,.0f} MiB at batch {ctx.batch} (budget "
                    f"{ctx.memory_budget_mib:,} MiB)", Label(op.span, "full-rank dynamic layer"),
                    f"add 'apg(rank = {k})': only the {k} x {k} core is generated "
                    f"({apg / 2**20:,.1f} MiB at batch {ctx.batch})")
