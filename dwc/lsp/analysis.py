"""What the language server knows about one version of a spec, computed with the compiler's own
stages (no check is reimplemented here): its diagnostics (`dwc check`, then `dwc lint` when it
checks), its symbols and references, and the hover texts and completions at an offset.

Everything here works on character offsets and plain data; dwc/lsp/server.py translates to the
protocol. A spec that does not parse still gets symbols, references and completions from a token
scan (dwc/lsp/text.py), and hover facts from the last version that checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from dwc import cost, fmt
from dwc.diagnostics import CODES, Diagnostic, DiagnosticError
from dwc.driver import check_source, optimize
from dwc.ir.graph import Graph
from dwc.lint import RULES, LintConfig, lint_source
from dwc.lint.rules.base import feature_reads
from dwc.lsp.text import STATEMENT_KEYWORDS, Token, in_comment, tokens, word_at
from dwc.parse import ast, parse
from dwc.parse.ast import KEYWORDS
from dwc.sema.params import REQUIRED, Param, Signature
from dwc.sema.signatures import LOSSES, SIGNATURES
from dwc.source import SourceFile, Span

DEFAULT_DOCS_URL = "https://github.com/dwc/dwc/blob/main/docs/"
"""Where the docs/ pages are published (the repository the SARIF output links to as well);
`dwc lsp --docs-url` and the client's `docsUrl` initialization option override it."""

_CODE = re.compile(r"\bDW[0-9]{3}\b")


def docs_link(code: str, base: str = DEFAULT_DOCS_URL) -> str:
    """The URL of a code's section of docs/diagnostics.md (GitHub's heading anchor)."""
    return f"{base.rstrip('/')}/diagnostics.md#{code.lower()}-{CODES[code].name}"


# --- symbols --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Symbol:
    """A name a statement declares."""

    name: str
    kind: str
    """model, feature, condition, value or output."""
    span: Span
    """The declared name."""
    statement: Span
    detail: str
    """The declaration's right-hand side, as `dwc fmt` writes it (or as typed, when it does not
    parse)."""
    scenario: bool = False
    """For a feature: marked `scenario`."""


def _statement_symbol(stmt: ast.Statement) -> Symbol | None:
    match stmt:
        case ast.ModelDecl():
            return Symbol(stmt.name.text, "model", stmt.name.span, stmt.span, "model")
        case ast.FeatureDecl():
            return Symbol(stmt.name.text, "feature", stmt.name.span, stmt.span,
                          fmt.expr(stmt.kind) + (" scenario" if stmt.scenario else ""),
                          stmt.scenario is not None)
        case ast.ConditionDecl():
            return Symbol(stmt.name.text, "condition", stmt.name.span, stmt.span, fmt.expr(stmt.value))
        case ast.LetDecl():
            return Symbol(stmt.name.text, "value", stmt.name.span, stmt.span, fmt.expr(stmt.value))
        case ast.OutputDecl():
            return Symbol(stmt.name.text, "output", stmt.name.span, stmt.span, fmt.expr(stmt.value))
    return None


def _statement_starts(toks: list[Token]) -> list[int]:
    """Indices of the tokens that start a statement (a token scan of grammar/dwc.lark's
    statements: a statement keyword at depth 0, or `name =` at depth 0 outside a clause)."""
    starts = []
    code = [t for t in toks if t.kind != "comment"]
    for i, t in enumerate(code):
        if t.depth:
            continue
        if t.kind == "keyword" and t.text in STATEMENT_KEYWORDS:
            starts.append(i)
        elif t.kind == "name" and i + 1 < len(code) and code[i + 1].text == "=" and (
                i == 0 or code[i - 1].text not in ("condition", "output", "loss", "weight")):
            starts.append(i)
    return starts


def _token_symbols(text: str) -> list[Symbol]:
    """Declarations found by the token scan (for a spec that does not parse)."""
    code = [t for t in tokens(text) if t.kind != "comment"]
    starts = _statement_starts(code)
    found = []
    for n, i in enumerate(starts):
        end = code[starts[n + 1] - 1].end if n + 1 < len(starts) else code[-1].end
        first = code[i]
        kind = {"model": "model", "feature": "feature", "condition": "condition",
                "output": "output"}.get(first.text, "value" if first.kind == "name" else "")
        name = first if kind == "value" else (code[i + 1] if i + 1 < len(code) else None)
        if not kind or name is None or name.kind != "name":
            continue
        rest = code[code.index(name) + 1:]
        rest = [t for t in rest if t.end <= end]
        if rest and rest[0].text in (":", "="):
            rest = rest[1:]
        detail = text[rest[0].start:end] if rest else ""
        scenario = kind == "feature" and any(t.text == "scenario" and t.depth == 0 for t in rest)
        found.append(Symbol(name.text, kind, Span(name.start, name.end), Span(first.start, end),
                            " ".join(detail.split()), scenario))
    return found


