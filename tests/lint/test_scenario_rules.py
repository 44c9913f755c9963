"""The scenario rules against the specs users write: DW502 on a shared-MLP baseline (and advice
that checks when followed), DW514 on an APG whose condition reads a feature `scenarios` omits
(its numbers are `dwc explain`'s)."""

from __future__ import annotations

import json
import re

import pytest

from dwc.cli import main
from dwc.lint import LintConfig, lint_source
from dwc.source import SourceFile
from tests.conftest import ROOT, diagnostics_of
from tests.lint.test_rules import BASE, CASES, OUT


def lint(text: str, code: str):
    source = SourceFile("case.dw", text)
    return [d for d in lint_source(source, LintConfig()) if d.code == code]


# --- DW502 ---------------------------------------------------------------------------------------

def test_shared_mlp_baseline_declaring_cells_for_metrics_is_clean():
    """experiments/shared_mlp.dw marks 'domain' scenario only to declare `scenarios domain` (per-
    scenario metrics); that is a use. Its suppression comment is taken out for the test."""
    text = (ROOT / "experiments" / "shared_mlp.dw").read_text()
    text = re.sub(r"\s*# dwc: ignore\[DW502\].*", "", text)
    assert "dwc: ignore" not in text
    assert lint_source(SourceFile("shared_mlp.dw", text), LintConfig()) == []


def test_a_scenario_feature_outside_the_cells_that_nothing_reads_still_fires():
    text = BASE.replace("scenarios s", "feature t : categorical(vocab = 3, dim = 2) scenario\n"
                        "scenarios s") + "h = mlp(concat(a, b, t), [8]) dynamic(by = z)\n" + OUT
    assert [d.message for d in lint(text, "DW502")] == [
        "scenario-sensitive feature 't' conditions nothing"]


T_MARKED = "feature t : categorical(vocab = 3, dim = 2) scenario\n"
DW502_SPECS = {
    # t declared after the only condition: adding it there would be a use before definition
    "declared-late": CASES["DW502"][0],
    # t declared above z: reading it in z is offered verbatim, with adding it to the cells
    "declared-early": BASE.replace("scenarios s", T_MARKED + "scenarios s")
    + "h = mlp(concat(a, b, t), [8]) dynamic(by = z)\n" + OUT,
    # t declared between the cells and z: the cells move below t
    "declared-between": BASE.replace("scenarios s\n", "scenarios s\n" + T_MARKED)
    + "h = mlp(concat(a, b, t), [8]) dynamic(by = z)\n" + OUT,
    # t read only by a condition no layer uses: dropping the mark leaves that condition without
    # a scenario feature (DW314), so it must not be advised
    "dead-condition": BASE + T_MARKED + "condition zt = concat(t)\n"
    "h = mlp(concat(a, b), [8]) dynamic(by = z)\n" + OUT,
    # a numeric scenario feature, no condition at all (an LHUC domain)
    "no-condition": "model m\nfeature a : categorical(vocab = 100, dim = 8)\n"
    "feature s : categorical(vocab = 4, dim = 4) scenario\nfeature t : numeric scenario\n"
    "h = lhuc(mlp(concat(a, t), [8]), by = s)\n" + OUT,
}


def _apply_advice(text: str, help: str, mark) -> list[tuple[str, str]]:
    """Every edit the help offers verbatim, applied to the spec: (what, edited text)."""
    edits = []
    if "drop the 'scenario' mark" in help and "would give" not in help:
        edits.append(("drop the mark", text[:mark.start].rstrip(" ") + text[mark.end:]))
    for name, statement, cells in re.findall(
            r"read it in condition '(\w+)': '([^']+)'(?: and add it to the cells: '([^']+)')?",
            help):
        old = re.search(rf"^condition {name} = .*$", text, re.M)
        edited = text[:old.start()] + statement + text[old.end():]
        if cells:  # the old declaration goes, the new one right above the condition
            edited = re.sub(r"^scenarios .*\n", "", edited, flags=re.M)
            edited = edited.replace(f"condition {name} = ", f"{cells}\ncondition {name} = ")
        edits.append((statement, edited))
    return edits


@pytest.mark.parametrize("case", sorted(DW502_SPECS))
def test_following_the_dw502_advice_gives_a_valid_spec_without_the_finding(case):
    text = DW502_SPECS[case]
    found = lint(text, "DW502")
    assert len(found) == 1, case
    edits = _apply_advice(text, found[0].help, found[0].span)
    if case == "dead-condition":
        assert not edits, found[0].help  # the old advice ("drop the mark") gave DW314
        assert "would give DW314" in found[0].help
    else:
        assert edits, found[0].help
    if case == "declared-early":
        assert "read it in condition 'z': 'condition z = concat(s, t)' and add it to the cells: " \
            "'scenarios s * t' (without it 'z' cannot fold per cell: DW514)" in found[0].help
    if case == "declared-between":
        assert "'scenarios s * t' below the declaration of 't'" in found[0].help
    for what, edited in edits:
        assert diagnostics_of(edited) == [], (case, what)
        assert lint(edited, "DW502") == [] and lint(edited, "DW514") == [], (case, what)


def test_following_the_dw502_advice_does_not_lead_into_dw514():
    """The reported defect: the advice to read t in z (a condition that folds per cell) led
    straight to DW514, since `scenarios` did not name t. The advice now adds t to the cells too,
    checked by linting the edited copy."""
    text = DW502_SPECS["declared-early"]
    [found] = lint(text, "DW502")
    condition_only = text.replace("condition z = concat(s)", "condition z = concat(s, t)")
    assert lint(condition_only, "DW502") == []
    assert [d.code for d in lint(condition_only, "DW514")] == ["DW514"]  # the old advice
    [followed] = [edited for what, edited in _apply_advice(text, found.help, found.span)
                  if what.startswith("condition z")]
    assert "scenarios s * t\n" in followed and "condition z = concat(s, t)" in followed
    assert diagnostics_of(followed) == []
    assert [d.code for d in lint_source(SourceFile("case.dw", followed), LintConfig())
            if d.code in ("DW502", "DW514")] == []


