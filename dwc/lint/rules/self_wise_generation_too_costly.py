"""DW509 self-wise-generation-too-costly."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.ir import ops as ir
from dwc.lint.rules.base import Rule


class SelfWiseTooCostly(Rule):
    """## What it does
    Flags a self-wise generator that costs more FLOPs than a dense layer of the same shape.

    ## Why is this bad?
    With d_z = N a linear generator costs N K^2 MACs per sample (N M at full rank): the dynamic
    layer is then slower than the static one it adapts (docs/models.md, 'APG').

    ## Example
    ```
    h = linear(x, 256) dynamic(by = self) apg(rank = 64)
    ```

    ## Use instead
    ```
    h = linear(x, 256) dynamic(by = self) apg(rank = 8)
    ```
    """

    code = "DW509"

    def check(self, ctx):
        producers = ctx.model.producers()
        for op in ctx.model.ops:
            if not isinstance(op, ir.DynamicLinear | ir.LowRankDynamicLinear):
                continue
            gen = producers[op.inputs[1]]
            if not isinstance(gen, ir.Generator) or gen.inputs[0] != op.inputs[0]:
                continue  # not self-wise
            n, m = op.in_features, op.out_features
            dense = 2 * n * m
            if gen.flops() <= dense:
                continue
            if op.layer:  # one of an mlp's layers, all at the statement's span: name it
                what = f"layer {int(op.layer) + 1} ({n} -> {m}) of '{op.binding}'"
                than, label = f"a dense layer of that shape ({dense:,})", \
                    f"self-wise generator of layer {int(op.layer) + 1}"
            else:
                what, than, label = f"'{op.binding}'", f"a dense {n} -> {m} layer ({dense:,})", \
                    "self-wise generator"
            yield self.diag(
                f"self-wise generation of {what} costs {gen.flops():,} FLOPs per sample, more "
                f"than {than}", Label(gen.span, label),
                "lower the rank, condition on a narrow scenario condition (group-wise), or use a "
                "static layer")
