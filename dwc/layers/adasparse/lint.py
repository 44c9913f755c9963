"""AdaSparse's lint rules (run by `dwc lint` through `Kind.lint_rules`, documented in
docs/lint.md from the class docstrings)."""

from __future__ import annotations

from collections.abc import Iterator

from dwc.diagnostics import Label
from dwc.layers.adasparse.op import AdaSparsePruner
from dwc.lint.rules.base import LintContext, Rule, calls, edit, feature_reads, refs
from dwc.parse import ast


def _adasparse_calls(ctx: LintContext) -> Iterator[tuple[str, ast.Call]]:
    """(binding, call) of every adasparse call in the spec, in source order."""
    for stmt in ctx.spec.statements:
        for call in calls(getattr(stmt, "value", None)):
            if call.func.text == "adasparse":
                yield stmt.name.text, call


def _option(call: ast.Call, name: str) -> ast.Kwarg | None:
    return next((kw for kw in call.kwargs if kw.name.text == name), None)


def _pruner_flops(ctx: LintContext, binding: str) -> int:
    return sum(op.flops() for op in ctx.graph.ops
               if isinstance(op, AdaSparsePruner) and op.binding == binding)


class AdasparseConditionNotPerDomain(Rule):
    """## What it does
    Flags an adasparse network whose pruners score the domain condition alone (`reads = domain`,
    the default) when that condition depends on features that are not scenario features.

    ## Why is this bad?
    AdaSparse learns one sparse structure per domain: pruners that read only the domain's
    features are a function of the scenario cell, which serving looks up in a per-cell table of
    factors. A condition that also reads per-sample features makes every sample's structure its
    own, and serving scores every pruner for every sample.

    ## Example
    ```
    condition e = concat(domain, user_id)
    h = adasparse(x, [64, 32], by = e)
    ```

    ## Use instead
    ```
    condition e = concat(domain)
    h = adasparse(x, [64, 32], by = e)
    ```
    """

    code = "DW518"

    def check(self, ctx):
        features = {s.name.text for s in ctx.spec.statements if isinstance(s, ast.FeatureDecl)}
        reads = feature_reads(ctx.spec, features)
        scenario = ctx.scenario_features()
        for binding, call in _adasparse_calls(ctx):
            by, mode = _option(call, "by"), _option(call, "reads")
            if by is None or (isinstance(mode, ast.Kwarg) and isinstance(mode.value, ast.Ref)
                              and mode.value.name != "domain"):
                continue  # reads the activations: DW519's case
            read = set().union(*(reads.get(name, set()) for name in refs(by.value)))
            others = sorted(read - scenario)
            if not others:
                continue
            names = ", ".join(f"'{f}'" for f in others)
            yield self.diag(
                f"the pruners of '{binding}' read {names}, which {'is' if len(others) == 1 else 'are'}"
                f" not a scenario feature: every sample gets its own sparse structure and serving "
                f"scores every pruner for every sample ({_pruner_flops(ctx, binding):,} FLOPs)",
                Label(by.value.span, "reads per-sample features"),
                "condition the pruners on scenario features only (e.g. 'condition e = "
                "concat(domain)'): one sparse structure per domain, looked up in a table at "
                "serving")


class AdasparsePrunerReadsActivations(Rule):
    """## What it does
    Notes an adasparse network whose pruners read the activations they gate as well as the
    domain (`reads = domain_and_hidden`, the public port's form), with the inference FLOPs per
    sample of both forms.

    ## Why is this bad?
    The paper's pruners give each domain its own sparse structure; scored from the activations,
    the factors differ for every sample, and serving computes a width x width product per layer
    and sample that a per-domain table of factors would replace.

    ## Example
    ```
    h = adasparse(x, [64, 32], by = e, reads = domain_and_hidden)
    ```

    ## Use instead
    ```
    h = adasparse(x, [64, 32], by = e)
    ```
    """

    code = "DW519"

    def check(self, ctx):
        for binding, call in _adasparse_calls(ctx):
            mode = _option(call, "reads")
            if mode is None or not isinstance(mode.value, ast.Ref) \
                    or mode.value.name != "domain_and_hidden":
                continue
            edited = ctx.edited(edit(ctx.source.text, mode.span, "reads = domain"))
            flops = "" if not isinstance(edited, LintContext) else (
                f" (inference {ctx.inference_cost.flops_per_sample:,} FLOPs per sample, "
                f"{edited.inference_cost.flops_per_sample:,} with reads = domain)")
            yield self.diag(
                f"the pruners of '{binding}' also read the activations they gate (the public "
                "port's form): the factors differ per sample, not per domain",
                Label(mode.span, "implementation variant"),
                "keep it to match that implementation, or drop it for the paper's per-domain "
                f"structure{flops}")
