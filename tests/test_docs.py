"""The docs: generated references are fresh, every code is documented, docs/ stands alone (no
design notes cited, every docs/models.md section cited exists and states what is cited) and the
README's commands work as written."""

from __future__ import annotations

import ast
import re
import subprocess

import pytest

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


# --- docs stand alone -----------------------------------------------------------------------------

# The design notes that dwc was written from: a user has none of them.
DESIGN_NOTES = re.compile(
    r"DW-MODELS|shared/design|\.\./shared/|ARCHITECTURE\.md|ECOSYSTEM\.md|LANGUAGE-SKETCH|"
    r"NEW-MODELS|PRODUCT\.md|STYLE-ANCHORS|STYLE\.md|TVM-COOKBOOK")
SECTION_REFERENCE = re.compile(r"docs/models\.md,\s*['\"]([^'\"]+)['\"]")


def user_facing_texts(code: str = "raw") -> dict[str, str]:
    """README.md and every file of docs/, templates/, examples/, experiments/ and benchmarks/
    (what a user reads or runs) and pyproject.toml; for dwc/'s .py files their raw text
    (comments included, code="raw") or only their string constants, implicit concatenations
    joined (code="strings")."""
    texts = {name: (ROOT / name).read_text(encoding="utf-8")
             for name in ("README.md", "pyproject.toml")}
    for folder in ("docs", "templates", "examples", "experiments", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix != ".png":
                texts[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "dwc").rglob("*.py")):
        raw = path.read_text(encoding="utf-8")
        if code == "strings":
            raw = "\n".join(node.value for node in ast.walk(ast.parse(raw))
                            if isinstance(node, ast.Constant) and isinstance(node.value, str))
        texts[str(path.relative_to(ROOT))] = raw
    return texts


def test_nothing_cites_the_design_notes():
    offenders = [f"{name}: {match.group(0)!r}" for name, text in user_facing_texts().items()
                 for match in DESIGN_NOTES.finditer(text)]
    assert not offenders, "cite docs/ instead:\n" + "\n".join(offenders)


def models_md_sections() -> dict[str, str]:
    """docs/models.md's `## ` sections by name (the heading before its ' — ' file list)."""
    text = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {heading.split(" — ")[0].strip(): body
            for heading, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_every_models_md_section_reference_names_a_heading():
    sections = models_md_sections()
    cited = {(name, match.group(1)) for name, text in user_facing_texts("strings").items()
             for match in SECTION_REFERENCE.finditer(" ".join(text.split()))}
    assert {section for _, section in cited} >= {"Generic dynamic-weight MLP", "APG"}, cited
    unknown = sorted(f"{name}: {section!r}" for name, section in cited if section not in sections)
    assert not unknown, f"not a heading of docs/models.md ({sorted(sections)}): {unknown}"


# What code and docs cite docs/models.md for, by section: each must be stated there.
CITED_FACTS = {
    "Generic dynamic-weight MLP": ["W_l = reshape(G(z))", "N M numbers for an N → M layer, + M",
                                   "B × N × M floats"],
    "APG": ["y = ((x U) S(z)) V + b", "N·M → NK + K² + KM → K²", "N P + P K + K P + P M",
            "N K + K M parameters for inference", "N K² MACs per sample"],
    "M2M": ["W_k = reshape(V_k S + v_k)", "s_{t,i} = vᵀ MetaUnit([E_i ; T_t] | S)",
            "R_t = Σ_i α_{t,i} E_i", "Σ_k (d_S + 1)(d_{k-1} d_k + d_k)"],
    "CAN": ["D' = Σ_l (d_{l-1} d_l + β d_l)", "h_0 = q^{∘c}", "h_L = h_{L-1} W_L + b_L",
            "sum-pools over T"],
}


def test_models_md_states_what_is_cited_from_it():
    sections = models_md_sections()
    missing = [f"{section}: {fact!r}" for section, facts in CITED_FACTS.items()
               for fact in facts if fact not in " ".join(sections[section].split())]
    assert not missing, missing


def test_relative_links_resolve():
    broken = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            if "://" not in target and not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, broken


# --- README commands ------------------------------------------------------------------------------

def readme_commands() -> list[str]:
    """Every line of README.md's fenced code blocks (the quickstart's are indented)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^ *```[a-z]*\n(.*?)^ *```", text, flags=re.M | re.S)
    return [line.strip() for block in blocks for line in block.splitlines()]


def test_readme_runs_torchrun_from_the_venv():
    runs = [line for line in readme_commands() if "torchrun" in line]
    assert runs and all(line.startswith(".venv/bin/torchrun ") for line in runs), runs


def test_readme_says_onnx_and_tvm_need_the_export_extra():
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "need the `export` extra, `.venv/bin/pip install -e '.[export]'`" in readme


def test_files_the_readme_commands_write_are_ignored():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    written = set()
    for line in readme_commands():
        written.update(re.findall(r"(?:^|\s)(?:-o|--out)\s+([a-z][\w./-]*)", line))
        written.update(re.findall(r"data generate\s+([a-z][\w./-]*)", line))
    assert {"out/dw_mlp", "data.npz", "runs/apg"} <= written, written
    for path in sorted(written):
        probe = path if path.endswith(".npz") else f"{path}/file"
        run = subprocess.run(["git", "check-ignore", "-q", probe], cwd=ROOT)
        assert run.returncode == 0, f"{path} (written by a README command) is not in .gitignore"


def readme_training_specs() -> list[str]:
    """The specs the README trains on `dwc data generate` output: in its commands and its list."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    specs = {spec for line in readme_commands() if " train " in line
             for spec in re.findall(r"\btrain\s+(\S+\.dw)\s+--data\s+\S+\.npz\b", line)}
    listed = re.search(r"the specs in \[experiments/\]\(experiments/\) read only these\s*\(([^)]*)\)",
                       readme)
    assert listed, "the README names the specs that train on generated data"
    specs |= {f"experiments/{name}" for name in re.findall(r"`([\w-]+\.dw)`", listed.group(1))}
    return sorted(specs)


@pytest.mark.slow
def test_the_specs_the_readme_trains_train_on_generated_data(tmp_path, capsys):
    from dwc.cli import main

    data = tmp_path / "data.npz"
    assert main(["data", "generate", str(data), "--rows", "2000"]) == 0
    specs = readme_training_specs()
    assert "experiments/apg.dw" in specs and len(specs) >= 6, specs
    for spec in specs:
        out = tmp_path / spec.replace("/", "_")
        code = main(["train", str(ROOT / spec), "--data", str(data), "--out", str(out),
                     "--epochs", "1", "--max-steps", "2"])
        assert code == 0, (spec, capsys.readouterr().err)
        assert (out / "best.pt").exists() and (out / "metrics.json").exists(), spec


def test_the_passes_page_shows_the_assembled_pipeline():
    """-O2 is assembled from the core passes and the kinds' own (`after`): docs/passes.md must
    show the order `dwc passes` prints, and describe every pass."""
    from dwc.passes import PASSES, PIPELINES

    text = (ROOT / "docs" / "passes.md").read_text()
    shown = re.search(r"-O2: (.*?)\s+\(default\)", text, re.S).group(1)
    assert re.sub(r"\s+", "", shown) == PIPELINES[2]
    for name in PASSES:
        assert f"- **{name}** —" in text, name
