"""benchmarks/ab.py against HEAD on one small example (torch form, one batch size, `--quick`): the
base side really is built from the exported revision, the two builds agree, and the table's ratio
is the JSON record's."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "ab.py"


def run(*args: str):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_head_against_the_working_tree(tmp_path):
    done = run("--base", "HEAD", "--only", "lhuc", "--batches", "1", "--quick",
               "--json", str(tmp_path / "ab.json"))
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "ab.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=ROOT, check=True).stdout.strip()
    assert record["commit"] == head
    (row,) = record["records"]
    assert (row["example"], row["batch"], row["target"]) == ("lhuc", 1, "torch")
    assert set(row["seconds"]) == {"base", "new"} and all(s > 0 for s in row["seconds"].values())
    assert row["max_abs_error"] <= 1e-4
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("| lhuc |")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:3] == ["lhuc", "1", "torch"]
    assert cells[5] == f"{row['ratios']['new']:.2f}"


def test_an_unknown_revision_is_a_clear_error():
    done = run("--base", "no-such-revision-anywhere", "--only", "lhuc")
    assert done.returncode != 0
    assert "'no-such-revision-anywhere' is not a commit of this repository" in done.stderr
    assert "Traceback" not in done.stderr
