"""benchmarks/gpu.py up to the point that needs a GPU: the build step on one example (the TVM CUDA
artifact cross-compiled with nvcc, the ONNX model, the CPU references), dwc.runtime's device
selection refusing what this machine lacks, TVM's runtime-only loader on a CPU build, and the run
step refusing cleanly without a GPU."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from dwc.runtime import ArtifactError, load
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu  # noqa: E402  (benchmarks/ is no package)

sys.path.remove(str(ROOT / "benchmarks"))

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc (CUDA build)")]

SCRIPT = ROOT / "benchmarks" / "gpu.py"


def script(*args: str):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gpu")
    done = script("--build-only", str(directory), "--only", "ctr_mlp")
    assert done.returncode == 0, done.stderr
    return directory


def test_the_build_step_writes_the_cuda_artifact_and_references(built):
    index = json.loads((built / "index.json").read_text())
    (entry,) = index["examples"]
    assert entry["example"] == "ctr_mlp" and entry["tvm"] == "tvm-cuda-sm_90"
    example = built / entry["dir"]
    manifest = json.loads((example / "tvm-cuda-sm_90" / "manifest.json").read_text())
    assert manifest["target"]["kind"] == "cuda" and "cuda" in manifest["target"]["module_tree"]
    aoti = json.loads((example / "aoti.manifest.json").read_text())
    assert aoti["target"] == {"kind": "aoti", "device": "cuda"}
    assert aoti["signature"]["max_batch"] == 8192
    assert sorted(p.name for p in (built / "tvm-runtime").iterdir()) == [
        "libtvm_runtime.so", "libtvm_runtime_cuda.so", "libtvm_runtime_extra.so"]
    # the stored CPU reference is what the ONNX model computes on the CPU here
    reference = np.load(example / "reference.npz")
    onnx = load(example / "onnx")
    for batch in (1, 64):
        inputs = {k.split("/", 2)[2]: reference[k] for k in reference.files
                  if k.startswith(f"{batch}/in/")}
        assert inputs["user_id"].shape == (batch,)
        got = onnx(inputs)
        assert np.abs(got["ctr"] - reference[f"{batch}/out/ctr"]).max() <= 1e-4
        assert np.abs(reference[f"{batch}/out/ctr"] - 0.5).max() > 1e-3  # weights moved


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals of a GPU-less machine")
def test_without_a_gpu_every_cuda_form_and_the_run_step_are_refused(built):
    example = next(p for p in built.iterdir() if p.name.startswith("ctr_mlp-"))
    with pytest.raises(ArtifactError, match="built for CUDA and no CUDA GPU is visible"):
        load(example / "tvm-cuda-sm_90")
    with pytest.raises(ArtifactError, match="TVM artifact was built for cuda, not cpu"):
        load(example / "tvm-cuda-sm_90", device="cpu")
    with pytest.raises(ArtifactError, match="CUDAExecutionProvider"):
        load(example / "onnx", device="cuda")
    done = script("--run", str(built), "--quick")
    assert done.returncode == 2
    assert "torch sees no CUDA GPU here" in done.stderr and "Traceback" not in done.stderr


def test_bad_runs_are_not_written_into_the_docs(tmp_path, capsys):
    (tmp_path / "binary.json").write_bytes(b"\x00\xd8")
    assert gpu.main(["--from-json", str(tmp_path / "binary.json")]) == 2
    assert "cannot read the runs' JSON" in capsys.readouterr().err
    (tmp_path / "partial.json").write_text(json.dumps(
        {"records": [], "batches": [1], "machine": "m", "quick": False}))
    assert gpu.main(["--from-json", str(tmp_path / "partial.json")]) == 2
    assert "must cover every example" in capsys.readouterr().err


def test_the_runtime_only_tvm_loader_on_a_cpu_build(built, tmp_path):
    """RuntimeOnlyTvm (the GPU machine's TVM path, without the tvm package) on a CPU build of the
    same example, in a process that never imports tvm: it computes the stored reference."""
    example = next(p for p in built.iterdir() if p.name.startswith("ctr_mlp-"))
    out = tmp_path / "llvm"
    done = subprocess.run(
        [sys.executable, "-m", "dwc", "compile", str(ROOT / "examples" / "ctr_mlp.dw"),
         "--target", "tvm", "--weights", str(example / "weights.pt"), "-o", str(out)],
        capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    script = (
        "import sys; sys.path.insert(0, 'benchmarks')\n"
        "import numpy as np\n"
        "from pathlib import Path\n"
        "from gpu import RuntimeOnlyTvm\n"
        f"form = RuntimeOnlyTvm({str(out)!r}, Path({str(built / 'tvm-runtime')!r}))\n"
        f"ref = np.load({str(example / 'reference.npz')!r})\n"
        "for b in (1, 64):\n"
        "    inputs = {k.split('/', 2)[2]: ref[k] for k in ref.files if k.startswith(f'{b}/in/')}\n"
        "    got = form(inputs)\n"
        "    print(b, float(np.abs(got['ctr'] - ref[f'{b}/out/ctr']).max()))\n"
        "assert 'tvm' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    errors = dict(line.split() for line in done.stdout.splitlines())
    assert set(errors) == {"1", "64"} and all(float(e) <= 1e-4 for e in errors.values())


def test_the_run_step_on_the_cpu(built, monkeypatch):
    """The run step's loading, checking, timing and table, with its device patched to the CPU
    (torch and ONNX only: an AOTInductor build would cost half a minute)."""
    monkeypatch.setattr(gpu, "DEVICE", "cpu")
    monkeypatch.setattr(gpu, "gpu_present", lambda: True)
    monkeypatch.setattr(gpu, "gpu_machine", lambda: "the CPU")
    result = gpu.run(built, ["torch", "onnx"], [1, 64], True, 1, None)
    assert [(r["example"], r["batch"]) for r in result["records"]] == [("ctr_mlp", 1),
                                                                          ("ctr_mlp", 64)]
    for record in result["records"]:
        assert set(record["seconds"]) == {"torch", "onnx"}
        assert set(record["ratios"]) == {"onnx"}
    assert all(e <= 1e-4 for e in result["max_abs_error"]["ctr_mlp"].values())
    lines = gpu.section(result).splitlines()
    assert lines[-4] == "| example | B | torch CUDA (ms) | ORT CUDA (ms, x torch) |"
    ratio = result["records"][1]["ratios"]["onnx"]
    assert lines[-1].startswith("| ctr_mlp | 64 |") and lines[-1].endswith(f"({ratio:.2f}x) |")
