"""DW502 scenario-feature-without-condition."""

from __future__ import annotations

from dwc.diagnostics import Diagnostic, Label
from dwc.lint.rules.base import LintContext, Rule, condition_features, edit, ref_nodes, without_mark
from dwc.parse import ast
from dwc.source import Span


class ScenarioFeatureWithoutCondition(Rule):
    """## What it does
    Flags a feature marked `scenario` that no condition, gate or domain reads and that does not
    define the scenario cells (`scenarios`).

    ## Why is this bad?
    The mark promises that the model adapts to it; if nothing reads it, the model does not. (A
    feature named in `scenarios` is used: it numbers the cells of per-scenario tables and metrics,
    as in a shared-MLP baseline.)

    ## Example
    ```
    feature page : categorical(vocab = 3, dim = 4) scenario
    condition z = concat(country)
    ```

    ## Use instead
    ```
    condition z = concat(country, page)
    ```
    """

    code = "DW502"

    def check(self, ctx):
        used = set(condition_features(ctx.model)) | set(ctx.graph.scenario)
        for name in sorted(ctx.scenario_features()):
            decl = ctx.feature_decl(name)
            if name not in used and decl is not None and decl.scenario is not None:
                yield self.diag(
                    f"scenario-sensitive feature '{name}' conditions nothing",
                    Label(decl.scenario, "marked scenario here"), _mark_advice(ctx, decl))


def _mark_advice(ctx: LintContext, decl: ast.FeatureDecl) -> str:
    """How to resolve DW502: each edit offered verbatim is checked on an edited copy of the spec,
    so following it cannot produce an error (dropping the mark fails, e.g., when a condition reads
    no other scenario feature: DW314)."""
    from dwc.driver import optimize

    name = decl.name.text
    text = ctx.source.text
    options = []
    for stmt in ctx.spec.statements:
        value = getattr(stmt, "value", None)
        if not isinstance(stmt, ast.ConditionDecl) or not isinstance(value, ast.Call) \
                or value.func.text not in ("concat", "fields") or value.modifiers \
                or name in {r.name for r in ref_nodes(value)} \
                or text[value.span.end - 1] != ")":
            continue
        edited = edit(text, Span(value.span.end - 1, value.span.end), f", {name})")
        checked = ctx.recheck(edited)
        if not isinstance(checked, Diagnostic) \
                and name in condition_features(optimize(checked[1], level=0)[0]):
            new = edited[stmt.span.start:stmt.span.end + len(name) + 2]
            options.append(f"read it in condition '{stmt.name.text}': '{new}'")
            break
    else:
        options.append("read it in a condition that a dynamic layer or gate uses")
    dropped = ctx.recheck(without_mark(text, decl))
    if isinstance(dropped, Diagnostic):
        options.append(f"(dropping the 'scenario' mark alone would give {dropped.code}: "
                       f"{dropped.message})")
        return " ".join(options)
    options.append("drop the 'scenario' mark if it is an ordinary input")
    return ", or ".join(options)
