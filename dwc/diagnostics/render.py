"""Renderers for diagnostics: rustc-style text for people, JSON (stable keys) for machines."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence

from dwc.diagnostics.codes import CODES
from dwc.diagnostics.model import Diagnostic, Label
from dwc.source import SourceFile


def _underline(source: SourceFile, label: Label, line: int, char: str) -> tuple[int, int]:
    """Column range (0-based start, width) of `label` on `line`, clipped to that line."""
    start_line, start_col = source.location(label.span.start)
    end_line, end_col = source.location(max(label.span.start, label.span.end))
    text = source.line_text(line)
    begin = start_col - 1 if start_line == line else 0
    finish = end_col - 1 if end_line == line else len(text)
    return begin, max(1, finish - begin)


def escape_controls(text: str) -> str:
    """`text` with its control characters (but newlines and tabs) written as escapes: a message
    may quote bytes of a binary file, which must not drive the user's terminal."""
    if text.isprintable():
        return text
    return "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) == "Cc" and c not in "\n\t"
                   else c for c in text)


def _line(text: str) -> str:
    """A source line as shown under a diagnostic: each control character one `?`, so the
    carets below still line up."""
    if text.isprintable():
        return text
    return "".join("?" if unicodedata.category(c) == "Cc" and c != "\t" else c for c in text)


def render_text(diagnostic: Diagnostic, source: SourceFile) -> str:
    """Render one diagnostic like rustc: header, location, the source line with carets, help.
    Control characters in the text are escaped (escape_controls, _line)."""
    return "\n".join(escape_controls(line) for line in _render(diagnostic, source).split("\n"))


def _render(diagnostic: Diagnostic, source: SourceFile) -> str:
    header = f"{diagnostic.level.value}[{diagnostic.code}]: {diagnostic.message}"
    if not diagnostic.located:
        out = [header, f" --> {source.name}"]
        out += [f"  = note: {note}" for note in diagnostic.notes]
        if diagnostic.help:
            out.append(f"  = help: {diagnostic.help}")
        return "\n".join(out)
    line, col = diagnostic.location(source)
    labels: list[tuple[Label, str]] = [(diagnostic.primary, "^")]
    labels += [(label, "-") for label in diagnostic.secondary]
    lines = sorted({source.location(lab.span.start)[0] for lab, _ in labels})
    gutter = len(str(max(lines)))
    pad = " " * gutter
    out = [header, f"{pad}--> {source.name}:{line}:{col}", f"{pad} |"]
    previous = None
    for number in lines:
        if previous is not None and number > previous + 1:
            out.append(f"{pad} ...")
        previous = number
        out.append(f"{number:>{gutter}} | {_line(source.line_text(number))}".rstrip())
        for label, char in labels:
            if source.location(label.span.start)[0] != number:
                continue
            begin, width = _underline(source, label, number, char)
            marks = " " * begin + char * width
            out.append(f"{pad} | {marks} {label.message}".rstrip())
    out.append(f"{pad} |")
    for note in diagnostic.notes:
        out.append(f"{pad} = note: {note}")
    if diagnostic.help:
        out.append(f"{pad} = help: {diagnostic.help}")
    return "\n".join(out)


def diagnostic_dict(diagnostic: Diagnostic, source: SourceFile) -> dict[str, object]:
    """The stable JSON shape of a diagnostic (keys never renamed; new keys may be added)."""
    if diagnostic.located:
        line, col = source.location(diagnostic.span.start)
        end_line, end_col = source.location(diagnostic.span.end)
    else:
        line = col = end_line = end_col = None
    return {
        "code": diagnostic.code,
        "name": CODES[diagnostic.code].name,
        "severity": diagnostic.level.value,
        "message": diagnostic.message,
        "file": source.name,
        "line": line,
        "column": col,
        "end_line": end_line,
        "end_column": end_col,
        "help": diagnostic.help,
        "notes": list(diagnostic.notes),
    }


def render_json(diagnostics: Sequence[Diagnostic], source: SourceFile) -> str:
    return json.dumps([diagnostic_dict(d, source) for d in diagnostics], indent=2)
