"""The parser: one cached Lark LALR parser over grammar/dwc.lark, a Transformer into the AST, and
the translation of Lark's exceptions into coded syntax diagnostics (DW1xx)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from dwc.diagnostics import Diagnostic, DiagnosticError, Label
from dwc.parse import ast
from dwc.resources import grammar_path
from dwc.source import SourceFile, Span

_COMMENT = re.compile(r"#[^\n]*")
_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')
"""A `#` inside a string literal starts no comment."""
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\t": "\t", "\\n": "\n"}

_TOKEN_WORDS = {
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "COMMA": "','", "EQUAL": "'='",
    "COLON": "':'", "STAR": "'*'", "NAME": "a name", "NUMBER": "a number", "FACTOR": "a factor like 4x",
    "FRACTION": "a fraction like 1/4", "STRING": 'a string like "uid"', "MODIFIER": "a modifier",
    "$END": "the end of the file",
}


@cache
def _lark() -> Lark:
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
    )


def _span(meta_or_token: object) -> Span:
    if isinstance(meta_or_token, Token):
        return Span(meta_or_token.start_pos or 0, meta_or_token.end_pos or 0)
    return Span(meta_or_token.start_pos, meta_or_token.end_pos)  # type: ignore[attr-defined]


def _name(token: Token) -> ast.Name:
    return ast.Name(str(token), _span(token))


def _int(text: str) -> int:
    return int(text.replace("_", ""))


class _ToAst(Transformer):
    """Lark parse tree -> AST. Callbacks get `meta` for their span (propagate_positions)."""

    @v_args(meta=True)
    def start(self, meta, children):
        return tuple(children)

    @v_args(meta=True, inline=True)
    def model_stmt(self, meta, name):
        return ast.ModelDecl(_name(name), _span(meta))

    @v_args(meta=True)
    def feature_stmt(self, meta, children):
        name, kind, *mark = children
        return ast.FeatureDecl(_name(name), kind, mark[0] if mark else None, _span(meta))

    @v_args(meta=True)
    def scenario_mark(self, meta, children):
        return _span(meta)

    @v_args(meta=True, inline=True)
    def bare_kind(self, meta, name):
        return ast.Call(_name(name), (), (), (), _span(meta))

    @v_args(meta=True)
    def scenarios_stmt(self, meta, names):
        return ast.ScenarioDecl(tuple(_name(n) for n in names), _span(meta))

    @v_args(meta=True, inline=True)
    def condition_stmt(self, meta, name, value):
        return ast.ConditionDecl(_name(name), value, _span(meta))

    @v_args(meta=True, inline=True)
    def let_stmt(self, meta, name, value):
        return ast.LetDecl(_name(name), value, _span(meta))

    @v_args(meta=True)
    def output_stmt(self, meta, children):
        name, value, *clauses = children
        loss = next((c[1] for c in clauses if c[0] == "loss"), None)
        weight = next((c[1] for c in clauses if c[0] == "weight"), None)
        column = next((c[1] for c in clauses if c[0] == "column"), None)
        return ast.OutputDecl(_name(name), value, loss, weight, _span(meta), column)

    @v_args(inline=True)
    def loss_clause(self, name):
        return ("loss", _name(name))

    @v_args(inline=True)
    def weight_clause(self, number):
        return ("weight", self.number(number))

    @v_args(inline=True)
    def column_clause(self, token):
        return ("column", self.string(token))

    @v_args(meta=True)
    def defaults_stmt(self, meta, modifiers):
        return ast.DefaultsDecl(tuple(modifiers), _span(meta))

    @v_args(meta=True)
    def call(self, meta, children):
        func, *rest = children
        args, kwargs, modifiers = _split(rest)
        return ast.Call(_name(func), args, kwargs, modifiers, _span(meta))

    @v_args(meta=True)
    def modifier(self, meta, children):
        name, *rest = children
        args, kwargs, nested = _split(rest)
        assert not nested
        return ast.Modifier(_name(name), args, kwargs, _span(meta))

    @v_args(meta=True, inline=True)
    def kwarg(self, meta, name, value):
        return ast.Kwarg(_name(name), value, _span(meta))

    @v_args(inline=True)
    def ref(self, token):
        return ast.Ref(str(token), _span(token))

    @v_args(inline=True)
    def number(self, token):
        text = str(token)
        plain = text.replace("_", "")
        value: int | float = float(plain) if any(c in plain for c in ".eE") else int(plain)
        return ast.Number(value, text, _span(token))

    @v_args(inline=True)
    def string(self, token):
        text = str(token)
        value = re.sub(r"\\.", lambda m: _ESCAPES[m.group(0)], text[1:-1])
        return ast.String(value, text, _span(token))

    @v_args(inline=True)
    def factor(self, token):
        text = str(token)
        return ast.Factor(_int(text[:-1]), text, _span(token))

    @v_args(inline=True)
    def fraction(self, token):
        text = str(token)
        num, den = text.split("/")
        return ast.Fraction(_int(num), _int(den), text, _span(token))

    @v_args(meta=True)
    def list(self, meta, items):
        return ast.ListExpr(tuple(items), _span(meta))


def _split(children):
    args, kwargs, modifiers = [], [], []
    for child in children:
        if isinstance(child, ast.Kwarg):
            kwargs.append(child)
        elif isinstance(child, ast.Modifier):
            modifiers.append(child)
        else:
            args.append(child)
    return tuple(args), tuple(kwargs), tuple(modifiers)


def comments(text: str) -> Iterator[re.Match]:
    """The `#` comments of a spec's text (a `#` inside a string literal starts none)."""
    return (m for m in _STRING_OR_COMMENT.finditer(text) if m.group(0).startswith("#"))


