"""`dwc fmt`: the canonical layout of a .dw spec, printed from its AST.

Canonical means: one statement per line; `key = value` options; single spaces after commas;
numbers exactly as written (`1_000_000` stays); the `:` of consecutive feature lines and the `=`
of consecutive value lines aligned; at most one blank line between statements; comments kept
where they were (a comment inside a multi-line statement moves above it). Formatting is
idempotent and preserves the AST (both are tested over every example).
"""

from __future__ import annotations

from dwc.diagnostics import Diagnostic, DiagnosticError, Label
from dwc.parse import ast
from dwc.source import SourceFile, Span


def expr(e: ast.Expr) -> str:
    """The canonical text of an expression."""
    match e:
        case ast.Ref():
            return e.name
        case ast.Number() | ast.String() | ast.Factor() | ast.Fraction():
            return e.text
        case ast.ListExpr():
            return "[" + ", ".join(expr(i) for i in e.items) + "]"
        case ast.Call():
            text = _call(e.func.text, e.args, e.kwargs)
            return " ".join([text, *(_call(m.name.text, m.args, m.kwargs) for m in e.modifiers)])
    raise AssertionError(e)


def _call(name: str, args, kwargs) -> str:
    parts = [expr(a) for a in args] + [f"{k.name.text} = {expr(k.value)}" for k in kwargs]
    return f"{name}({', '.join(parts)})"


def _statement(s: ast.Statement, pad: int) -> str:
    match s:
        case ast.ModelDecl():
            return f"model {s.name.text}"
        case ast.FeatureDecl():
            mark = " scenario" if s.scenario is not None else ""
            kind = s.kind.func.text if not (s.kind.args or s.kind.kwargs) else expr(s.kind)
            return f"feature {s.name.text.ljust(pad)} : {kind}{mark}"
        case ast.ScenarioDecl():
            return "scenarios " + " * ".join(n.text for n in s.features)
        case ast.ConditionDecl():
            return f"condition {s.name.text} = {expr(s.value)}"
        case ast.LetDecl():
            return f"{s.name.text.ljust(pad)} = {expr(s.value)}"
        case ast.OutputDecl():
            text = f"output {s.name.text} = {expr(s.value)}"
            if s.loss is not None:
                text += f" loss = {s.loss.text}"
            if s.weight is not None:
                text += f" weight = {s.weight.text}"
            if s.column is not None:
                text += f" column = {s.column.text}"
            return text
        case ast.DefaultsDecl():
            return "defaults " + " ".join(_call(m.name.text, m.args, m.kwargs)
                                          for m in s.modifiers)
    raise AssertionError(s)


def format_spec(spec: ast.Spec, source: SourceFile) -> str:
    """Format a parsed spec canonically. A text without a `model` line (an empty file, only
    comments) is not a spec: DiagnosticError(DW204), as `dwc check` reports it."""
    if not any(isinstance(s, ast.ModelDecl) for s in spec.statements):
        raise DiagnosticError([Diagnostic(
            "DW204", "the spec has no 'model' declaration", Label(Span(0, 0)),
            help="start the spec with 'model NAME'")])
    text = source.text
    statements = list(spec.statements)
    leading: dict[int, list[ast.Comment]] = {i: [] for i in range(len(statements) + 1)}
    trailing: dict[int, ast.Comment] = {}
    for c in spec.comments:
        line = source.location(c.span.start)[0]
        owner = next((i for i, s in enumerate(statements)
                      if s.span.end <= c.span.start
                      and source.location(s.span.end)[0] == line), None)
        if owner is not None and owner not in trailing:
            trailing[owner] = c
            continue
        nxt = next((i for i, s in enumerate(statements) if s.span.end > c.span.start),
                   len(statements))
        leading[nxt].append(c)

    # alignment runs: consecutive statements of the same kind with nothing in between
    pads = [0] * len(statements)
    run: list[int] = []

    def close_run() -> None:
        width = max((len(statements[i].name.text) for i in run), default=0)
        for i in run:
            pads[i] = width
        run.clear()

    for i, s in enumerate(statements):
        aligned = isinstance(s, ast.FeatureDecl | ast.LetDecl)
        if run and (not aligned or type(statements[run[-1]]) is not type(s) or leading[i]
                    or _blank_between(text, statements[run[-1]].span.end, s.span.start)):
            close_run()
        if aligned:
            run.append(i)
    close_run()

    out: list[str] = []
    prev_end: int | None = None
    for i in range(len(statements) + 1):
        items = [(c.span.start, c.span.end, c.text.rstrip()) for c in leading[i]]
        if i < len(statements):
            s = statements[i]
            line, end = _statement(s, pads[i]), s.span.end
            if i in trailing:
                line += "  " + trailing[i].text.rstrip()
                end = trailing[i].span.end
            items.append((s.span.start, end, line))
        for start, end, line in items:
            if prev_end is not None and _blank_between(text, prev_end, start) and out:
                out.append("")
            out.append(line)
            prev_end = end
    return "\n".join(out) + "\n" if out else ""


