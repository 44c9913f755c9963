"""Every lint rule: a failing case at an exact location, a passing case, and a rendered snapshot;
the registry, the docs and the tests cover the same codes."""

from __future__ import annotations

import pytest

from dwc.diagnostics import CODES
from dwc.diagnostics.render import render_text
from dwc.lint import RULES, LintConfig, lint_source
from dwc.source import SourceFile

BASE = """model m
feature a : categorical(vocab = 100, dim = 8)
feature b : categorical(vocab = 50, dim = 8)
feature s : categorical(vocab = 4, dim = 4) scenario
scenarios s
condition z = concat(s)
"""
OUT = "output y = sigmoid(linear(h, 1)) loss = bce\n"

# code -> (failing spec, (line, column) of the finding, passing spec)
CASES = {
    "DW501": (BASE + "feature c : numeric\nh = mlp(concat(a, b), [8]) dynamic(by = z)\n" + OUT,
              (7, 9), BASE + "h = mlp(concat(a, b), [8]) dynamic(by = z)\n" + OUT),
    "DW502": (BASE + "feature t : categorical(vocab = 3, dim = 2) scenario\n"
              "h = mlp(concat(a, b, t), [8]) dynamic(by = z)\n" + OUT, (7, 45),
              BASE + "h = mlp(concat(a, b), [8]) dynamic(by = z)\n" + OUT),
    "DW503": (BASE + "h = mlp(concat(a, b), [8]) dynamic(by = self)\n" + OUT, (7, 28),
              BASE + "h = mlp(concat(a, b), [8]) dynamic(by = concat(self, z))\n" + OUT),
    "DW504": (BASE.replace("vocab = 100,", "vocab = 500_000,").replace(
        "feature a : categorical(vocab = 500_000, dim = 8)",
        "feature a : categorical(vocab = 500_000, dim = 8) scenario")
        + "condition za = concat(a, s)\nh = mlp(b, [8]) dynamic(by = za)  # dwc: ignore[DW505]\n"
        + OUT, (8, 17), BASE + "h = mlp(concat(a, b), [8]) dynamic(by = z)\n" + OUT),
    "DW505": (BASE.replace("feature a : categorical(vocab = 100, dim = 8)",
                           "feature a : categorical(vocab = 50_000, dim = 8) scenario")
              + "h = mlp(concat(a, b), [8]) dynamic(by = z)\n" + OUT, (2, 50),
              BASE + "h = mlp(concat(a, b), [8]) dynamic(by = z)\n" + OUT),
    "DW506": (BASE + "h = linear(concat(a, b), 8) dynamic(by = z) apg(rank = 6)\n" + OUT,
              (7, 5), BASE + "h = linear(concat(a, b), 8) dynamic(by = z) apg(rank = 2)\n" + OUT),
    "DW507": (BASE + "h = linear(concat(a, b), 8) dynamic(by = z) apg(rank = 4, overparam = 2)\n"
              + OUT, (7, 5),
              BASE + "h = linear(concat(a, b), 8) dynamic(by = z) apg(rank = 4, overparam = 2x)\n"
              + OUT),
    "DW508": (BASE + "h = linear(mlp(concat(a, b), [512]), 512) dynamic(by = z)\n" + OUT, (7, 5),
              BASE + "h = linear(mlp(concat(a, b), [512]), 512) dynamic(by = z) apg(rank = 16)\n"
              + OUT),
    "DW509": (BASE + "h = linear(concat(a, b, s), 20) dynamic(by = self) apg(rank = 16)\n"
              + OUT, (7, 52),
              BASE + "h = linear(concat(a, b, s), 20) dynamic(by = self, bias = static) "
              "apg(rank = 2)\n" + OUT),
    "DW510": (BASE + "h = ppnet(concat(a, b), [8], by = z, placement = post_activation)\n" + OUT,
              (7, 38), BASE + "h = ppnet(concat(a, b), [8], by = z)\n" + OUT),
    "DW511": (BASE + "e = concat(a, b)\ncondition g = concat(s, e)\nh = gate(e, by = g)\n" + OUT,
              (9, 5), BASE + "e = concat(a, b)\ncondition g = concat(s, stop_gradient(e))\n"
              "h = gate(e, by = g)\n" + OUT),
    "DW512": (BASE + "h = mlp(concat(a, b), [8]) dynamic(by = z)\n"
              "output y = identity(linear(h, 1)) loss = poisson\n", (8, 42),
              BASE + "h = mlp(concat(a, b), [8]) dynamic(by = z)\n"
              "output y = exp(linear(h, 1)) loss = poisson\n"),
    "DW513": (BASE + "h = mlp(concat(a, b), [8]) dynamic(by = z)\nh2 = mlp(h, [4])\n" + OUT,
              (8, 1), BASE + "h = mlp(concat(a, b), [8]) dynamic(by = z)\n" + OUT),
    "DW514": (BASE.replace("scenarios s\ncondition z = concat(s)", "feature u : categorical(vocab = 3, "
                           "dim = 2) scenario\nscenarios s\ncondition z = concat(s, u)")
              + "h = mlp(concat(a, b), [8]) dynamic(by = z)\n" + OUT, (7, 25),
              BASE.replace("scenarios s\ncondition z = concat(s)", "feature u : categorical(vocab = 3, "
                           "dim = 2) scenario\nscenarios s * u\ncondition z = concat(s, u)")
              + "h = mlp(concat(a, b), [8]) dynamic(by = z)\n" + OUT),
    "DW515": (BASE + "h = mlp(concat(a, b), [8, 8]) dynamic(by = self, init = default)\n" + OUT,
              (7, 50), BASE + "h = mlp(concat(a, b), [8, 8]) dynamic(by = self)\n" + OUT),
}