def _name_refs(node) -> Iterator[ast.Ref]:
    """The references to declared names in an AST node: every `Ref` except the choices of enum
    options (`act = relu`, `activation(h, tanh)`), which name no declaration even when a
    feature happens to share the word."""
    match node:
        case ast.Ref():
            yield node
        case ast.Call() | ast.Modifier():
            name = node.func.text if isinstance(node, ast.Call) else node.name.text
            sig = SIGNATURES.get(name)
            positional = sig.positional if sig else ()
            for i, arg in enumerate(node.args):
                param = positional[min(i, len(positional) - 1)] if positional else None
                if param is None or param.kind != "enum":
                    yield from _name_refs(arg)
            for kw in node.kwargs:
                param = sig.param(kw.name.text) if sig else None
                if param is None or param.kind != "enum":
                    yield from _name_refs(kw.value)
            for mod in getattr(node, "modifiers", ()):
                yield from _name_refs(mod)
        case ast.ListExpr():
            for item in node.items:
                yield from _name_refs(item)
        case ast.FeatureDecl():
            yield from _name_refs(node.kind)
        case ast.LetDecl() | ast.ConditionDecl() | ast.OutputDecl():
            yield from _name_refs(node.value)


# --- one analysed version of a document -----------------------------------------------------

@dataclass
class Analysis:
    source: SourceFile
    spec: ast.Spec | None
    """The AST, when the text parses."""
    graph: Graph | None
    """The checked IR, when the spec checks."""
    diagnostics: list[Diagnostic]

    @cached_property
    def symbols(self) -> list[Symbol]:
        if self.spec is None:
            return _token_symbols(self.source.text)
        return [s for s in map(_statement_symbol, self.spec.statements) if s is not None]

    def declared(self, name: str) -> Symbol | None:
        return next((s for s in self.symbols if s.name == name and s.kind != "model"), None)

    @cached_property
    def references(self) -> list[tuple[str, Span]]:
        """Every use of a declared name: (name, span), in source order."""
        names = {s.name for s in self.symbols if s.kind != "model"}
        if self.spec is None:
            code = [t for t in tokens(self.source.text) if t.kind == "name"]
            declared = {s.span for s in self.symbols}
            return [(t.text, Span(t.start, t.end)) for t in code
                    if t.text in names and Span(t.start, t.end) not in declared]
        found = []
        for stmt in self.spec.statements:
            if isinstance(stmt, ast.ScenarioDecl):
                found += [(n.text, n.span) for n in stmt.features if n.text in names]
            elif isinstance(stmt, ast.DefaultsDecl):
                for mod in stmt.modifiers:
                    found += [(r.name, r.span) for r in _name_refs(mod) if r.name in names]
            else:
                found += [(r.name, r.span) for r in _name_refs(stmt) if r.name in names]
        return sorted(found, key=lambda r: r[1].start)

    @cached_property
    def report(self) -> dict | None:
        """`dwc explain`'s report at -O2 (batch 1: per-sample numbers), when the spec checks."""
        if self.graph is None:
            return None
        model, train, inference, records = optimize(self.graph, level=2)
        return cost.as_json(self.graph, model, train, inference, records, 1)

    @cached_property
    def resolved(self) -> dict[str, str]:
        """Declared name -> its right-hand side with every default written out (`dwc fmt
        --resolved`), when the spec checks."""
        if self.graph is None or self.spec is None:
            return {}
        return {s.name: s.detail for s in map(_statement_symbol, fmt.resolve(self.spec).statements)
                if s is not None}


def analyse(source: SourceFile, config: LintConfig | None = None) -> Analysis:
    """Parse, check and lint one version of a spec: the diagnostics are exactly `dwc check`'s
    when it fails, else `dwc lint`'s findings."""
    try:
        spec = parse(source)
    except DiagnosticError as error:
        return Analysis(source, None, None, list(error.diagnostics))
    try:
        graph = check_source(source, spec)
    except DiagnosticError as error:
        return Analysis(source, spec, None, list(error.diagnostics))
    return Analysis(source, spec, graph, lint_source(source, config or LintConfig(), (spec, graph)))


# --- hover ------------------------------------------------------------------------------------

def _number(n: int) -> str:
    return f"{n:,}"


