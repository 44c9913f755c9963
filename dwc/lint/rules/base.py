"""What every lint rule shares: the context a rule sees (`LintContext`), the `Rule` base class with
its documentation format, and helpers over the AST and the IR that several rules use.

A rule is a subclass of `Rule` in its own module of dwc/lint/rules/ (named after the rule's
registered name, docs/lint.md's sections generated from its docstring), ruff's layout:

    class UnusedFeature(Rule):
        \"\"\"## What it does
        Flags a declared feature that no value reads.

        ## Why is this bad?
        ...

        ## Example
        ```
        feature price : numeric
        ```

        ## Use instead
        ```
        x = concat(user_id, price)
        ```
        \"\"\"

        code = "DW501"

        def check(self, ctx):
            yield self.diag(...)

The prose sections are joined into one paragraph (lines wrapped in the source read as blanks); the
code blocks keep their lines.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import ClassVar

from dwc.cost import Cost, total
from dwc.diagnostics import Diagnostic, DiagnosticError, Edit, Fix, Label
from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.parse import ast, parse
from dwc.source import SourceFile, Span


@dataclass
class LintContext:
    source: SourceFile
    spec: ast.Spec
    graph: Graph
    """After lowering."""
    model: Graph
    """After the model passes (APG knobs carried out)."""
    batch: int
    memory_budget_mib: int
    huge_vocab: int
    scenario_max_vocab: int

    def feature_decl(self, name: str) -> ast.FeatureDecl | None:
        return next((s for s in self.spec.statements
                     if isinstance(s, ast.FeatureDecl) and s.name.text == name), None)

    def scenario_features(self) -> set[str]:
        return {s.feature for s in self.graph.inputs if s.scenario}

    def vocab(self, feature: str) -> int | None:
        return next((s.vocab for s in self.graph.inputs if s.name == feature), None)

    @cached_property
    def inference_cost(self) -> Cost:
        """Costs of the -O2 inference graph (what `dwc explain` reports as inference)."""
        return inference_cost(self.graph)

    def recheck(self, text: str) -> tuple[ast.Spec, Graph] | Diagnostic:
        """Parse and check an edited copy of the spec: its AST and graph, or its first error."""
        from dwc.sema.elaborate import elaborate  # here: a layer kind's lint.py imports this module

        source = SourceFile(self.source.name, text)
        try:
            spec = parse(source)
            return spec, elaborate(spec, source)
        except DiagnosticError as error:
            return error.diagnostics[0]

    def edited(self, text: str) -> LintContext | Diagnostic:
        """The context of an edited copy of the spec (same settings), for a rule that checks what
        following its advice would lead to; or the copy's first error."""
        from dwc.driver import optimize

        checked = self.recheck(text)
        if isinstance(checked, Diagnostic):
            return checked
        spec, graph = checked
        return replace(self, source=SourceFile(self.source.name, text), spec=spec, graph=graph,
                       model=optimize(graph, level=0)[0])


_SECTIONS = ("What it does", "Why is this bad?", "Example", "Use instead")
_HEADING = re.compile(r"^## (.+)$", re.M)


def _sections(cls: type) -> tuple[str, str, str, str]:
    """A rule's docstring as its four documentation parts (what, why, example, use instead)."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    parts = _HEADING.split(doc)
    headings, bodies = parts[1::2], [b.strip() for b in parts[2::2]]
    if parts[0].strip() or tuple(headings) != _SECTIONS:
        raise TypeError(f"{cls.__name__}: the docstring must hold exactly the sections "
                        + ", ".join(f"'## {s}'" for s in _SECTIONS) + f", in order (has {headings})")
    what, why = (" ".join(body.split()) for body in bodies[:2])
    example, use_instead = (_code_block(cls, name, body)
                            for name, body in zip(_SECTIONS[2:], bodies[2:], strict=True))
    return what, why, example, use_instead


def _code_block(cls: type, section: str, body: str) -> str:
    lines = body.splitlines()
    if len(lines) < 3 or lines[0] != "```" or lines[-1] != "```":
        raise TypeError(f"{cls.__name__}: '## {section}' must be one ``` code block")
    return "\n".join(lines[1:-1])


class Rule:
    """A lint rule: a registered code (dwc/diagnostics/codes.py), its documentation (the subclass's
    docstring, see the module's docstring) and a `check` that yields diagnostics for one spec."""

    code: ClassVar[str]
    what: ClassVar[str]
    """What it does."""
    why: ClassVar[str]
    """Why is this bad?"""
    example: ClassVar[str]
    use_instead: ClassVar[str]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.what, cls.why, cls.example, cls.use_instead = _sections(cls)

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:  # pragma: no cover - abstract
        raise NotImplementedError

    def diag(self, message: str, label: Label, help: str, *secondary: Label,
             fixes: tuple[Fix, ...] = ()) -> Diagnostic:
        return Diagnostic(self.code, message, label, help, tuple(secondary), fixes=fixes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r})"


