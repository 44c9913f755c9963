"""HMoE's lint rules (listed in the kind's `lint_rules`, documented in docs/lint.md from their
docstrings like dwc/lint/rules/*.py)."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.layers.hmoe.op import Hmoe, mlp_flops
from dwc.lint.rules.base import Rule, calls


def _hmoe_calls(ctx):
    """(op, its call in the spec) for every hmoe layer."""
    found = {}
    for stmt in ctx.spec.statements:
        for call in calls(getattr(stmt, "value", None)):
            if call.func.text == "hmoe":
                found[call.span] = call
    for op in ctx.graph.ops:
        if isinstance(op, Hmoe):
            yield op, found[op.span]


def _option(call, name: str):
    """The span of a call's option `name = ...`, else the call's."""
    return next((kw.span for kw in call.kwargs if kw.name.text == name), call.span)


class HmoeManyScenarios(Rule):
    """## What it does
    Flags an `hmoe` whose gates and towers, one per id of `by`, cost more per sample than its
    shared experts.

    ## Why is this bad?
    The fusion of scenario d reads every scenario's tower output, so every sample runs all T
    gates and towers: that part grows linearly with the number of ids, while the experts and
    the sample's own fusion net and head do not. Past the experts' cost, most of the compute
    goes into scenarios the sample is not in.

    ## Example
    ```
    feature city : categorical(vocab = 300, dim = 8) scenario
    y = hmoe(concat(user_id, city), by = city)
    ```

    ## Use instead
    ```
    feature region : categorical(vocab = 6, dim = 8) scenario
    y = hmoe(concat(user_id, region), by = region)
    ```
    """

    code = "DW516"

    def check(self, ctx):
        producers = ctx.graph.producers()
        for op, call in _hmoe_calls(ctx):
            per_scenario = op.heads * (
                mlp_flops((op.in_features, *op.gate)) + 2 * op.gate[-1] * op.experts
                + 2 * op.experts * op.expert_dim + mlp_flops((op.expert_dim, *op.tower)))
            experts = producers[op.inputs[2]].flops()
            if per_scenario > experts:
                yield self.diag(
                    f"'{op.binding}' runs the gates and towers of all {op.heads} scenarios on "
                    f"every sample: {per_scenario:,} FLOPs per sample, more than its experts' "
                    f"{experts:,}",
                    Label(_option(call, "by"), f"{op.heads} ids"),
                    "group the scenarios into fewer ids, narrow 'gate' and 'tower', or use a "
                    "layer that computes only the sample's own domain ('star', "
                    "'linear(..., per = ...)')")


class HmoeSingleExpert(Rule):
    """## What it does
    Flags an `hmoe` with `experts = 1`.

    ## Why is this bad?
    Each gate is a softmax over the experts: over one expert it is always 1, so the gates'
    parameters never get a gradient and every scenario's tower reads the same shared bottom.
    The scenarios then differ only in their towers and fusion.

    ## Example
    ```
    y = hmoe(x, by = scenario, experts = 1)
    ```

    ## Use instead
    ```
    y = hmoe(x, by = scenario, experts = 4)
    ```
    """

    code = "DW517"

    def check(self, ctx):
        for op, call in _hmoe_calls(ctx):
            if op.experts == 1:
                yield self.diag(
                    f"'{op.binding}' has one expert: its {op.heads} gates are constant",
                    Label(_option(call, "experts"), "one expert"),
                    "use several experts, e.g. 'experts = 4' (the default), or drop the gates "
                    "with 'mlp' under per-domain towers")