def code_hover(code: str, base: str = DEFAULT_DOCS_URL) -> str:
    entry = CODES[code]
    rule = " (lint rule)" if code in RULES else ""
    return (f"**{code}** `{entry.name}`: {entry.severity.value}{rule}\n\n{entry.summary}.\n\n"
            f"{entry.explanation}\n\n[docs/diagnostics.md]({docs_link(code, base)})")


def signature_hover(sig: Signature) -> str:
    lines = [f"**{sig.name}** ({sig.context}): {sig.doc}", ""]
    for p in sig.params:
        lines.append(f"- `{p.name}`: {p.doc} ({_param_default(p)})")
    lines += ["", "```dw", sig.example, "```"]
    return "\n".join(lines)


def _param_default(p: Param) -> str:
    if p.positional:
        return "positional" + ("" if p.default is REQUIRED else f", default {_literal(p.default)}")
    return "required" if p.default is REQUIRED else f"default {_literal(p.default)}"


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return "[" + ", ".join(map(str, value)) + "]"
    return "unset" if value is None else str(value)


def feature_hover(name: str, now: Analysis, good: Analysis | None) -> str | None:
    sym = now.declared(name)
    if sym is None or sym.kind != "feature":
        return None
    facts = good if good is not None and good.declared(name) is not None else None
    text = facts.resolved.get(name, sym.detail) if facts else sym.detail
    kind = text.split("(")[0].split()[0] if text else "?"
    lines = [f"**feature** `{name}`: {kind}"
             + (", scenario-sensitive" if sym.scenario else ""), "",
             "```dw", f"feature {name} : {text}", "```"]
    if facts is not None and facts.graph is not None:
        for i in (i for i in facts.graph.inputs if i.name in (name, f"{name}_len")):
            shape = ", ".join(["B", *map(str, i.shape)])
            vocab = f", ids < {i.vocab:,}" if i.vocab else ""
            lines.append(f"- input `{i.name}`: {i.dtype} [{shape}]{vocab}")
        if facts.spec is not None:
            features = {s.name for s in facts.symbols if s.kind == "feature"}
            reads = feature_reads(facts.spec, features)
            conditions = [s.name for s in facts.symbols if s.kind == "condition"
                          and name in reads.get(s.name, set())]
            lines.append("- read by conditions: " + (", ".join(f"`{c}`" for c in conditions)
                                                     if conditions else "none"))
            if name in facts.graph.scenario:
                lines.append(f"- defines the scenario cells ({facts.graph.scenario_cells:,} cells)")
        layer = _layer(facts, name)
        if layer is not None:
            lines.append(f"- parameters: {_number(layer['training']['params'])} (training), "
                         f"{_number(layer['inference']['params'])} (inference)")
    return "\n".join(lines)


def _layer(analysis: Analysis, name: str) -> dict | None:
    report = analysis.report
    if report is None:
        return None
    return next((layer for layer in report["layers"] if layer["name"] == name), None)


def binding_hover(name: str, now: Analysis, good: Analysis | None) -> str | None:
    sym = now.declared(name)
    if sym is None or sym.kind not in ("value", "condition", "output"):
        return None
    facts = good if good is not None and good.declared(name) is not None else None
    text = facts.resolved.get(name, sym.detail) if facts else sym.detail
    head = {"value": f"{name} =", "condition": f"condition {name} =",
            "output": f"output {name} ="}[sym.kind]
    lines = [f"**{sym.kind}** `{name}`", "", "```dw", f"{head} {text}", "```"]
    layer = _layer(facts, name) if facts else None
    if layer is not None:
        t, i = layer["training"], layer["inference"]
        lines += ["", f"ops: {', '.join(layer['ops'])}", "",
                  "| per sample | training | inference |", "|---|---:|---:|",
                  f"| parameters | {_number(t['params'])} | {_number(i['params'])} |",
                  f"| generated numbers | {_number(t['generated_per_sample'])} | "
                  f"{_number(i['generated_per_sample'])} |",
                  f"| FLOPs | {_number(t['flops_per_sample'])} | {_number(i['flops_per_sample'])} |",
                  f"| of which generator | {_number(t['generator_flops_per_sample'])} | "
                  f"{_number(i['generator_flops_per_sample'])} |"]
        if facts is not now:
            lines += ["", "_(costs of the last version that checked)_"]
    users = sorted({n for n, _ in _users(now, name)})
    if users:
        lines += ["", "used by: " + ", ".join(f"`{u}`" for u in users)]
    return "\n".join(lines)


