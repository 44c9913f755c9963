"""The diagnostic data model (rustc / ruff style): a code, a primary span, labels and a help line."""

from __future__ import annotations

import difflib
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


@dataclass
class DiagnosticError(Exception):
    """Raised by a stage that cannot continue; carries every diagnostic collected so far."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{d.code}: {d.message}" for d in self.diagnostics)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A `help` line suggesting the closest candidate, or None when nothing is close."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
