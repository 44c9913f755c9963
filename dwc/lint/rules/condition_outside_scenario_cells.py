"""DW514 condition-outside-scenario-cells."""

from __future__ import annotations

from dataclasses import dataclass

from dwc.cost import Cost
from dwc.diagnostics import Diagnostic, Edit, Fix, Label
from dwc.ir.graph import Graph
from dwc.lint.rules.base import (
    LintContext,
    Rule,
    edit,
    feature_reads,
    inference_cost,
    mark_span,
    ref_nodes,
    without_marks,
)
from dwc.parse import ast
from dwc.source import Span


class ConditionOutsideScenarioCells(Rule):
    """## What it does
    Flags a condition that reads a categorical scenario feature missing from `scenarios`, when
    adding it there would let the -O2 scenario folds (fold-scenario-table, fold-scenario-layers)
    apply; the message gives the inference FLOPs per sample of both forms, from the cost model.

    ## Why is this bad?
    Only a condition that is a function of the scenario cell is precomputed per cell: otherwise
    every generator or gate it drives runs for every sample at serving time, often several times
    the FLOPs of the folded model.

    ## Example
    ```
    feature page : categorical(vocab = 3, dim = 4) scenario
    scenarios country
    condition z = concat(country, page)
    ```

    ## Use instead
    ```
    scenarios country * page
    condition z = concat(country, page)
    ```
    """

    code = "DW514"

    def check(self, ctx):
        decls = {s.name.text: s for s in ctx.spec.statements if isinstance(s, ast.FeatureDecl)}
        for stmt in ctx.spec.statements:
            if not isinstance(stmt, ast.ConditionDecl) or (fix := cells_fix(ctx, stmt)) is None:
                continue
            missing, before, after = fix.missing, fix.before, fix.after
            names = ", ".join(f"'{f}'" for f in missing)
            first = next((r for r in ref_nodes(stmt.value) if r.name in missing), stmt.name)
            secondary = (Label(fix.cells_decl.span, "the scenario cells") if fix.cells_decl else
                         Label(decls[missing[0]].scenario, "marked scenario here"))
            dropped = ctx.recheck(without_marks(ctx.source.text, [decls[f] for f in missing]))
            alternative = (f"drop the 'scenario' mark of {names}" if not isinstance(
                dropped, Diagnostic) else f"suppress this with '# dwc: ignore[{self.code}]'")
            plural = len(missing) > 1
            fixes = [Fix(f"add {names} to the cells: '{fix.line}'", fix.edits)]
            if not isinstance(dropped, Diagnostic):
                fixes.append(Fix(f"drop the 'scenario' mark of {names}", tuple(
                    Edit(mark_span(ctx.source.text, decls[f]), "") for f in missing)))
            yield self.diag(
                f"condition '{stmt.name.text}' reads scenario feature{'s' * plural} {names}, "
                + ("which 'scenarios' omits" if ctx.graph.scenario else
                   "and no 'scenarios' declares cells")
                + ": its generators and gates cannot fold into per-cell tables "
                f"({before.flops_per_sample:,} FLOPs/sample at inference instead of "
                f"{after.flops_per_sample:,})",
                Label(first.span, "not in 'scenarios'"),
                f"add {'them' if plural else 'it'} to the cells: '{fix.line}'{fix.where} "
                f"({fix.graph.scenario_cells:,} cells; inference params "
                f"{before.params:,} -> {after.params:,}); or, if '{stmt.name.text}' is meant to "
                f"vary per sample, {alternative}", secondary, fixes=tuple(fixes))


@dataclass(frozen=True)
class CellsFix:
    """Adding the categorical scenario features a condition reads to `scenarios`, checked."""

    missing: list[str]
    """The features added, in declaration order."""
    line: str
    """The new declaration, e.g. `scenarios country * page`."""
    where: str
    """Where it goes when the old one must move (" below the declaration of 'page'"), or ""."""
    cells_decl: ast.ScenarioDecl | None
    """The declaration it replaces."""
    text: str
    """The spec with the fix applied."""
    edits: tuple[Edit, ...]
    """The same change as edits of the original text."""
    graph: Graph
    """The fixed spec's lowered graph."""
    before: Cost
    after: Cost
    """Inference costs of the spec and of the fixed spec."""


def cells_fix(ctx: LintContext, stmt: ast.ConditionDecl) -> CellsFix | None:
    """What DW514 asks for a condition: its foldable scenario features added to `scenarios`, when
    that is a valid spec whose -O2 inference costs fewer FLOPs per sample; None otherwise."""
    cells = ctx.graph.scenario
    decls = {s.name.text: s for s in ctx.spec.statements if isinstance(s, ast.FeatureDecl)}
    foldable = {s.feature for s in ctx.graph.inputs if s.scenario and s.role == "ids"
                and decls[s.feature].kind.func.text == "categorical"}
    cells_decl = next((s for s in ctx.spec.statements if isinstance(s, ast.ScenarioDecl)), None)
    reads = feature_reads(ctx.spec, set(decls))
    missing = [f for f in decls if f in reads[stmt.name.text] & foldable and f not in cells]
    if not missing:
        return None
    line = "scenarios " + " * ".join((*cells, *missing))
    last = max((decls[f] for f in missing), key=lambda d: d.span.start)
    moved = cells_decl is not None and last.span.start > cells_decl.span.start
    edited = ctx.source.text
    if cells_decl is not None and not moved:
        edited = edit(edited, cells_decl.span, line)
        edits = (Edit(cells_decl.span, line),)
    else:  # a new declaration above the condition (and below the features it names)
        edited = edit(edited, Span(stmt.span.start, stmt.span.start), line + "\n")
        edits = (Edit(Span(stmt.span.start, stmt.span.start), line + "\n"),)
        if moved:  # the old one goes (it lies above the condition: offsets hold)
            end = cells_decl.span.end
            end += edited[end:end + 1] == "\n"
            edited = edit(edited, Span(cells_decl.span.start, end), "")
            edits = (Edit(Span(cells_decl.span.start, end), ""), *edits)
    where = f" below the declaration of '{last.name.text}'" if moved else ""
    checked = ctx.recheck(edited)
    if isinstance(checked, Diagnostic):
        return None  # adding them is not a valid fix: nothing to advise
    before, after = ctx.inference_cost, inference_cost(checked[1])
    if after.flops_per_sample >= before.flops_per_sample:
        return None  # the fold still does not apply (other inputs, too many cells)
    return CellsFix(missing, line, where, cells_decl, edited, edits, checked[1], before, after)