def test_dw502_advice_on_a_numeric_feature_needs_no_cells():
    """A numeric scenario feature never defines cells: reading it is the whole advice."""
    text = BASE.replace("scenarios s", "feature t : numeric scenario\nscenarios s") \
        + "h = mlp(concat(a, b, t), [8]) dynamic(by = z)\n" + OUT
    [found] = lint(text, "DW502")
    assert "read it in condition 'z': 'condition z = concat(s, t)'," in found.help
    assert "cells" not in found.help


def test_dropping_the_mark_of_a_cell_feature_is_never_advised():
    """The reported defect: DW502 on a feature in `scenarios` said "drop the mark", which is DW308.
    Every feature `scenarios` names is exempt, so no advice can drop such a mark."""
    text = BASE.replace("scenarios s", T_MARKED + "scenarios s * t") \
        + "h = mlp(concat(a, b), [8]) dynamic(by = z)\n" + OUT
    assert diagnostics_of(text) == []
    assert lint(text, "DW502") == []
    dropped = text.replace("dim = 2) scenario", "dim = 2)")
    assert [d.code for d in diagnostics_of(dropped)] == ["DW308"]


# --- DW514 ---------------------------------------------------------------------------------------

APG = (ROOT / "examples" / "apg.dw").read_text()
APG_PAGE_MISSING = APG.replace("scenarios country * page", "scenarios country")


def explain_total(tmp_path, text: str, capsys) -> dict:
    path = tmp_path / "spec.dw"
    path.write_text(text)
    capsys.readouterr()
    assert main(["explain", str(path), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)["total"]["inference"]


def test_apg_condition_reading_a_feature_outside_the_cells(tmp_path, capsys):
    assert APG_PAGE_MISSING != APG
    [found] = lint(APG_PAGE_MISSING, "DW514")
    source = SourceFile("case.dw", APG_PAGE_MISSING)
    line, col = found.location(source)
    assert source.line_text(line)[col - 1:].startswith("page)")
    assert source.line_text(line).startswith("condition z = ")

    served = explain_total(tmp_path, APG_PAGE_MISSING, capsys)
    folded = explain_total(tmp_path, APG, capsys)
    assert folded["flops_per_sample"] < served["flops_per_sample"]
    assert (f"({served['flops_per_sample']:,} FLOPs/sample at inference instead of "
            f"{folded['flops_per_sample']:,})") in found.message
    assert (f"inference params {served['params']:,} -> {folded['params']:,}") in found.help
    assert "'scenarios country * page'" in found.help and "24 cells" in found.help
    assert "drop the 'scenario' mark of 'page'" in found.help

    # both fixes the help offers check, and neither leaves the finding
    fixed = APG_PAGE_MISSING.replace("scenarios country\n", "scenarios country * page\n")
    assert fixed == APG and lint(fixed, "DW514") == []
    unmarked = APG_PAGE_MISSING.replace("dim = 8) scenario\n\nscenarios",
                                        "dim = 8)\n\nscenarios")
    assert unmarked != APG_PAGE_MISSING
    assert diagnostics_of(unmarked) == [] and lint(unmarked, "DW514") == []


def test_apg_without_any_cells_declaration(tmp_path, capsys):
    text = APG.replace("scenarios country * page\n", "")
    [found] = lint(text, "DW514")
    assert "'country', 'page'" in found.message and "no 'scenarios' declares cells" in found.message
    # dropping both marks leaves z without a scenario feature (DW314): not offered
    assert "drop" not in found.help and "dwc: ignore[DW514]" in found.help
    fixed = text.replace("condition z", "scenarios country * page\ncondition z")
    folded = explain_total(tmp_path, fixed, capsys)["flops_per_sample"]
    assert f"instead of {folded:,})" in found.message
    assert lint(fixed, "DW514") == []
    suppressed = text.replace("concat(country, page)", "concat(country, page)  # dwc: ignore[DW514]")
    assert lint(suppressed, "DW514") == []


def test_cells_declared_above_the_missing_feature_are_moved_below_it():
    text = APG.replace("scenarios country * page\n", "").replace(
        "feature page ", "scenarios country\nfeature page ")
    [found] = lint(text, "DW514")
    assert "'scenarios country * page' below the declaration of 'page'" in found.help
    fixed = text.replace("scenarios country\n", "").replace(
        "condition z", "scenarios country * page\ncondition z")
    assert diagnostics_of(fixed) == [] and lint(fixed, "DW514") == []


@pytest.mark.parametrize("condition", [
    "concat(country, page, days)",               # a numeric scenario feature: never a cell
    "concat(country, page, stop_gradient(user_id))",  # an ordinary input: no fold either way
])
def test_no_finding_when_adding_the_feature_would_not_fold(condition):
    text = APG_PAGE_MISSING.replace(
        "feature page ", "feature days     : numeric scenario\nfeature page ").replace(
        "condition z = concat(country, page)", f"condition z = {condition}")
    assert diagnostics_of(text) == []
    assert lint(text, "DW514") == []


def test_a_dead_condition_costs_nothing_and_is_not_reported():
    text = APG_PAGE_MISSING.replace("condition z = concat(country, page)",
                                    "condition z = concat(country)\n"
                                    "condition zp = concat(country, page)")
    assert lint(text, "DW514") == []
