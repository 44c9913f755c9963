"""DW502 scenario-feature-without-condition."""

from __future__ import annotations

from dwc.diagnostics import Diagnostic, Edit, Fix, Label
from dwc.lint.rules.base import (
    LintContext,
    Rule,
    condition_features,
    drop_mark,
    edit,
    ref_nodes,
    without_mark,
)
from dwc.lint.rules.condition_outside_scenario_cells import cells_fix
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
                advice, fixes = _mark_advice(ctx, decl)
                yield self.diag(
                    f"scenario-sensitive feature '{name}' conditions nothing",
                    Label(decl.scenario, "marked scenario here"), advice, fixes=fixes)


def _mark_advice(ctx: LintContext, decl: ast.FeatureDecl) -> tuple[str, tuple[Fix, ...]]:
    """How to resolve DW502: each edit offered verbatim is checked on an edited copy of the spec,
    so following it cannot produce an error (dropping the mark fails, e.g., when a condition reads
    no other scenario feature: DW314), and linted: where reading the feature in a condition makes
    DW514 ask to add it to `scenarios`, the advice says so too, and both edits together are
    checked to leave neither finding. Returns the help line and, as structured fixes, the
    single edits it offers (reading the feature in a condition, dropping the mark)."""
    name = decl.name.text
    text = ctx.source.text
    options = []
    fixes = []
    for stmt in ctx.spec.statements:
        value = getattr(stmt, "value", None)
        if not isinstance(stmt, ast.ConditionDecl) or not isinstance(value, ast.Call) \
                or value.func.text not in ("concat", "fields") or value.modifiers \
                or name in {r.name for r in ref_nodes(value)} \
                or text[value.span.end - 1] != ")":
            continue
        edited = edit(text, Span(value.span.end - 1, value.span.end), f", {name})")
        copy = ctx.edited(edited)
        if isinstance(copy, Diagnostic) or name not in condition_features(copy.model):
            continue
        new = edited[stmt.span.start:stmt.span.end + len(name) + 2]
        option = f"read it in condition '{stmt.name.text}': '{new}'"
        read = Edit(Span(value.span.end - 1, value.span.end), f", {name})")
        # reading a categorical scenario feature in a condition that folds per cell unfolds it
        # unless `scenarios` names the feature (DW514): then the advice adds it there too
        fix = cells_fix(copy, _condition(copy, stmt.name.text))
        if fix is not None:
            fixed = ctx.edited(fix.text)
            if isinstance(fixed, Diagnostic) or name not in condition_features(fixed.model) \
                    or cells_fix(fixed, _condition(fixed, stmt.name.text)) is not None:
                continue  # the pair of edits does not resolve both: not offered
            plural = len(fix.missing) > 1
            option += (f" and add {'them' if plural else 'it'} to the cells: '{fix.line}'"
                       f"{fix.where} (without it '{stmt.name.text}' cannot fold per "
                       "cell: DW514)")
            if all(e.span.end <= read.span.start for e in fix.edits):  # valid on this text too
                fixes.append(Fix(f"read '{name}' in condition '{stmt.name.text}' and add "
                                 f"{'them' if plural else 'it'} to the cells",
                                 (*fix.edits, read)))
        else:
            fixes.append(Fix(f"read '{name}' in condition '{stmt.name.text}'", (read,)))
        options.append(option)
        break
    else:
        options.append("read it in a condition that a dynamic layer or gate uses")
    dropped = ctx.recheck(without_mark(text, decl))
    if isinstance(dropped, Diagnostic):
        options.append(f"(dropping the 'scenario' mark alone would give {dropped.code}: "
                       f"{dropped.message})")
        return " ".join(options), tuple(fixes)
    options.append("drop the 'scenario' mark if it is an ordinary input")
    fixes.append(drop_mark(text, decl))
    return ", or ".join(options), tuple(fixes)


def _condition(ctx: LintContext, name: str) -> ast.ConditionDecl:
    return next(s for s in ctx.spec.statements
                if isinstance(s, ast.ConditionDecl) and s.name.text == name)
