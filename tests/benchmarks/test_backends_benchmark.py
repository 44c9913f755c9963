"""benchmarks/backends.py on one small example, one batch size, torch and ORT only (`--quick`):
the table's rows and ratios, the JSON record, the build cache, and docs/benchmarks.md untouched."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "backends.py"


def run(*args: str):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_one_example_torch_and_ort(tmp_path):
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    args = ["--only", "ctr_mlp", "--batches", "64", "--targets", "torch,onnx", "--quick",
            "--work", str(tmp_path / "work")]
    first = run(*args, "--json", str(tmp_path / "first.json"))
    assert first.returncode == 0, first.stderr
    lines = [line for line in first.stdout.splitlines() if line.startswith("| ctr_mlp |")]
    assert len(lines) == 1  # the table: one row per example and batch size
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    assert cells[:2] == ["ctr_mlp", "64"]
    torch_ms, ratio = cells[2].split(" (")
    assert float(torch_ms) > 0 and float(ort := cells[3]) > 0
    record = json.loads((tmp_path / "first.json").read_text())
    (row,) = record["records"]
    assert row["batch"] == 64 and set(row["seconds"]) == {"torch", "onnx"}
    assert ratio == f"{row['ratios']['torch']:.2f}x)"
    assert float(ort) == float(f"{row['seconds']['onnx'] * 1e3:.3f}")
    assert all(e <= 1e-4 for e in record["max_abs_error"]["ctr_mlp"].values())
    assert record["builds"][0]["onnx cached"] is False
    # a rerun with the same work directory reuses the ONNX build
    second = run(*args, "--json", str(tmp_path / "second.json"))
    assert second.returncode == 0, second.stderr
    assert json.loads((tmp_path / "second.json").read_text())["builds"][0]["onnx cached"] is True
    assert "ORT" in second.stdout and "(cached)" in second.stdout
    assert (ROOT / "docs" / "benchmarks.md").read_text() == doc  # partial runs only print


def test_bad_options_are_refused():
    done = run("--only", "nosuch", "--targets", "onnx")
    assert done.returncode != 0 and "unknown example: nosuch" in done.stderr
    done = run("--batches", "0")
    assert done.returncode != 0 and "batch sizes must lie in 1 .. 8192" in done.stderr


def test_settled_samples_time_a_burst_after_an_idle_gap():
    """interleaved_seconds(settle=...): per sample one untimed call, then a burst of 1-20 timed
    calls, reported per call; without it, one call per sample."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import time

    from common import interleaved_seconds

    counts = [0, 0]

    def slow():  # 5 ms: a burst of one call
        counts[0] += 1
        time.sleep(0.005)

    def fast():  # well under a millisecond: a burst of several calls
        counts[1] += 1

    rounds = interleaved_seconds([slow, fast], repeats=3, warmup=0, budget=0.0, settle=0.001)
    assert len(rounds) == 3
    assert counts[0] == 3 * 2  # the untimed call and a burst of one, each round
    assert counts[1] > 3 * 3  # bursts of more than two calls
    assert all(r[0] >= 0.005 > r[1] for r in rounds)  # seconds per call
    counts[:] = [0, 0]
    interleaved_seconds([slow, fast], repeats=3, warmup=0, budget=0.0)
    assert counts == [3, 3]
