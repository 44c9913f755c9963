"""Running the lint rules on specs: configuration, suppression comments and output formats.

Settings come from `[tool.dwc]` in the nearest pyproject.toml above the spec (select, ignore,
batch, memory-budget-mib, huge-vocab, scenario-max-vocab); CLI flags override them. A finding is
suppressed by `# dwc: ignore[DW505]` (or a bare `# dwc: ignore`) on its line, or for the whole file
by `# dwc: ignore-file[DW505]`. Syntax and semantic errors (DW1xx-DW3xx) are findings too; they
cannot be suppressed.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from dwc import __version__
from dwc.diagnostics import CODES, Diagnostic, DiagnosticError, render_text
from dwc.diagnostics.render import diagnostic_dict, escape_controls
from dwc.ir.graph import Graph
from dwc.parse import ast
from dwc.source import SourceFile

_SUPPRESS = re.compile(r"#\s*dwc:\s*ignore(-file)?(?:\[([A-Z0-9,\s]*)\])?")


@dataclass
class LintConfig:
    select: set[str] | None = None
    """Only these codes (prefixes allowed: DW5). None = every rule."""
    ignore: set[str] = field(default_factory=set)
    batch: int = 4096
    memory_budget_mib: int = 1024
    huge_vocab: int = 100_000
    scenario_max_vocab: int = 10_000

    def wants(self, code: str) -> bool:
        if any(code.startswith(p) for p in self.ignore):
            return False
        return self.select is None or any(code.startswith(p) for p in self.select)


_KEYS = {"select": "select", "ignore": "ignore", "batch": "batch",
         "memory-budget-mib": "memory_budget_mib", "huge-vocab": "huge_vocab",
         "scenario-max-vocab": "scenario_max_vocab"}


MAX_BATCH = 2**31 - 1
"""The largest batch `dwc lint` and `dwc explain` take (`[tool.dwc] batch`, `--batch`); beyond it
the memory figures mean nothing."""


class ConfigError(ValueError):
    pass


def find_config(start: Path) -> tuple[LintConfig, Path | None]:
    """The `[tool.dwc]` settings of the nearest pyproject.toml at or above `start`."""
    for directory in [start, *start.parents]:
        path = directory / "pyproject.toml"
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get(
                    "dwc", {})
            except tomllib.TOMLDecodeError as error:
                raise ConfigError(f"{path}: {error}") from None
            except UnicodeDecodeError as error:  # TOML is UTF-8 by definition
                raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}: "
                                  f"{error.object[error.start:error.start + 1]!r})") from None
            except OSError as error:
                raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
            config = LintConfig()
            for key, value in data.items():
                if key not in _KEYS:
                    raise ConfigError(f"{path}: unknown [tool.dwc] key {key!r} "
                                      f"(keys: {', '.join(_KEYS)})")
                if key in ("select", "ignore"):
                    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                        raise ConfigError(f"{path}: [tool.dwc] {key} must be a list of codes, "
                                          f'e.g. {key} = ["DW5"], not {value!r}')
                    value = set(value)
                    check_codes(value, f"{path}: [tool.dwc] {key}", empty_ok=key == "ignore")
                elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError(f"{path}: [tool.dwc] {key} must be a positive integer, "
                                      f"not {value!r}")
                elif key == "batch" and value > MAX_BATCH:
                    raise ConfigError(f"{path}: [tool.dwc] batch must lie in 1 .. "
                                      f"{MAX_BATCH:,}, not {value:,}")
                setattr(config, _KEYS[key], value)
            return config, path
    return LintConfig(), None


def check_codes(codes: set[str] | None, option: str, empty_ok: bool = True) -> None:
    """Raise ConfigError for a code (or prefix) in `--select`/`--ignore` that matches no lint rule,
    or for an empty selection unless `empty_ok` (selecting nothing would lint nothing, silently).

    `option` names where the codes came from (e.g. "--select"); None (no selection) is fine.
    """
    from dwc.lint.rules import RULES

    known = sorted(RULES)
    if codes is not None and not codes and not empty_ok:
        raise ConfigError(f"{option}: no codes given, so nothing would be linted (codes: "
                          f"{known[0]}..{known[-1]}; prefixes such as {known[0][:3]} select "
                          "groups)")
    for code in sorted(codes or ()):
        if code and any(k.startswith(code) for k in known):
            continue
        message = (f"{option}: unknown code {code!r} (codes: {known[0]}..{known[-1]}; prefixes "
                   f"such as {known[0][:3]} are accepted)")
        names = {CODES[k].name: k for k in known}
        fixed = code.strip().upper().replace("O", "0")  # case, blanks, letter O for zero
        if fixed != code and fixed and any(k.startswith(fixed) for k in known):
            message += f"; did you mean {fixed!r}?"
        elif code in names:
            message += f"; {code!r} is the name of {names[code]}: write {names[code]!r}"
        elif code and any(c.startswith(code) for c in CODES):
            what = "is a compiler diagnostic, not a lint rule" if code in CODES else \
                "names compiler diagnostics, not lint rules"
            message += f"; {code} {what} (lint reports spec errors whatever the selection)"
        elif close := difflib.get_close_matches(code, known, n=1):
            message += f"; did you mean {close[0]!r}?"
        raise ConfigError(message)


def _suppressions(source: SourceFile) -> tuple[dict[int, set[str] | None], set[str]]:
    from dwc.parse.parser import comments

    per_line: dict[int, set[str] | None] = {}
    whole_file: set[str] = set()
    for comment in comments(source.text):  # not a '#' inside a string literal
        match = _SUPPRESS.search(comment.group(0))
        if match is None:
            continue
        line = source.location(comment.start())[0]
        codes = {c.strip() for c in (match.group(2) or "").split(",") if c.strip()}
        if match.group(1):
            whole_file |= codes
        else:
            per_line[line] = codes or None  # None: every code on this line
    return per_line, whole_file


def lint_source(source: SourceFile, config: LintConfig,
                checked: tuple[ast.Spec, Graph] | None = None) -> list[Diagnostic]:
    """Every finding for one spec, sorted by position.

    `checked`: the spec's AST and lowered graph when the caller has them already (the language
    server checks first), so that it is not parsed and lowered twice."""
    from dwc.driver import optimize
    from dwc.lint.rules import RULES, LintContext
    from dwc.parse import parse
    from dwc.sema.elaborate import elaborate

    if checked is not None:
        spec, graph = checked
    else:
        try:
            spec = parse(source)
            graph = elaborate(spec, source)
        except DiagnosticError as error:
            return sorted(error.diagnostics, key=lambda d: d.span.start)
    model, _, _, _ = optimize(graph, level=0)
    ctx = LintContext(source, spec, graph, model, config.batch, config.memory_budget_mib,
                      config.huge_vocab, config.scenario_max_vocab)
    per_line, whole_file = _suppressions(source)
    found: dict[tuple[str, int, int, str], Diagnostic] = {}
    for code, rule in RULES.items():
        if not config.wants(code) or code in whole_file:
            continue
        for d in rule.check(ctx):
            line = source.location(d.span.start)[0]
            if line in per_line and (per_line[line] is None or code in per_line[line]):
                continue
            # a statement lowered to several ops (an mlp's per-layer generators) reports a
            # finding once, not once per op
            found.setdefault((d.code, d.span.start, d.span.end, d.message), d)
    return sorted(found.values(), key=lambda d: (d.span.start, d.code))


def render(results: list[tuple[SourceFile, list[Diagnostic]]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([diagnostic_dict(d, s) for s, ds in results for d in ds], indent=2)
    if fmt == "github":
        lines = []
        for source, diagnostics in results:
            for d in diagnostics:
                level = {"error": "error", "warning": "warning", "info": "notice"}[d.level.value]
                where = f"file={_github_property(source.name)}"
                if d.located:  # a file-level finding (an unreadable file) annotates the file
                    line, col = source.location(d.span.start)
                    where += f",line={line},col={col}"
                message = d.message + (f" (help: {d.help})" if d.help else "")
                lines.append(f"::{level} {where},title={d.code}::{_github_data(message)}")
        return "\n".join(lines)
    if fmt == "sarif":
        return json.dumps(sarif(results), indent=2)
    blocks = [render_text(d, s) for s, ds in results for d in ds]
    return "\n\n".join(blocks)


def _github_data(text: str) -> str:
    """A workflow command's message: `%` and newlines percent-encoded as the GitHub runner
    decodes them (a newline would end the command); other control characters, CR among them,
    escaped as in text output."""
    return escape_controls(text).replace("%", "%25").replace("\n", "%0A")


def _github_property(text: str) -> str:
    """A workflow command's property value (the file): as _github_data, and `:` and `,`,
    which end a property, encoded too."""
    return _github_data(text).replace(":", "%3A").replace(",", "%2C")


def sarif(results: list[tuple[SourceFile, list[Diagnostic]]]) -> dict:
    """A SARIF 2.1.0 log: one run, the rule registry as the driver's rules."""
    codes = sorted({d.code for _, ds in results for d in ds})
    rules = [{"id": code, "name": CODES[code].name,
              "shortDescription": {"text": CODES[code].summary},
              "fullDescription": {"text": CODES[code].explanation},
              "defaultConfiguration": {"level": _sarif_level(CODES[code].severity.value)},
              "helpUri": "https://github.com/dwc/dwc/blob/main/docs/lint.md#"
              + code.lower()} for code in codes]
    index = {code: i for i, code in enumerate(codes)}
    out = []
    for source, diagnostics in results:
        for d in diagnostics:
            line, col = source.location(d.span.start)
            end_line, end_col = source.location(max(d.span.end, d.span.start + 1))
            result = {"ruleId": d.code, "ruleIndex": index[d.code],
                      "level": _sarif_level(d.level.value),
                      "message": {"text": d.message + (f"\nhelp: {d.help}" if d.help else "")},
                      "locations": [{"physicalLocation": {
                          "artifactLocation": {"uri": Path(source.name).as_posix()},
                          "region": {"startLine": line, "startColumn": col,
                                     "endLine": end_line, "endColumn": end_col}}}]}
            out.append(result)
    return {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "dwc", "version": __version__,
                                          "informationUri": "https://github.com/dwc/dwc",
                                          "rules": rules}},
                      "results": out}]}


def _sarif_level(severity: str) -> str:
    return {"error": "error", "warning": "warning", "info": "note"}[severity]

