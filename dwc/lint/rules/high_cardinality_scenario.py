"""DW505 high-cardinality-scenario."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.lint.rules.base import Rule


class HighCardinalityScenario(Rule):
    """## What it does
    Flags a categorical feature with a huge vocabulary marked `scenario`.

    ## Why is this bad?
    Scenarios are few (countries, surfaces, user types); an id marked scenario makes every
    per-scenario table and metric explode. PEPNet's priors are the deliberate exception.

    ## Example
    ```
    feature user_id : categorical(vocab = 1_000_000, dim = 16) scenario
    ```

    ## Use instead
    ```
    feature user_id : categorical(vocab = 1_000_000, dim = 16)
    ```
    """

    code = "DW505"

    def check(self, ctx):
        for spec in ctx.graph.inputs:
            if spec.scenario and spec.vocab and spec.vocab > ctx.scenario_max_vocab \
                    and spec.role == "ids":
                decl = ctx.feature_decl(spec.feature)
                yield self.diag(
                    f"'{spec.feature}' has {spec.vocab:,} ids but is marked scenario-sensitive",
                    Label(decl.scenario or decl.name.span, "scenario mark"),
                    f"scenario features define cells (keep them under "
                    f"{ctx.scenario_max_vocab:,} ids); for id priors (PEPNet) suppress this "
                    "with '# dwc: ignore[DW505]'")
