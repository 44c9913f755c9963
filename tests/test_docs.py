"""The generated reference docs are up to date, and every registered code is documented."""

from __future__ import annotations

from dwc import docgen
from dwc.diagnostics.codes import CODES
from tests.conftest import ROOT


def test_generated_docs_are_fresh():
    for path, content in docgen.render(ROOT).items():
        assert path.read_text(encoding="utf-8") == content, (
            f"{path} is stale: run python -m dwc.docgen")


def test_every_code_is_documented():
    text = (ROOT / "docs" / "diagnostics.md").read_text()
    for code in CODES:
        assert f"## {code} " in text


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in readme
