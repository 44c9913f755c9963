"""Source text and spans, shared by every stage that reports a location.

A `Span` is a pair of character offsets into one `SourceFile`; line and column are computed only
when a diagnostic is rendered (the xdsl approach), so spans stay cheap to copy onto AST and IR nodes.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open range `[start, end)` of character offsets into the spec being compiled."""

    start: int
    end: int


NO_SPAN = Span(0, 0)
"""Used for synthesised nodes that have no text of their own (e.g. defaults)."""


@dataclass(frozen=True)
class SourceFile:
    """The text of one spec and the name it is reported under (usually its path)."""

    name: str
    text: str
    _line_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = [0]
        starts.extend(i + 1 for i, ch in enumerate(self.text) if ch == "\n")
        object.__setattr__(self, "_line_starts", tuple(starts))

    def location(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        start = self._line_starts[line - 1]
        end = self._line_starts[line] - 1 if line < len(self._line_starts) else len(self.text)
        return self.text[start:end].rstrip("\r")
