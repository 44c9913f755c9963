"""Generates the reference parts of docs/ from the registries, so they cannot drift.

`python -m dwc.docgen` rewrites docs/diagnostics.md and the operation reference inside
docs/language.md (between the `<!-- BEGIN GENERATED -->` markers); `--check` exits 1 if either is
stale (a test runs it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from dwc.diagnostics.codes import CODES
from dwc.sema.signatures import REQUIRED, SIGNATURES

BEGIN, END = "<!-- BEGIN GENERATED: operations -->", "<!-- END GENERATED: operations -->"
_CONTEXT_TITLES = {
    "feature": "Feature kinds (`feature NAME : KIND(...)`)",
    "network": "Network operations (in `name = ...` and `condition name = ...`)",
    "head": "Output heads (`output NAME = HEAD(...) loss = ...`)",
    "modifier": "Modifiers (written after a layer call)",
}


def _default(value: object) -> str:
    if value is REQUIRED:
        return "required"
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def operations_reference() -> str:
    out = [BEGIN, ""]
    for context, title in _CONTEXT_TITLES.items():
        out += [f"### {title}", ""]
        for sig in SIGNATURES.values():
            if sig.context != context:
                continue
            shown = [p.name for p in sig.positional]
            if len(shown) < len(sig.params):
                shown.append("...")
            out += [f"#### `{sig.name}({', '.join(shown)})`",
                    "", sig.doc, "", f"    {sig.example}", ""]
            out += ["| argument | kind | default | meaning |", "|---|---|---|---|"]
            for p in sig.params:
                choices = " \\| ".join(p.choices)
                kind = p.kind + (f": {choices}" if p.choices else "")
                where = " (positional)" if p.positional else ""
                out.append(f"| `{p.name}`{where} | {kind} | {_default(p.default)} | {p.doc} |")
            if sig.dynamic:
                out += ["", "Accepts `dynamic(...)`."]
            out.append("")
    out.append(END)
    return "\n".join(out)


def diagnostics_reference() -> str:
    out = ["# Diagnostic codes", "",
           "Generated from `dwc/diagnostics/codes.py` by `python -m dwc.docgen`; do not edit.", "",
           "Every message dwc prints about a spec carries one of these codes, a `file:line:col`, the",
           "source line with carets under the problem, and a `help:` line with a concrete fix.", "",
           "| code | name | severity | meaning |", "|---|---|---|---|"]
    for c in CODES.values():
        out.append(f"| {c.code} | `{c.name}` | {c.severity.value} | {c.summary} |")
    out.append("")
    for c in CODES.values():
        out += [f"## {c.code} `{c.name}`", "", f"{c.summary}.", "", c.explanation, ""]
    return "\n".join(out)


def lint_reference() -> str:
    from dwc.lint.rules import RULES

    out = ["# Lint rules", "",
           "Generated from `dwc/lint/rules/` (each rule's module) by `python -m dwc.docgen`; do not "
           "edit.", "",
           "`dwc lint FILE... [--format text|json|sarif|github] [--select CODES] [--ignore CODES] "
           "[--batch B] [--exit-zero]` exits 0 when clean, 1 with findings, 2 on usage errors. "
           "Syntax and semantic errors (DW1xx-DW3xx, docs/diagnostics.md) are reported too. A file "
           "that cannot be read is reported as DW401 in every format, the other files are still "
           "linted, and the exit is 2 (even with `--exit-zero`). `--format github` writes GitHub "
           "Actions workflow commands, with newlines, `%` and (in the file) `,` and `:` encoded "
           "as the runner expects.", "",
           "`--select` and `--ignore` take comma-separated codes or prefixes (`DW5`, `DW50`); a code "
           "or prefix that matches no rule, or an empty `--select`, is a usage error (exit 2) that "
           "names it, so a typo never lints nothing in silence. The same holds for `select` and "
           "`ignore` in `[tool.dwc]` (an empty `ignore` is fine).", "",
           "Suppress a finding with `# dwc: ignore[DW505]` on its line (or a bare `# dwc: ignore`), "
           "for a whole file with `# dwc: ignore-file[DW505]`. Settings live in `pyproject.toml`:",
           "", "```toml", "[tool.dwc]", 'select = ["DW5"]          # codes or prefixes',
           'ignore = ["DW510"]', "batch = 4096               # reference batch for memory rules",
           "memory-budget-mib = 1024   # DW508", "huge-vocab = 100000        # DW504",
           "scenario-max-vocab = 10000 # DW505", "```", "",
           "| code | name | severity | summary |", "|---|---|---|---|"]
    for code in RULES:
        c = CODES[code]
        out.append(f"| [{code}](#{code.lower()}) | `{c.name}` | {c.severity.value} | {c.summary} |")
    out.append("")
    for code, rule in RULES.items():
        c = CODES[code]
        out += [f"## {code}", "", f"`{c.name}` ({c.severity.value})", "",
                f"**What it does.** {rule.what}", "", f"**Why is this bad?** {rule.why}", "",
                "**Example**", "", "```", rule.example, "```", "", "**Use instead**", "", "```",
                rule.use_instead, "```", ""]
    return "\n".join(out)


def render(root: Path) -> dict[Path, str]:
    language = root / "docs" / "language.md"
    text = language.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return {
        root / "docs" / "diagnostics.md": diagnostics_reference(),
        root / "docs" / "lint.md": lint_reference(),
        language: text[:start] + operations_reference() + text[end:],
    }


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    stale = []
    for path, content in render(root).items():
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            stale.append(path)
            if "--check" not in argv:
                path.write_text(content, encoding="utf-8")
    if stale and "--check" in argv:
        print("stale: " + ", ".join(str(p) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