def parse(source: SourceFile) -> ast.Spec:
    """Parse a spec into its AST.

    Raises:
        DiagnosticError: with one DW1xx diagnostic for the first syntax error.
    """
    try:
        tree = _lark().parse(source.text)
    except UnexpectedInput as error:
        raise DiagnosticError([_syntax_diagnostic(error, source)]) from None
    statements = _ToAst().transform(tree)
    reserved = _reserved_names(statements)
    if reserved:
        raise DiagnosticError(reserved)
    found = tuple(ast.Comment(m.group(0), Span(m.start(), m.end())) for m in comments(source.text))
    return ast.Spec(statements, found)


def _gap(text: str, offset: int) -> int:
    """Number of whitespace characters just before `offset`."""
    return len(text[:offset]) - len(text[:offset].rstrip())


def _previous_word(text: str, offset: int) -> str:
    match = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", text[:offset])
    return match.group(1) if match else ""


def _depth(text: str, offset: int) -> int:
    """How many brackets are open at `offset`."""
    code = _STRING_OR_COMMENT.sub("", text[:offset])
    return code.count("(") + code.count("[") - code.count(")") - code.count("]")


def _unmatched(text: str, offset: int, closer: str) -> bool:
    """Whether the bracket `closer` at `offset` has no open partner before it."""
    opener = "(" if closer == ")" else "["
    code = _STRING_OR_COMMENT.sub("", text[:offset])
    return code.count(opener) <= code.count(closer)


def _reserved_names(statements: tuple[ast.Statement, ...]) -> list[Diagnostic]:
    """DW106 for keywords used as declared names (the contextual lexer would accept some)."""
    found = []
    for stmt in statements:
        name = getattr(stmt, "name", None)
        if isinstance(name, ast.Name) and name.text in ast.KEYWORDS:
            found.append(
                Diagnostic(
                    "DW106",
                    f"'{name.text}' is a reserved word",
                    Label(name.span, "cannot be used as a name"),
                    help=f"rename it, e.g. '{name.text}_'",
                )
            )
    return found


def _describe(expected: set[str]) -> str:
    words = sorted({_TOKEN_WORDS.get(t, repr(t.lower()) if t.isupper() else t) for t in expected})
    if len(words) > 6:
        return ", ".join(words[:6]) + ", ..."
    return ", ".join(words)


def _syntax_diagnostic(error: UnexpectedInput, source: SourceFile) -> Diagnostic:
    """Classify a Lark error into the most specific DW1xx code, with a concrete help line."""
    offset = getattr(error, "pos_in_stream", None) or 0
    if isinstance(error, UnexpectedCharacters):
        char = source.text[offset : offset + 1]
        return Diagnostic(
            "DW101",
            f"unexpected character {char!r}",
            Label(Span(offset, offset + 1), "not valid here"),
            help="names are ASCII letters, digits and '_'; comments start with '#'",
        )
    if isinstance(error, UnexpectedEOF) or (
        isinstance(error, UnexpectedToken) and error.token.type == "$END"
    ):
        end = len(source.text.rstrip())
        expected = getattr(error, "expected", set()) or set()
        return Diagnostic(
            "DW102",
            "unexpected end of file",
            Label(Span(max(0, end - 1), end), "the statement is not finished"),
            help=f"expected {_describe(expected)}" if expected else None,
        )
    assert isinstance(error, UnexpectedToken)
    token = error.token
    span = _span(token)
    expected = set(error.expected)
    found = str(token)
    if token.type in ("RPAR", "RSQB") and _unmatched(source.text, offset, found):
        return Diagnostic(
            "DW104",
            f"unmatched '{found}'",
            Label(span, "does not close an open bracket"),
            help="remove it, or open the bracket it is meant to close",
        )
    line_start = source.text.rfind("\n", 0, offset) + 1
    at_line_start = not source.text[line_start:offset].strip()
    if at_line_start and _depth(source.text, offset) == 0 and token.type != "EQUAL" \
            and str(token) not in ast.KEYWORDS:
        return Diagnostic(
            "DW107",
            f"expected a statement, found '{found}'",
            Label(span, "a statement cannot start here"),
            help="statements start with model, feature, scenarios, condition, output, defaults "
            "or 'name ='",
        )
    if str(token) in ast.KEYWORDS and "NAME" in expected:
        return Diagnostic(
            "DW106",
            f"'{found}' is a reserved word",
            Label(span, "cannot be used as a name"),
            help=f"rename it, e.g. '{found}_'",
        )
    if "COMMA" in expected and token.type in ("NAME", "NUMBER", "FACTOR", "FRACTION", "LSQB") \
            and _depth(source.text, offset) > 0:
        return Diagnostic(
            "DW103",
            f"expected ',' before '{found}'",
            Label(Span(span.start, span.start + max(1, len(found))), "missing ',' before this"),
            help="separate arguments and list items with ','",
        )
    if expected == {"EQUAL"} or ("EQUAL" in expected and "LPAR" not in expected):
        return Diagnostic(
            "DW105",
            f"expected '=' before '{found}'",
            Label(span, "expected '='"),
            help="bind a value with 'name = expression'",
        )
    keyword_before = _previous_word(source.text, offset)
    if keyword_before in ast.KEYWORDS and token.type in ("EQUAL", "COLON"):
        return Diagnostic(
            "DW106",
            f"'{keyword_before}' is a reserved word",
            Label(Span(offset - len(keyword_before) - _gap(source.text, offset), offset
                       - _gap(source.text, offset)), "cannot be used as a name"),
            help=f"rename it, e.g. '{keyword_before}_'",
        )
    return Diagnostic(
        "DW100",
        f"unexpected '{found}'",
        Label(span, "not expected here"),
        help=f"expected {_describe(expected)}",
    )
