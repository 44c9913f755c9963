"""Pass fixtures: one spec and its expected IR per case (tests/passes/fixtures/NAME.dw, NAME.ir).

A case's header names the pass under test (`# pass: fold-star`) and, optionally, what runs
before it (`# before: fold-scenario-table`). The spec is lowered, the model passes that precede
the pass run (all of them, for a train or inference pass), then `before`, then the pass; the
printed IR after it must equal NAME.ir, and the pass must report a change. Add a case by writing
NAME.dw and running `pytest tests/passes/test_fixtures.py --update-golden` (review the .ir).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dwc.driver import check_source
from dwc.ir.printer import print_graph
from dwc.ir.verify import verify
from dwc.passes import PASSES
from dwc.passes.base import MODEL_PASSES, parse_pipeline
from dwc.source import SourceFile

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CASES = sorted(FIXTURES.glob("*.dw"))


def _header(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        if not line.startswith("# ") or ":" not in line:
            break
        key, value = line[2:].split(":", 1)
        if key not in ("pass", "before"):
            break
        fields[key] = value.strip()
    return fields


def _run(path: Path) -> tuple[str, bool]:
    text = path.read_text(encoding="utf-8")
    header = _header(text)
    (under,) = parse_pipeline(header["pass"])
    model = parse_pipeline(MODEL_PASSES)
    names = [p.name for p in model]
    prefix = model[:names.index(under.name)] if under.name in names else model
    graph = check_source(SourceFile(path.name, text))
    for p in [*prefix, *parse_pipeline(header.get("before", ""))]:
        graph = p.run(graph).graph
        verify(graph)
    result = under.run(graph)
    verify(result.graph)
    return print_graph(result.graph), result.changed


def test_every_pass_has_a_fixture():
    tested = {_header(p.read_text())["pass"].split("{")[0] for p in CASES}
    assert tested == set(PASSES), sorted(set(PASSES) - tested)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_pass_fixture(path, request):
    after, changed = _run(path)
    assert changed, f"{path.name}: the pass changed nothing (the case tests nothing)"
    expected = path.with_suffix(".ir")
    if request.config.getoption("--update-golden"):
        expected.write_text(after, encoding="utf-8")
        return
    assert expected.exists(), f"missing {expected.name}; run pytest --update-golden"
    assert after == expected.read_text(encoding="utf-8"), (
        f"IR after '{_header(path.read_text())['pass']}' differs from {expected.name}; if the "
        "change is intended, rerun with --update-golden and review the diff")
