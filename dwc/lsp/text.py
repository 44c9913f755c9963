"""Text-level helpers of the language server: LSP positions and a token scan that works on any
text, parseable or not.

LSP positions are (line, character) with characters counted in UTF-16 code units (the protocol's
default encoding); dwc spans are character offsets. `Lines` converts between the two. `tokens`
splits a spec into names, numbers, punctuation and comments the way grammar/dwc.lark's lexer
does, and records the bracket depth of each token, so that completion and hover can read the
context of a half-typed statement that does not parse.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from dwc.parse.ast import KEYWORDS

STATEMENT_KEYWORDS = ("model", "feature", "scenarios", "condition", "output", "defaults")
"""The keywords a statement starts with (grammar/dwc.lark's `_statement`)."""

_TOKEN = re.compile(r"""
    (?P<comment>\#[^\n]*)
  | (?P<number>[0-9][0-9_]*(?:x(?![A-Za-z0-9_])|/[0-9][0-9_]*|(?:\.[0-9][0-9_]*)?(?:[eE][+-]?[0-9]+)?))
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[()\[\],=:*/-])
""", re.X)
_WORD = re.compile(r"[A-Za-z0-9_]")


class Lines:
    """Offsets <-> LSP positions for one text, counting characters in the encoding the client and
    server agreed on ("utf-16", the protocol's default, "utf-8" or "utf-32")."""

    def __init__(self, text: str, encoding: str = "utf-16") -> None:
        if encoding not in _UNITS:
            raise ValueError(f"unknown position encoding {encoding!r}")
        self.text = text
        self.units = _UNITS[encoding]
        self.starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def position(self, offset: int) -> tuple[int, int]:
        """(line, character in code units) of a character offset, both 0-based."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.starts, offset) - 1
        return line, sum(map(self.units, self.text[self.starts[line]:offset]))

    def offset(self, line: int, character: int) -> int:
        """The character offset of an LSP position (clamped to the text)."""
        if line >= len(self.starts):
            return len(self.text)
        start = self.starts[max(0, line)]
        end = self.starts[line + 1] - 1 if line + 1 < len(self.starts) else len(self.text)
        units = 0
        for i in range(start, end):
            if units >= character:
                return i
            units += self.units(self.text[i])
        return end


_UNITS = {"utf-16": lambda ch: 2 if ord(ch) > 0xFFFF else 1,
          "utf-8": lambda ch: len(ch.encode("utf-8")),
          "utf-32": lambda ch: 1}


@dataclass(frozen=True)
class Token:
    kind: str
    """comment, number, name, keyword or punct."""
    text: str
    start: int
    end: int
    depth: int
    """Brackets open before the token (a closing bracket counts itself as closed)."""


def tokens(text: str, end: int | None = None) -> list[Token]:
    """The tokens of `text` (up to offset `end`); characters no token starts with are skipped,
    as the parser's DW101 reports them.

    A name or statement keyword in the first column starts a statement at depth 0 even after an
    unclosed bracket (continuation lines of a call are indented), so one unfinished statement
    does not swallow the rest of the file."""
    found: list[Token] = []
    depth = 0
    for match in _TOKEN.finditer(text, 0, len(text) if end is None else end):
        kind = match.lastgroup or "punct"
        word = match.group(0)
        if kind == "name" and word in KEYWORDS:
            kind = "keyword"
        at_column_0 = match.start() == 0 or text[match.start() - 1] == "\n"
        if at_column_0 and (kind == "name" or word in STATEMENT_KEYWORDS):
            depth = 0
        if word in ")]":
            depth = max(0, depth - 1)
        found.append(Token(kind, word, match.start(), match.end(), depth))
        if word in "([":
            depth += 1
    return found


def word_at(text: str, offset: int) -> tuple[str, int, int]:
    """The name, number or code (`DW502`) touching `offset`: (word, start, end); "" if none."""
    start = offset
    while start > 0 and _WORD.match(text[start - 1]):
        start -= 1
    end = offset
    while end < len(text) and _WORD.match(text[end]):
        end += 1
    return text[start:end], start, end


def in_comment(text: str, offset: int) -> bool:
    """Whether `offset` lies inside a `#` comment (the language has no strings: a `#` always
    starts one)."""
    line_start = text.rfind("\n", 0, offset) + 1
    return "#" in text[line_start:offset]