def _users(analysis: Analysis, name: str) -> list[tuple[str, Span]]:
    """The declared names whose statements read `name`."""
    out = []
    for _, span in (r for r in analysis.references if r[0] == name):
        stmt = next((s for s in analysis.symbols if s.statement.start <= span.start
                     < s.statement.end), None)
        if stmt is not None and stmt.name != name:
            out.append((stmt.name, span))
    return out


def hover(now: Analysis, good: Analysis | None, offset: int, base: str = DEFAULT_DOCS_URL
          ) -> tuple[str, Span] | None:
    """Markdown for what lies at `offset` and the span it describes, or None."""
    text = now.source.text
    word, start, end = word_at(text, offset)
    if not word:
        return None
    span = Span(start, end)
    if _CODE.fullmatch(word) and word in CODES:
        return code_hover(word, base), span
    if in_comment(text, offset):
        return None
    for describe in (feature_hover, binding_hover):
        found = describe(word, now, good)
        if found is not None:
            return found, span
    call, _ = _enclosing_call(tokens(text, start))
    sig = SIGNATURES.get(word)
    following = text[end:].lstrip()[:1]
    if sig is not None and (following == "(" or sig.context == "feature"):
        return signature_hover(sig), span
    if call is not None and following == "=":
        param = call.param(word)
        if param is not None:
            return f"`{word}` of **{call.name}**: {param.doc} ({_param_default(param)})", span
    return None


# --- completion -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Completion:
    label: str
    kind: str
    """keyword, kind (a layer or feature kind), option, feature, condition, value, output,
    choice."""
    detail: str = ""
    documentation: str = ""
    insert: str | None = None
    """A snippet (LSP snippet syntax) to insert instead of the label."""
    sort: str = "5"
    """Sorted first when lower."""


def _enclosing_call(toks: list[Token]) -> tuple[Signature | None, str | None]:
    """The signature of the innermost call open at the end of `toks`, and the option whose value
    is being written there (`key =` just before), if any."""
    code = [t for t in toks if t.kind != "comment"]
    depth_needed = code[-1].depth + (1 if code and code[-1].text in "([" else 0) if code else 0
    sig = None
    for i in range(len(code) - 1, -1, -1):
        t = code[i]
        if t.text == "(" and t.depth == depth_needed - 1 and i > 0:
            sig = SIGNATURES.get(code[i - 1].text)
            break
        if t.text == "[" and t.depth == depth_needed - 1:
            depth_needed -= 1  # a list inside the call: its call is one level up
    option = None
    if len(code) >= 2 and code[-1].text == "=" and code[-2].kind == "name":
        option = code[-2].text
    return sig, option


def _signature_items(context: str) -> list[Completion]:
    return [Completion(s.name, "kind", f"{s.context}: {s.doc.split('. ')[0]}",
                       signature_hover(s), f"{s.name}($0)" if context != "feature" else None)
            for s in SIGNATURES.values() if s.context == context]


def _name_items(analysis: Analysis, before: int, kinds: tuple[str, ...], scenario_first: bool = False,
                only_scenario: bool = False) -> list[Completion]:
    out = []
    for s in analysis.symbols:
        if s.kind not in kinds or s.statement.start >= before:
            continue
        if only_scenario and not s.scenario:
            continue
        first = scenario_first and s.scenario
        out.append(Completion(s.name, s.kind, s.detail, sort="1" if first else "2"))
    return out