# --- helpers ----------------------------------------------------------------------------------

def inference_cost(graph: Graph) -> Cost:
    """Costs of a graph's -O2 inference form."""
    from dwc.driver import optimize

    return total(optimize(graph, level=2)[2])


def edit(text: str, span: Span, replacement: str) -> str:
    return text[:span.start] + replacement + text[span.end:]


def without_mark(text: str, decl: ast.FeatureDecl) -> str:
    """The spec text with the `scenario` mark of a feature (and the blank before it) removed."""
    return edit(text, mark_span(text, decl), "")


def mark_span(text: str, decl: ast.FeatureDecl) -> Span:
    """The `scenario` mark of a feature with the blanks before it (what dropping it deletes)."""
    start = decl.scenario.start
    while start > decl.kind.span.end and text[start - 1] in " \t":
        start -= 1
    return Span(start, decl.scenario.end)


def drop_mark(text: str, decl: ast.FeatureDecl) -> Fix:
    """The fix that drops a feature's `scenario` mark."""
    return Fix(f"drop the 'scenario' mark of '{decl.name.text}'", (Edit(mark_span(text, decl), ""),))


def remove_statement(text: str, stmt: ast.Statement, what: str) -> Fix:
    """The fix that deletes a statement; with its line when nothing else is on it (a comment
    after it on the line is deleted with it)."""
    start, end = stmt.span.start, stmt.span.end
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    rest = text[end:line_end].strip()
    if not text[line_start:start].strip() and (not rest or rest.startswith("#")):
        start, end = line_start, min(line_end + 1, len(text))
    return Fix(f"remove {what}", (Edit(Span(start, end), ""),))


def without_marks(text: str, decls: list[ast.FeatureDecl]) -> str:
    for decl in sorted(decls, key=lambda d: -d.span.start):  # back to front: spans stay valid
        text = without_mark(text, decl)
    return text


def condition_features(g: Graph) -> dict[str, ir.Op]:
    """Features read by anything that adapts weights: generators, gates, domains."""
    found: dict[str, ir.Op] = {}
    for op in g.ops:
        for root in op.conditioning_inputs():
            for feature in g.source_features(root):
                found.setdefault(feature, op)
    return found


def apg_layers(ctx: LintContext) -> Iterator[ir.Op]:
    """The low-rank dynamic linears a spec's `apg(...)` asked for."""
    for op in ctx.model.ops:
        if isinstance(op, ir.LowRankDynamicLinear) and op.apg is not None:
            yield op


def calls(node) -> Iterator[ast.Call]:
    """Every call in an AST expression (the node itself first)."""
    if isinstance(node, ast.Call):
        yield node
        for child in (*node.args, *(k.value for k in node.kwargs)):
            yield from calls(child)


def feature_reads(spec: ast.Spec, features: set[str]) -> dict[str, set[str]]:
    """For every value and condition, the features it reads directly or through other values."""
    reads: dict[str, set[str]] = {f: {f} for f in features}
    for stmt in spec.statements:
        if isinstance(stmt, ast.LetDecl | ast.ConditionDecl):
            reads[stmt.name.text] = set().union(*(reads.get(r, set()) for r in refs(stmt)))
    return reads


def refs(node) -> Iterator[str]:
    """Every name an AST node refers to (including `by = name` in modifiers)."""
    return (ref.name for ref in ref_nodes(node))


def ref_nodes(node) -> Iterator[ast.Ref]:
    """Every reference in an AST node, in source order."""
    if isinstance(node, ast.Ref):
        yield node
    elif isinstance(node, ast.Call):
        for child in (*node.args, *(k.value for k in node.kwargs), *node.modifiers):
            yield from ref_nodes(child)
    elif isinstance(node, ast.Modifier):
        for child in (*node.args, *(k.value for k in node.kwargs)):
            yield from ref_nodes(child)
    elif isinstance(node, ast.ListExpr):
        for child in node.items:
            yield from ref_nodes(child)
    elif isinstance(node, ast.LetDecl | ast.ConditionDecl | ast.OutputDecl):
        yield from ref_nodes(node.value)
    elif isinstance(node, ast.FeatureDecl):
        yield from ref_nodes(node.kind)
