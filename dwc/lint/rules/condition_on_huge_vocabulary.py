"""DW504 condition-on-huge-vocabulary."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.ir import ops as ir
from dwc.lint.rules.base import Rule


class ConditionOnHugeVocabulary(Rule):
    """## What it does
    Flags a generator whose condition reads an id with a very large vocabulary.

    ## Why is this bad?
    Generated weights are then different for almost every sample: generation runs per sample and
    cannot be precomputed per scenario cell.

    ## Example
    ```
    condition z = concat(user_id)
    h = mlp(x, [64]) dynamic(by = z)
    ```

    ## Use instead
    ```
    condition z = concat(country, page)  # or gate(x, by = user-side priors)
    ```
    """

    code = "DW504"

    def check(self, ctx):
        for op in ctx.model.ops:
            if not isinstance(op, ir.Generator):
                continue
            for feature in sorted(ctx.model.source_features(op.inputs[0])):
                vocab = ctx.vocab(feature)
                if vocab and vocab > ctx.huge_vocab:
                    yield self.diag(
                        f"the generator of '{op.binding}' reads '{feature}' ({vocab:,} ids)",
                        Label(op.span, "generation runs for every sample"),
                        f"condition on low-cardinality scenario features (<= {ctx.huge_vocab:,} "
                        "ids) so the generator folds into a per-scenario table, or use a gate "
                        "for id priors")
                    break