def findings(text: str, code: str | None = None, **config):
    source = SourceFile("case.dw", text)
    found = lint_source(source, LintConfig(**config))
    return source, [d for d in found if code is None or d.code == code]



def _kind_cases() -> dict:
    """A layer kind's lint rules keep their cases beside the kind's tests: `LINT_CASES` (same
    shape as CASES) in tests/layers/test_<kind>.py."""
    import importlib
    from pathlib import Path

    found = {}
    for path in sorted((Path(__file__).parent.parent / "layers").glob("test_*.py")):
        found.update(getattr(importlib.import_module(f"tests.layers.{path.stem}"), "LINT_CASES", {}))
    return found


CASES.update(_kind_cases())


@pytest.mark.parametrize("code", sorted(CASES))
def test_rule_fires_at_location(code, golden):
    text, location, _ = CASES[code]
    source, found = findings(text, code)
    assert found, f"{code} did not fire"
    assert found[0].location(source) == location
    assert found[0].help
    golden(f"lint/{code}.txt", render_text(found[0], source) + "\n")


@pytest.mark.parametrize("code", sorted(CASES))
def test_rule_passes_on_the_fixed_spec(code):
    _, _, passing = CASES[code]
    assert findings(passing, code)[1] == []


def test_registry_docs_and_tests_cover_the_same_codes():
    lint_codes = {c for c in CODES if c.startswith("DW5")}
    assert set(RULES) == lint_codes == set(CASES)
    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "lint.md").read_text()
    for code in lint_codes:
        assert f"## {code}" in doc


def test_suppression_comments():
    text, _, _ = CASES["DW513"]
    suppressed = text.replace("h2 = mlp(h, [4])", "h2 = mlp(h, [4])  # dwc: ignore[DW513]")
    assert findings(suppressed, "DW513")[1] == []
    other_code = text.replace("h2 = mlp(h, [4])", "h2 = mlp(h, [4])  # dwc: ignore[DW501]")
    assert findings(other_code, "DW513")[1]
    bare = text.replace("h2 = mlp(h, [4])", "h2 = mlp(h, [4])  # dwc: ignore")
    assert findings(bare, "DW513")[1] == []
    whole = "# dwc: ignore-file[DW513]\n" + text
    assert findings(whole, "DW513")[1] == []


def test_select_and_ignore():
    text, _, _ = CASES["DW501"]
    assert findings(text, "DW501", ignore={"DW501"})[1] == []
    assert findings(text, "DW501", select={"DW51"})[1] == []
    assert findings(text, "DW501", select={"DW5"})[1]


def test_batch_drives_the_memory_rule():
    text, _, _ = CASES["DW508"]
    assert findings(text, "DW508", batch=64)[1] == []
    _, found = findings(text, "DW508", batch=4096)
    assert "4,096 MiB at batch 4096" in found[0].message
    assert "apg(rank = 64)" in found[0].help


def test_spec_errors_are_findings_too():
    source, found = findings("model m\nh = linear(q, 4)\n")
    assert [d.code for d in found] == ["DW201"]


def test_a_statement_lowered_to_several_generators_reports_a_finding_once():
    """A self-wise multi-layer mlp has one generator per layer; DW503 is about the statement."""
    text = ("model m\nfeature a : categorical(vocab = 10, dim = 4)\n"
            "feature b : categorical(vocab = 10, dim = 4)\nx = concat(a, b)\n"
            "h = mlp(x, [6, 4]) dynamic(by = self)\noutput o = sigmoid(linear(h, 1)) loss = bce\n")
    found = lint_source(SourceFile("m.dw", text), LintConfig())
    assert [d.code for d in found].count("DW503") == 1
    # per-layer findings stay (one per layer), each naming its layer
    assert [d.message for d in found if d.code == "DW509"] == [
        "self-wise generation of layer 1 (8 -> 6) of 'h' costs 864 FLOPs per sample, more than "
        "a dense layer of that shape (96)",
        "self-wise generation of layer 2 (6 -> 4) of 'h' costs 336 FLOPs per sample, more than "
        "a dense layer of that shape (48)"]


def test_the_registry_is_one_module_per_rule_with_its_docs():
    """ruff's layout: dwc/lint/rules/<name>.py holds the rule's check and its docs; RULES is found
    from the modules (a new rule is one new file), in code order."""
    from dwc.layers import kinds
    from dwc.lint import rules
    from tests.conftest import ROOT

    modules = {p.stem for p in (ROOT / "dwc" / "lint" / "rules").glob("*.py")} - {"__init__", "base"}
    kind_rules = {cls.code: name for name, kind in kinds().items() for cls in kind.lint_rules}
    core = [c for c in RULES if c not in kind_rules]
    assert {CODES[c].name.replace("-", "_") for c in core} == modules
    assert list(RULES) == sorted(RULES)
    for code, rule in RULES.items():
        home = (f"dwc.layers.{kind_rules[code]}.lint" if code in kind_rules
                else f"dwc.lint.rules.{CODES[code].name.replace('-', '_')}")
        assert type(rule).__module__ == home, code
        assert rule.what and rule.why and rule.example and rule.use_instead, code
    with pytest.raises(TypeError, match="'## Why is this bad[?]'"):
        class Undocumented(rules.Rule):
            """## What it does
            Something."""

            code = "DW599"