def completions(analysis: Analysis, offset: int) -> list[Completion]:
    """What may be written at `offset`, from the token context before it."""
    text = analysis.source.text
    _, start, _ = word_at(text, offset)
    if in_comment(text, offset):
        return []
    toks = [t for t in tokens(text, start) if t.kind != "comment"]
    line_start = text.rfind("\n", 0, start) + 1
    depth = toks[-1].depth + (1 if toks[-1].text in "([" else 0) if toks else 0
    starts = _statement_starts(toks)
    first = toks[starts[-1]] if starts else None
    statement_start = first.start if first else 0
    at_line_start = not text[line_start:start].strip()
    keywords = [Completion(k, "keyword", "statement", sort="3") for k in STATEMENT_KEYWORDS]
    if first is None or (depth == 0 and at_line_start and toks and toks[-1].text not in
                         ("=", ":", "*", ",")):
        return keywords
    statement = first.text if first.kind == "keyword" else "value"
    previous = toks[-1] if toks else None
    if statement == "model":
        return []
    if statement == "scenarios":
        listed = {t.text for t in toks[starts[-1] + 1:] if t.kind == "name"}
        return [c for c in _name_items(analysis, len(text) + 1, ("feature",), only_scenario=True)
                if c.label not in listed]
    if statement == "defaults" and depth == 0:
        return _signature_items("modifier")
    if depth == 0:
        if statement == "feature":
            if previous is not None and previous.text == ":":
                return _signature_items("feature")
            return [Completion("scenario", "keyword", "mark the feature scenario-sensitive")]
        if previous is not None and previous.text == "=" and len(toks) >= 2 \
                and toks[-2].text == "loss":
            return [Completion(k, "choice", f"expects {v}(...)") for k, v in LOSSES.items()]
        if previous is not None and previous.text in ("=",):
            heads = _signature_items("head") if statement == "output" else []
            return [*heads, *_value_items(analysis, statement_start, statement == "condition")]
        extra = [Completion("loss", "keyword", "the output's loss", insert="loss = $0"),
                 Completion("weight", "keyword", "the output's loss weight", insert="weight = $0")
                 ] if statement == "output" else []
        return [*_signature_items("modifier"), *extra]
    sig, option = _enclosing_call(toks)
    if sig is None:
        return _value_items(analysis, statement_start, statement == "condition")
    if option is not None:
        param = sig.param(option)
        if param is None:
            return []
        return _option_value_items(analysis, param, statement_start)
    given = _given_options(toks)
    options = [Completion(p.name, "option", f"{p.kind}, {_param_default(p)}", p.doc,
                          f"{p.name} = $0", sort="1")
               for p in sig.params if not p.positional and p.name not in given]
    if sig.context == "modifier":
        return options
    if sig.name == "sequence":
        return [*options, *_categorical_items(analysis, statement_start)]
    if sig.context == "feature":
        return options
    return [*options, *_value_items(analysis, statement_start, statement == "condition")]


def _given_options(toks: list[Token]) -> set[str]:
    """The options already written in the innermost open call."""
    depth = toks[-1].depth + (1 if toks[-1].text in "([" else 0)
    given = set()
    for i in range(len(toks) - 1, 0, -1):
        t = toks[i]
        if t.depth < depth:
            break
        if t.text == "=" and t.depth == depth and toks[i - 1].kind == "name":
            given.add(toks[i - 1].text)
    return given


def _value_items(analysis: Analysis, before: int, in_condition: bool) -> list[Completion]:
    return [*_name_items(analysis, before, ("feature", "condition", "value"),
                         scenario_first=in_condition),
            *_signature_items("network")]


def _categorical_items(analysis: Analysis, before: int) -> list[Completion]:
    return [c for c in _name_items(analysis, before, ("feature",))
            if c.detail.startswith("categorical")]


def _option_value_items(analysis: Analysis, param: Param, before: int) -> list[Completion]:
    if param.kind == "enum":
        return [Completion(c, "choice", "default" if c == param.default else "")
                for c in param.choices]
    if param.kind == "bool":
        return [Completion(c, "choice") for c in ("true", "false")]
    if param.kind == "feature":
        return _categorical_items(analysis, before)
    if param.kind == "condition":
        conditions = _name_items(analysis, before, ("condition",))
        return [*conditions, Completion("self", "keyword", "the layer's own input (self-wise)"),
                Completion("concat", "kind", "mix-wise: concat(self, z)", insert="concat(self, $0)")]
    if param.kind == "domain":
        return [Completion("scenario", "keyword", "the scenario cell"),
                *_name_items(analysis, before, ("feature",), only_scenario=True)]
    return []


# --- rename -----------------------------------------------------------------------------------

def rename_problem(analysis: Analysis, new: str) -> str | None:
    """Why `new` cannot be the new name of a declaration (None when it can)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", new):
        return f"'{new}' is not a name (ASCII letters, digits and '_', not starting with a digit)"
    if new in KEYWORDS:
        return f"'{new}' is a reserved word"
    if any(s.name == new for s in analysis.symbols if s.kind != "model"):
        return f"'{new}' is already declared"
    return None


# --- code actions ---------------------------------------------------------------------------

def suppression(diagnostic: Diagnostic, text: str) -> tuple[str, Span, str] | None:
    """For a lint finding: (title, where, text) of the `# dwc: ignore[CODE]` comment that
    suppresses it on its line (docs/lint.md)."""
    if diagnostic.code not in RULES or not diagnostic.located:
        return None
    end = text.find("\n", diagnostic.span.start)
    end = len(text) if end < 0 else end
    line = text[text.rfind("\n", 0, diagnostic.span.start) + 1:end].rstrip("\r")
    insert = end - (1 if text[:end].endswith("\r") else 0)
    comment = f"{'' if line.endswith(' ') else '  '}# dwc: ignore[{diagnostic.code}]"
    return f"suppress {diagnostic.code} on this line", Span(insert, insert), comment
