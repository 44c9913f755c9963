"""editors/vscode/: the extension's manifest, language configuration and TextMate grammar agree
with the compiler (its comment syntax, its keywords and every registered kind), and the grammar
tokenises every example as its snapshots say (node, when editors/vscode has its packages)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dwc.lsp import tmlanguage
from dwc.parse.ast import KEYWORDS
from dwc.sema.signatures import SIGNATURES

ROOT = Path(__file__).resolve().parents[2]
VSCODE = ROOT / "editors" / "vscode"


def test_grammar_file_is_generated_from_the_registry():
    assert tmlanguage.main(["--check"]) == 0, "run python -m dwc.lsp.tmlanguage"


def test_every_kind_and_keyword_is_highlighted():
    grammar = json.loads((VSCODE / "syntaxes" / "dw.tmLanguage.json").read_text())
    repo = grammar["repository"]
    patterns = {"feature": repo["feature-kind"]["match"], "network": repo["kind"]["match"],
                "head": repo["kind"]["match"], "modifier": repo["modifier"]["match"]}
    for sig in SIGNATURES.values():
        assert re.search(patterns[sig.context], f"x = {sig.name}(y)"), sig.name
    keywords = [p["match"] for p in repo["keyword"]["patterns"]] + [repo["modifier"]["match"]]
    for keyword in KEYWORDS:  # the modifiers (dynamic, apg) as calls
        assert any(re.match(p, f"{keyword}(") for p in keywords), keyword


def test_manifest_and_language_configuration():
    manifest = json.loads((VSCODE / "package.json").read_text())
    (language,) = manifest["contributes"]["languages"]
    assert language["id"] == "dw" and language["extensions"] == [".dw"]
    (grammar,) = manifest["contributes"]["grammars"]
    assert (VSCODE / grammar["path"]).is_file() and (VSCODE / manifest["main"]).is_file()
    settings = manifest["contributes"]["configuration"]["properties"]
    assert settings["dwc.path"]["default"] == "dwc" and settings["dwc.lspArgs"]["default"] == []
    config = json.loads((VSCODE / language["configuration"]).read_text())
    lark = (ROOT / "grammar" / "dwc.lark").read_text()
    comment = re.search(r"^COMMENT: /(.)\[", lark, re.M).group(1)
    assert config["comments"] == {"lineComment": comment}
    assert sorted(config["brackets"]) == [["(", ")"], ["[", "]"]]
    assert '["lsp", ...config.get("lspArgs", [])]' in (VSCODE / "extension.js").read_text()


@pytest.mark.skipif(shutil.which("node") is None or not (VSCODE / "node_modules").is_dir(),
                    reason="needs node and `npm ci` in editors/vscode (.ci/run does both)")
def test_grammar_snapshots_of_every_example():
    run = subprocess.run(["node", "test/grammar.test.js"], cwd=VSCODE, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    specs = [*(ROOT / "examples").glob("*.dw"), *(ROOT / "experiments" / "movielens").glob("*.dw")]
    assert f"{len(specs)} specs tokenised, 0 problem" in run.stdout


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_the_client_starts_dwc_lsp_from_the_settings():
    """extension.js against stand-ins of the VS Code API (editors/vscode/test/extension.test.js)."""
    run = subprocess.run(["node", "test/extension.test.js"], cwd=VSCODE, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0 and "extension.js: ok" in run.stdout, run.stdout + run.stderr
