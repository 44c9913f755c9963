"""The diagnostic data model (rustc / ruff style): a code, a primary span, labels and a help line."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from dwc.diagnostics.codes import CODES, Severity
from dwc.source import SourceFile, Span


@dataclass(frozen=True)
class Label:
    """A span with a short message, shown under the source line (`---` for secondary labels)."""

    span: Span
    message: str = ""


@dataclass(frozen=True)
class Edit:
    """Replace the text of `span` with `text` (an empty span inserts, an empty text deletes)."""

    span: Span
    text: str


@dataclass(frozen=True)
class Fix:
    """A mechanical fix a diagnostic suggests: a title and the edits that carry it out (what an
    editor offers as a code action)."""

    title: str
    edits: tuple[Edit, ...]


@dataclass(frozen=True)
class Diagnostic:
    """One finding about a spec.

    Messages are lowercase without a trailing period; the fix goes in `help`.
    """

    code: str
    message: str
    primary: Label
    help: str | None = None
    secondary: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    severity: Severity | None = None
    """Overrides the registry's severity (used by lint configuration)."""
    located: bool = True
    """False for file-level problems (unreadable file, unwritable output): no line or column."""
    fixes: tuple[Fix, ...] = ()
    """Structured fixes, when the help's advice is a mechanical edit (see `suggestions`)."""

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"diagnostic code {self.code} is not registered in codes.py")

    @classmethod
    def file_level(cls, code: str, message: str, help: str | None = None,
                   notes: tuple[str, ...] = ()) -> Diagnostic:
        """A finding about a whole file or the environment (unreadable spec, unwritable output,
        missing package): no line or column."""
        return cls(code, message, Label(Span(0, 0)), help=help, notes=notes, located=False)

    @property
    def level(self) -> Severity:
        return self.severity or CODES[self.code].severity

    @property
    def span(self) -> Span:
        return self.primary.span

    def location(self, source: SourceFile) -> tuple[int, int]:
        return source.location(self.span.start)

    def suggestions(self) -> tuple[Fix, ...]:
        """Every mechanical fix: the explicit `fixes`, and for a help line written by
        `did_you_mean` the replacement of the primary span (the misspelt name) by the match."""
        match = _DID_YOU_MEAN.fullmatch(self.help or "")
        if match is None or not self.located:
            return self.fixes
        name = match.group(1)
        return (Fix(f"replace with '{name}'", (Edit(self.span, name),)), *self.fixes)


@dataclass
class DiagnosticError(Exception):
    """Raised by a stage that cannot continue; carries every diagnostic collected so far."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{d.code}: {d.message}" for d in self.diagnostics)


_DID_YOU_MEAN = re.compile(r"did you mean '([A-Za-z_][A-Za-z0-9_]*)'\?")
"""The help line `did_you_mean` writes (`Diagnostic.suggestions` reads the name back)."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A `help` line suggesting the closest candidate, or None when nothing is close.

    The diagnostic's primary span must be the misspelt name: `Diagnostic.suggestions` offers
    replacing it by the candidate."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
