"""`dwc lint` as users run it: formats, exit codes, configuration, and no torch import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dwc.cli import main
from tests.conftest import EXAMPLES, ROOT
from tests.lint.test_rules import CASES


@pytest.fixture
def findings_file(tmp_path):
    text, _, _ = CASES["DW513"]
    path = tmp_path / "m.dw"
    path.write_text(text.replace("model m\n", "model m\nfeature unused : numeric\n"))
    return path


def test_exit_codes(findings_file, tmp_path, capsys):
    assert main(["lint", str(findings_file)]) == 1
    assert main(["lint", str(findings_file), "--exit-zero"]) == 0
    clean = tmp_path / "clean.dw"
    clean.write_text(CASES["DW513"][2])
    assert main(["lint", str(clean)]) == 0
    with pytest.raises(SystemExit) as info:
        main(["lint"])
    assert info.value.code == 2


def test_every_example_lints_clean(capsys):
    assert main(["lint", *map(str, EXAMPLES)]) == 0


def test_json_format(findings_file, capsys):
    main(["lint", str(findings_file), "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert [d["code"] for d in data] == ["DW501", "DW513"]
    assert data[0]["line"] == 2 and data[0]["severity"] == "warning"


def test_github_format(findings_file, capsys):
    main(["lint", str(findings_file), "--format", "github"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"::warning file={findings_file},line=2,col=9,title=DW501::")


def test_github_format_encodes_what_would_end_a_workflow_command(tmp_path):
    # ',' and ':' end a property, a newline ends the command, '%' starts an encoding the runner
    # decodes, and an escape character would drive the log viewer
    from dwc.diagnostics import Diagnostic
    from dwc.lint.runner import render
    from dwc.source import SourceFile

    source = SourceFile(f"{tmp_path}/a,b:50%.dw", "model m\n")
    finding = Diagnostic.file_level("DW501", "50% of\nthe \x1b[2J rows", help="line\r\nbreak")
    (line,) = render([(source, [finding])], "github").splitlines()
    assert line == (f"::warning file={tmp_path}/a%2Cb%3A50%25.dw,title=DW501::"
                    "50%25 of%0Athe \\x1b[2J rows (help: line\\x0d%0Abreak)")


def test_sarif_validates_against_the_2_1_0_model(findings_file, capsys):
    from sarif_pydantic import Sarif

    main(["lint", str(findings_file), "--format", "sarif"])
    data = json.loads(capsys.readouterr().out)
    log = Sarif.model_validate(data)
    assert log.version == "2.1.0"
    run = data["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["DW501", "DW513"]
    result = run["results"][1]
    assert result["ruleId"] == "DW513" and result["level"] == "warning"
    region = result["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (9, 1)
    # the keys SARIF 2.1.0 requires, which the pydantic model alone does not enforce strictly
    assert set(data) >= {"version", "runs"} and "driver" in run["tool"]
    for r in run["results"]:
        assert set(r) >= {"ruleId", "message", "locations"} and "text" in r["message"]


def test_pyproject_settings_are_honoured(findings_file, tmp_path, capsys):
    (tmp_path / "pyproject.toml").write_text('[tool.dwc]\nignore = ["DW501"]\n')
    main(["lint", str(findings_file), "--format", "json"])
    assert [d["code"] for d in json.loads(capsys.readouterr().out)] == ["DW513"]
    (tmp_path / "pyproject.toml").write_text('[tool.dwc]\nbogus = 1\n')
    assert main(["lint", str(findings_file)]) == 2
    assert "unknown [tool.dwc] key 'bogus'" in capsys.readouterr().err


def test_lint_never_imports_torch(findings_file):
    code = ("import sys\nfrom dwc.cli import main\nmain(['lint', sys.argv[1], '--exit-zero'])\n"
            "assert 'torch' not in sys.modules, 'dwc lint imported torch'\n"
            "assert 'numpy' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / "examples" / "m2m.dw")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("option", ["--select", "--ignore"])
def test_unknown_codes_are_usage_errors(findings_file, option, capsys):
    assert main(["lint", str(findings_file), option, "DW501,DW5009"]) == 2
    err = capsys.readouterr().err
    assert f"{option}: unknown code 'DW5009'" in err and "did you mean 'DW509'?" in err
    assert main(["lint", str(findings_file), option, "DW50"]) == 1  # a prefix is fine


def test_unknown_codes_in_pyproject_are_usage_errors(findings_file, tmp_path, capsys):
    (tmp_path / "pyproject.toml").write_text('[tool.dwc]\nselect = ["DW5O1"]\n')
    assert main(["lint", str(findings_file)]) == 2
    assert "[tool.dwc] select: unknown code 'DW5O1'" in capsys.readouterr().err


@pytest.mark.parametrize("select", [",", ""])
def test_an_empty_selection_is_a_usage_error(select, tmp_path, capsys):
    spec = tmp_path / "m.dw"
    spec.write_text("model m\nfeature a : categorical(vocab = 3, dim = 2)\n"
                    "feature b : categorical(vocab = 3, dim = 2)\n"
                    "output o = sigmoid(linear(a, 1)) loss = bce\n")
    assert main(["lint", str(spec), "--select", select]) == 2
    assert "no codes given" in capsys.readouterr().err
    (tmp_path / "pyproject.toml").write_text("[tool.dwc]\nselect = []\n")
    assert main(["lint", str(spec)]) == 2
    (tmp_path / "pyproject.toml").write_text("[tool.dwc]\nignore = []\n")
    assert main(["lint", str(spec)]) == 1  # ignoring nothing is fine: DW501 on 'b'


def test_an_unreadable_file_is_a_finding_and_the_others_are_still_linted(findings_file, tmp_path,
                                                                         capsys):
    missing = tmp_path / "missing.dw"
    assert main(["lint", str(missing), str(findings_file), "--format", "json",
                 "--exit-zero"]) == 2  # never a pass, even with --exit-zero
    data = json.loads(capsys.readouterr().out)
    assert [(d["code"], d["file"]) for d in data] == [
        ("DW401", str(missing)), ("DW501", str(findings_file)), ("DW513", str(findings_file))]
