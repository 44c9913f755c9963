"""dwc/lsp/analysis.py without the protocol: the same findings as `dwc check` + `dwc lint`,
the token scan a broken spec falls back to, and no exception for any half-typed text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dwc.diagnostics import CODES, DiagnosticError
from dwc.driver import check_source
from dwc.lint import LintConfig, lint_source
from dwc.lsp.analysis import (
    DEFAULT_DOCS_URL,
    analyse,
    completions,
    docs_link,
    hover,
    rename_problem,
)
from dwc.lsp.text import Lines
from dwc.source import SourceFile

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.dw"))


def test_every_code_links_to_its_section_of_the_docs():
    """The codeDescription anchors are GitHub's slugs of docs/diagnostics.md's headings."""
    headings = re.findall(r"^## (DW[0-9]{3}) `([a-z0-9-]+)`$",
                          (ROOT / "docs" / "diagnostics.md").read_text(), re.M)
    slugs = {f"{code.lower()}-{name}" for code, name in headings}
    for code in CODES:
        assert docs_link(code).split("#")[1] in slugs, code
    assert docs_link("DW201").startswith(DEFAULT_DOCS_URL + "diagnostics.md#")


@pytest.mark.parametrize("text", [
    "model m\nfeature x : categorical(vocab = 3, dim = 2) scenario\nfeature y : numeric\n"
    "h = mlp(y, [4])\noutput o = sigmoid(linear(h, 1))\n",  # lint: DW502, DW501-free
    "model m\nfeature y : numeric\nh = mlp(yy, [4])\noutput o = sigmoid(linear(h, 1))\n",
    "model m\nfeature y : numeric\nh = mlp(y, [4]\n",
])
def test_diagnostics_are_check_then_lint(text):
    source = SourceFile("t.dw", text)
    try:
        check_source(source)
        expected = lint_source(source, LintConfig())
    except DiagnosticError as error:
        expected = error.diagnostics
    assert analyse(source).diagnostics == expected
    assert expected  # each case has a finding


def test_a_broken_spec_keeps_symbols_and_references():
    text = (ROOT / "examples" / "m2m.dw").read_text()
    good = analyse(SourceFile("m2m.dw", text))
    broken = analyse(SourceFile("m2m.dw", text.replace("[16])\n\n# task 1", "[16]\n\n# task 1")))
    assert broken.spec is None and broken.diagnostics[0].code.startswith("DW1")
    assert [(s.name, s.kind) for s in broken.symbols] == [(s.name, s.kind) for s in good.symbols]
    assert [s.name for s in broken.symbols if s.scenario] == ["channel", "region"]
    assert [n for n, _ in broken.references if n == "s"] == ["s"] * 4
    # hover facts come from the last version that checked
    offset = text.index("r1 = meta")
    markdown, _ = hover(broken, good, offset)
    assert "42,368" in markdown


def test_positions_count_utf16_units():
    lines = Lines("# é 😀 x\nab")
    assert lines.position(6) == (0, 7)  # the emoji is two UTF-16 units
    assert lines.offset(0, 7) == 6 and lines.offset(1, 1) == 9
    assert lines.offset(5, 0) == 10  # past the end: clamped


@pytest.mark.parametrize("path", EXAMPLES[::6], ids=lambda p: p.stem)
def test_no_exception_on_any_prefix(path):
    """Typing an example from scratch: every 13th prefix analysed, with hover and completion at
    its end and in its middle."""
    text = path.read_text()
    good = analyse(SourceFile(path.name, text))
    for end in range(0, len(text), 13):
        now = analyse(SourceFile(path.name, text[:end]))
        for offset in (end, end // 2):
            completions(now, offset)
            hover(now, good, offset)


_BASE = ("model m\nfeature c : categorical(vocab = 3, dim = 2) scenario\n"
         "feature p : categorical(vocab = 2, dim = 2) scenario\nfeature y : numeric\n"
         "scenarios c\ncondition z = concat(c, p)\nh = mlp(y, [4]) dynamic(by = z)\n"
         "output o = sigmoid(linear(h, 1))\n")


def _apply(text, fix):
    for e in sorted(fix.edits, key=lambda e: -e.span.start):
        text = text[:e.span.start] + e.text + text[e.span.end:]
    return text


@pytest.mark.parametrize("text, code, fixes", [
    (_BASE, "DW514", 2),  # add 'p' to the cells; or drop its mark
    (_BASE.replace("concat(c, p)", "concat(c)"), "DW502", 2),  # 'p' conditions nothing: read
    # it in z and add it to the cells (one fix of two edits), or drop its mark
    (_BASE.replace("scenarios c\n", "scenarios c * p\nfeature q : numeric\n"), "DW501", 1),
    (_BASE.replace("dynamic(by = z)", "dynamic(by = z, hiden = [2])"), "DW206", 1),
    (_BASE.replace(" scenario\nfeature p", "\nfeature p"), "DW308", 1),
])
def test_every_offered_fix_resolves_its_finding(text, code, fixes):
    now = analyse(SourceFile("t.dw", text))
    (finding,) = [d for d in now.diagnostics if d.code == code]
    offered = finding.suggestions()
    assert len(offered) == fixes
    for fix in offered:
        fixed = analyse(SourceFile("t.dw", _apply(text, fix)))
        assert code not in [d.code for d in fixed.diagnostics], (fix.title, fixed.diagnostics)
        assert not [d for d in fixed.diagnostics if d.level.value == "error"], fix.title


def test_lsp_without_pygls_is_a_coded_usage_error(monkeypatch, capsys):
    import sys

    from dwc.cli import main

    monkeypatch.setitem(sys.modules, "dwc.lsp.server", None)  # as if pygls were not installed
    assert main(["lsp"]) == 2
    err = capsys.readouterr().err
    assert "error[DW408]" in err and "pip install 'dwc[lsp]'" in err


def test_conditions_offer_scenario_features_first():
    text = (ROOT / "examples" / "m2m.dw").read_text()
    marker = "condition s = mlp(concat("
    offset = text.index(marker) + len(marker)
    now = analyse(SourceFile("m2m.dw", text))
    items = {c.label: c for c in completions(now, offset)}
    first = sorted(items.values(), key=lambda c: (c.sort, c.label))[:2]
    assert [c.label for c in first] == ["channel", "region"]
    assert "advertiser" in items and "h" in items and "mlp" in items
    assert "s" not in items  # the condition being written is not in scope yet


def test_positions_in_the_other_encodings():
    text = "# é 😀 x\nab"
    assert Lines(text, "utf-8").position(6) == (0, 10)  # é is 2 bytes, the emoji 4
    assert Lines(text, "utf-8").offset(0, 10) == 6
    assert Lines(text, "utf-32").position(6) == (0, 6)


def test_references_skip_enum_choices_and_rename_checks_the_name():
    text = ("model m\nfeature tanh : numeric\nfeature y : numeric\n"
            "h = activation(mlp(concat(tanh, y), [4], act = tanh), tanh)\n"
            "output o = sigmoid(linear(h, 1))\n")
    now = analyse(SourceFile("t.dw", text))
    spans = [span.start for name, span in now.references if name == "tanh"]
    assert spans == [text.index("concat(tanh") + len("concat(")]  # not the two activations
    assert rename_problem(now, "price") is None
    assert "reserved" in rename_problem(now, "output")
    assert "already declared" in rename_problem(now, "y")
    assert "not a name" in rename_problem(now, "2x")


def test_after_an_output_call_the_clauses_and_modifiers():
    text = "model m\nfeature y : numeric\noutput o = sigmoid(linear(y, 1)) \n"
    now = analyse(SourceFile("t.dw", text))
    items = {c.label: c for c in completions(now, len(text) - 1)}
    assert items["loss"].insert == "loss = $0" and "weight" in items and "dynamic" in items
    losses = completions(analyse(SourceFile("t.dw", text[:-1] + "loss = ")), len(text) + 6)
    assert [c.label for c in losses] == ["bce", "ce", "mse", "poisson"]