def _blank_between(text: str, start: int, end: int) -> bool:
    """Whether the source has an empty line between two items."""
    gap = text[start:end]
    lines = gap.split("\n")
    return any(not ln.strip() for ln in lines[1:-1])


def _literal(value: object, span: Span, kind: str = "") -> ast.Expr | None:
    """A default as spec text (None where the option has no written form: 'unset')."""
    if kind == "string" and isinstance(value, str):
        text = value.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t") \
            .replace("\n", "\\n")
        return ast.String(value, f'"{text}"', span)
    if isinstance(value, bool):
        return ast.Ref("true" if value else "false", span)
    if isinstance(value, int | float):
        return ast.Number(value, repr(value), span)
    if isinstance(value, str):
        return ast.Ref(value, span)
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return ast.ListExpr(tuple(ast.Number(v, str(v), span) for v in value), span)
    return None


def _filled(name: str, args, kwargs, span: Span, given: dict[str, ast.Kwarg] | None = None
            ) -> tuple[ast.Kwarg, ...]:
    """`kwargs` plus every option the call leaves to its default (or to a `defaults` line)."""
    from dwc.sema.signatures import SIGNATURES

    sig = SIGNATURES.get(name)
    if sig is None:
        return tuple(kwargs)
    bound = {p.name for p in sig.positional[:len(args)]} | {k.name.text for k in kwargs}
    if sig.positional and sig.positional[-1].kind == "values":
        bound |= {p.name for p in sig.positional}
    out = list(kwargs)
    for param in sig.params:
        if param.name in bound or param.required:
            continue
        if "share" in bound and param.name in ("encoding", "min_count"):
            continue  # a shared table's vocabulary options are its own feature's
        if given and param.name in given:
            out.append(ast.Kwarg(ast.Name(param.name, span), given[param.name].value, span))
            continue
        value = _literal(param.default, span, param.kind)
        if value is not None:
            out.append(ast.Kwarg(ast.Name(param.name, span), value, span))
    return tuple(out)


def resolve(spec: ast.Spec) -> ast.Spec:
    """The spec with every option a call leaves to its default written out (`dwc fmt
    --resolved`): the values dwc uses, including those a `defaults` line sets. Options that
    default to 'unset' (e.g. a gate's hidden width, which then follows the gated width) stay
    unwritten. The result checks and compiles to the same model."""
    from dataclasses import replace

    defaults: dict[str, dict[str, ast.Kwarg]] = {}
    for s in spec.statements:
        if isinstance(s, ast.DefaultsDecl):
            for m in s.modifiers:
                defaults.setdefault(m.name.text, {}).update({k.name.text: k for k in m.kwargs})

    def walk(e: ast.Expr) -> ast.Expr:
        if isinstance(e, ast.ListExpr):
            return replace(e, items=tuple(walk(i) for i in e.items))
        if not isinstance(e, ast.Call):
            return e
        args = tuple(walk(a) for a in e.args)
        kwargs = tuple(replace(k, value=walk(k.value)) for k in e.kwargs)
        modifiers = tuple(replace(m, kwargs=_filled(m.name.text, m.args, m.kwargs, m.span,
                                                    defaults.get(m.name.text)))
                          for m in e.modifiers)
        return replace(e, args=args, kwargs=_filled(e.func.text, args, kwargs, e.span),
                       modifiers=modifiers)

    statements = []
    for s in spec.statements:
        if isinstance(s, ast.ConditionDecl | ast.LetDecl | ast.OutputDecl):
            s = replace(s, value=walk(s.value))
        elif isinstance(s, ast.FeatureDecl):
            s = replace(s, kind=walk(s.kind))
        statements.append(s)
    return replace(spec, statements=tuple(statements))
