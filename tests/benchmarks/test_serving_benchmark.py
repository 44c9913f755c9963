"""benchmarks/serving.py on one small example at B = 1 (`--quick`): every form agrees with the
reference, the table's cells are the JSON record's, and a partial run leaves docs/ untouched."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "serving.py"


def run(*args: str):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_one_example_at_batch_one(tmp_path):
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    done = run("--only", "lhuc", "--batches", "1", "--quick", "--work", str(tmp_path / "work"),
               "--json", str(tmp_path / "serving.json"))
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "serving.json").read_text())
    (row,) = record["records"]
    assert (row["example"], row["batch"]) == ("lhuc", 1)
    assert set(row["seconds"]) == {"onnx", "no_grad", "inference_mode", "unchecked", "check"}
    assert all(seconds > 0 for seconds in row["seconds"].values())
    assert record["max_abs_error"] <= 1e-4
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("| lhuc | 1 |")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert float(cells[2]) == float(f"{row['seconds']['onnx'] * 1e3:.3f}")
    for cell, form in zip(cells[3:6], ("no_grad", "inference_mode", "unchecked"), strict=True):
        assert cell.endswith(f"({row['ratios'][form]:.2f}x)")
    assert int(cells[6]) == round(row["seconds"]["check"] * 1e6)
    assert "of 1 examples within 1.5x" in done.stdout
    assert (ROOT / "docs" / "benchmarks.md").read_text() == doc  # partial runs only print


def test_bad_options_are_refused():
    done = run("--only", "nosuch")
    assert done.returncode != 0 and "unknown example: nosuch" in done.stderr
    done = run("--batches", "1,x")
    assert done.returncode != 0 and "--batches takes integers" in done.stderr
