"""The AST of a .dw spec: frozen dataclasses, each carrying the span of the text it came from.

The AST is purely syntactic: names are unresolved and options unchecked (that is sema's job). It
is what `dwc fmt` prints back, so it keeps the literal text of numbers (`1_000_000` stays as written).
"""

from __future__ import annotations

from dataclasses import dataclass

from dwc.source import Span

KEYWORDS = frozenset(
    {"model", "feature", "scenario", "scenarios", "condition", "output", "defaults", "dynamic", "apg", "loss",
     "weight", "column"}
)
"""Reserved words of the language; they cannot name features, values or outputs."""


@dataclass(frozen=True)
class Name:
    text: str
    span: Span


@dataclass(frozen=True)
class Ref:
    """A use of a name as a value (a feature, condition or value, or an enum option like `relu`)."""

    name: str
    span: Span


@dataclass(frozen=True)
class Number:
    value: int | float
    text: str
    span: Span


@dataclass(frozen=True)
class String:
    """`"uid"`: a double-quoted string (the data options `column` and `splitter`); `value` has
    the escapes (\\\\ \\" \\t \\n) decoded, `text` is the literal as written."""

    value: str
    text: str
    span: Span


@dataclass(frozen=True)
class Factor:
    """`4x`: a multiple of the layer's rank."""

    value: int
    text: str
    span: Span


@dataclass(frozen=True)
class Fraction:
    """`1/4`: a fraction of min(N, M)."""

    numerator: int
    denominator: int
    text: str
    span: Span


@dataclass(frozen=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class Kwarg:
    name: Name
    value: Expr
    span: Span


@dataclass(frozen=True)
class Modifier:
    """`dynamic(...)` or `apg(...)` written after a call."""

    name: Name
    args: tuple[Expr, ...]
    kwargs: tuple[Kwarg, ...]
    span: Span


@dataclass(frozen=True)
class Call:
    func: Name
    args: tuple[Expr, ...]
    kwargs: tuple[Kwarg, ...]
    modifiers: tuple[Modifier, ...]
    span: Span


Expr = Ref | Number | String | Factor | Fraction | ListExpr | Call


@dataclass(frozen=True)
class ModelDecl:
    name: Name
    span: Span


@dataclass(frozen=True)
class FeatureDecl:
    name: Name
    kind: Call
    scenario: Span | None
    """Span of the `scenario` mark, when the feature is scenario-sensitive."""
    span: Span


@dataclass(frozen=True)
class ScenarioDecl:
    features: tuple[Name, ...]
    span: Span


@dataclass(frozen=True)
class ConditionDecl:
    name: Name
    value: Expr
    span: Span


@dataclass(frozen=True)
class LetDecl:
    name: Name
    value: Expr
    span: Span


@dataclass(frozen=True)
class OutputDecl:
    name: Name
    value: Expr
    loss: Name | None
    weight: Number | None
    span: Span
    column: String | None = None
    """`column = "..."`: the raw-data column of the target (`dwc data prepare`)."""


@dataclass(frozen=True)
class DefaultsDecl:
    modifiers: tuple[Modifier, ...]
    span: Span


Statement = ModelDecl | FeatureDecl | ScenarioDecl | ConditionDecl | LetDecl | OutputDecl | DefaultsDecl


@dataclass(frozen=True)
class Comment:
    text: str
    span: Span


@dataclass(frozen=True)
class Spec:
    """A whole .dw file: its statements in order, and its comments (kept for `dwc fmt`)."""

    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...]
