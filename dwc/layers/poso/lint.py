"""POSO's lint rules: a personalisation code on a huge-vocabulary id (DW524) and gates that
cannot amplify (DW525). Each finds the `poso`/`poso_experts` calls of the spec and the gate ops
lowered from them (they carry the call's span)."""

from __future__ import annotations

from collections.abc import Iterator

from dwc.diagnostics import Label
from dwc.ir import ops as ir
from dwc.lint.rules.base import LintContext, Rule, calls
from dwc.parse import ast

POSO_CALLS = ("poso", "poso_experts")


def poso_calls(ctx: LintContext) -> Iterator[tuple[ast.Call, list[ir.Op]]]:
    """Every `poso`/`poso_experts` call with the gate ops (Gate NUs, ExpertGates) it lowered to."""
    gates = [op for op in ctx.graph.ops if isinstance(op, ir.Gate | ir.ExpertGates)]
    for stmt in ctx.spec.statements:
        for call in calls(getattr(stmt, "value", None)):
            if call.func.text in POSO_CALLS:
                yield call, [op for op in gates if op.span == call.span]


def option(call: ast.Call, name: str) -> ast.Kwarg | None:
    return next((kw for kw in call.kwargs if kw.name.text == name), None)


class PosoCodeOnHugeVocabulary(Rule):
    """## What it does
    Flags a POSO gate whose personalisation code reads an id with a very large vocabulary.

    ## Why is this bad?
    POSO's code describes user groups (new or regular user, activity level, registration age) so
    that a cold-start user gets the gates of the group. An id like `user_id` makes every gate a
    per-id embedding, which is untrained for exactly the new users POSO is for, and the gates
    run per sample instead of being served from a per-group table.

    ## Example
    ```
    condition pc = concat(user_id, new_user)
    h = poso(x, [64, 32], by = pc)
    ```

    ## Use instead
    ```
    condition pc = concat(new_user, activity)
    h = poso(x, [64, 32], by = pc)
    ```
    """

    code = "DW524"

    def check(self, ctx):
        for call, gates in poso_calls(ctx):
            if not gates:
                continue
            features = ctx.graph.source_features(gates[0].inputs[1])
            huge = [(f, ctx.vocab(f)) for f in sorted(features)
                    if (ctx.vocab(f) or 0) > ctx.huge_vocab]
            if not huge:
                continue
            feature, vocab = huge[0]
            by = option(call, "by")
            decl = ctx.feature_decl(feature)
            yield self.diag(
                f"the personalisation code of '{call.func.text}' reads '{feature}' "
                f"({vocab:,} ids)", Label(by.span if by else call.span,
                                          "gates per id, not per user group"),
                f"build the code from user-group features with few values (<= "
                f"{ctx.huge_vocab:,} ids): new or regular user, activity level; an id prior "
                "belongs in the main input or a ppnet gate",
                *((Label(decl.span, "declared here"),) if decl else ()))


class PosoGateCannotAmplify(Rule):
    """## What it does
    Flags a `poso` or `poso_experts` whose gate range `gamma` is at most 1.

    ## Why is this bad?
    A POSO gate is gamma * sigmoid(...) in (0, gamma) and starts near gamma / 2. With gamma <= 1
    it can only damp a unit, never amplify it for a user group, and every gated layer starts at
    half its scale or less, which compounds over a stack. POSO's C is 2: a gate starts at about 1.

    ## Example
    ```
    h = poso(x, [64, 32], by = pc, gamma = 1)
    ```

    ## Use instead
    ```
    h = poso(x, [64, 32], by = pc)
    ```
    """

    code = "DW525"

    def check(self, ctx):
        for call, gates in poso_calls(ctx):
            kw = option(call, "gamma")
            if kw is None or not gates or gates[0].gamma > 1:
                continue
            layers = len(gates) if call.func.text == "poso" else 1
            start = (gates[0].gamma / 2) ** layers
            yield self.diag(
                f"gates of '{call.func.text}' lie in (0, {gates[0].gamma:g}): they can only damp",
                Label(kw.span, "cannot amplify"),
                f"write gamma = 2 (POSO's C; gates start at about 1); here the output starts "
                f"scaled by about {start:.3g}")
