"""Deployable artifacts: ONNX and TVM for every example, verified against torch; weights travel;
exports are atomic and reproducible; the runtime loader works in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from dwc.cli import main
from dwc.diagnostics import DiagnosticError
from dwc.driver import ExportOptions, compile_source, write_artifacts
from dwc.runtime import ArtifactError, load
from dwc.source import SourceFile
from dwc.verify import verify_spec
from tests.conftest import EXAMPLES, ROOT, compile_example, example_ids

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def source(path):
    return SourceFile(str(path.relative_to(ROOT)), path.read_text())


@pytest.mark.parametrize("path", EXAMPLES, ids=example_ids())
def test_every_example_exports_and_verifies(path):
    rows = verify_spec(source(path), ["torch", "onnx", "tvm"], [1, 33], ExportOptions())
    assert {(r.target, r.batch) for r in rows} == {
        (t, b) for t in ("torch", "onnx", "tvm") for b in (1, 33)}
    worst = max(rows, key=lambda r: r.max_error)
    assert worst.max_error <= 1e-4, worst


@pytest.mark.parametrize("path", EXAMPLES, ids=example_ids())
def test_every_example_builds_a_cuda_artifact(path):
    result = compile_source(source(path), "tvm", export=ExportOptions(device="cuda", arch="sm_90"))
    target = json.loads(result.files["manifest.json"])["target"]
    assert target["kind"] == "cuda" and target["arch"] == "sm_90"
    assert "cuda" in target["module_tree"]  # not the silent host-only build
    assert len(result.files["model.so"]) > 10_000


def test_onnx_artifact_contents(tmp_path):
    out = tmp_path / "onnx"
    assert main(["compile", str(ROOT / "examples" / "multitask.dw"), "--target", "onnx", "-o",
                 str(out), "--triton", "--max-batch", "512"]) == 0
    model = onnx.load(str(out / "model.onnx"))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    manifest = json.loads((out / "manifest.json").read_text())
    assert meta["dwc.spec_sha256"] == manifest["spec"]["sha256"]
    assert [o.name for o in model.graph.output] == ["click", "like", "clicks"]
    assert [i.name for i in model.graph.input][:3] == ["user_id", "item_id", "author_id"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert (out / "spec.dw").read_text() == (ROOT / "examples" / "multitask.dw").read_text()
    assert manifest["signature"]["max_batch"] == 512
    assert set(manifest["versions"]) >= {"dwc", "torch", "onnx"}
    # the dynamic layer: its generator tabulated per cell, then folded into per-cell weights
    assert manifest["passes_applied"] == ["fold-scenario-table", "fold-scenario-layers",
                                          "fold-batch-norm", "dce"]
    config = (out / "triton" / "multitask" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "max_batch_size: 512" in config
    assert "dynamic_batching" in config and 'name: "history"' in config
    assert (out / "triton" / "multitask" / "1" / "model.onnx").read_bytes() == \
        (out / "model.onnx").read_bytes()


def _train_and_save(path, tmp_path):
    result, cls = compile_example(path)
    torch.manual_seed(1)
    model = cls()
    g = torch.Generator().manual_seed(0)
    inputs, targets = cls.example_inputs(64, g), cls.example_targets(64, g)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        optimizer.zero_grad()
        model.loss(inputs, targets).backward()
        optimizer.step()
    weights = tmp_path / "state.pt"
    torch.save(model.state_dict(), weights)
    return model.eval(), cls, weights


@pytest.mark.parametrize("target", ["onnx", "tvm"])
@pytest.mark.parametrize("name", ["apg", "star"])
def test_trained_weights_round_trip(tmp_path, target, name):
    path = ROOT / "examples" / f"{name}.dw"
    model, cls, weights = _train_and_save(path, tmp_path)
    result = compile_source(source(path), target, export=ExportOptions(weights=str(weights)))
    artifact = load(write_artifacts(result.files, tmp_path / target))
    inputs = cls.example_inputs(40, torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = model(inputs)
    got = artifact(inputs)
    for key, value in expected.items():
        assert np.abs(got[key] - value.numpy()).max() <= 1e-4
    assert json.loads((tmp_path / target / "manifest.json").read_text())["weights"].startswith(
        "state.pt (sha256 ")


def test_mismatched_weights_are_named(tmp_path, capsys):
    path = ROOT / "examples" / "apg.dw"
    _, _, weights = _train_and_save(path, tmp_path)
    state = torch.load(weights)
    state.pop("ctr.bias")
    state["extra.weight"] = torch.zeros(2)
    state["h_fc0.u_left"] = torch.zeros(3, 3)
    torch.save(state, weights)
    out = tmp_path / "out"
    assert main(["compile", str(path), "--target", "onnx", "--weights", str(weights),
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error[DW405]: the weights in" in err
    assert "missing: ctr.bias" in err and "unexpected: extra.weight" in err
    assert "mis-shaped: h_fc0.u_left is [3, 3] in the file, [56, 128] in the model" in err
    assert not out.exists()  # a failed export writes nothing


class _Global:
    """Pickles as a call of os.getcwd: what weights_only loading must refuse, not run."""

    def __reduce__(self):
        import os

        return (os.getcwd, ())


@pytest.mark.parametrize(("make", "message"), [
    (lambda state, path: path.write_bytes(bytes(range(256)) * 2),
     "it is not a torch.save file of tensors only"),
    (lambda state, path: torch.save({"x": _Global()}, path),
     "it is not a torch.save file of tensors only"),
    (lambda state, path: torch.save(dict(enumerate(state.values())), path),
     "does not hold a state_dict (a dict of tensors by parameter name)"),
    (lambda state, path: torch.save({k: v.to("meta") for k, v in state.items()}, path),
     "holds tensors without values (meta or sparse): "),
    (lambda state, path: torch.save({k: v.to_sparse() for k, v in state.items()}, path),
     "holds tensors without values (meta or sparse): "),
    (lambda state, path: torch.save({**state, "ctr.bias": state["ctr.bias"] * float("nan")}, path),
     "holds NaN or infinite values in ctr.bias (a training run that diverged?)"),
], ids=["garbage", "python-object", "int-keys", "meta", "sparse", "nan"])
def test_unusable_weights_files_are_dw405(tmp_path, capsys, make, message):
    """Files that are no state_dict of real values: one DW405 each (they were DW900 internal
    errors, or NaN weights exported without a word), and nothing is written."""
    path = ROOT / "examples" / "lhuc.dw"
    state = compile_example(path)[1]().state_dict()
    weights = tmp_path / "state.pt"
    make(state, weights)
    out = tmp_path / "out"
    assert main(["compile", str(path), "--target", "onnx", "--weights", str(weights),
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error[DW405]" in err and message in err and "internal error" not in err
    assert "weights_only` set to `False`" not in err  # torch's advice to load unsafely
    assert not out.exists()


def test_failed_export_keeps_the_previous_artifact(tmp_path):
    out = tmp_path / "out"
    assert main(["compile", str(ROOT / "examples" / "lhuc.dw"), "--target", "onnx", "-o",
                 str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["compile", str(ROOT / "examples" / "lhuc.dw"), "--target", "onnx", "-o",
                 str(out), "--weights", str(tmp_path / "missing.pt")]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("target", ["onnx", "tvm"])
def test_rebuilds_are_byte_identical(tmp_path, target):
    """Every file, except TVM's model.so: TVM/LLVM code generation sometimes orders independent
    instructions differently between runs (seen: two swapped movs); docs/backends.md says so."""
    files = [compile_source(source(ROOT / "examples" / "m2m.dw"), target).files
             for _ in range(2)]
    if target == "tvm":
        for build in files:
            assert build.pop("model.so")[:4] == b"\x7fELF"
    assert files[0] == files[1]


LOADER = """
import json, sys
import numpy as np
from dwc.runtime import load, ArtifactError
artifact = load(sys.argv[1])
rng = np.random.default_rng(0)
results = {}
for batch in (1, 7, int(sys.argv[2])):
    inputs = {}
    for spec in artifact.inputs:
        shape = [batch, *spec["shape"][1:]]
        if spec["dtype"] == "int64":
            high = spec["vocab"] or (spec["shape"][1:] and 2) or 2
            inputs[spec["name"]] = rng.integers(0, high, size=shape).astype("int64")
        else:
            inputs[spec["name"]] = rng.standard_normal(shape).astype("float32")
    out = artifact(inputs)
    results[batch] = {k: list(v.shape) for k, v in out.items()}
try:
    artifact({k: np.concatenate([v, v]) for k, v in inputs.items()})
except ArtifactError as error:
    results["too_big"] = str(error)
print(json.dumps(results))
"""


@pytest.mark.parametrize("target", ["onnx", "tvm"])
def test_loader_runs_in_a_fresh_process(tmp_path, target):
    result = compile_source(source(ROOT / "examples" / "can.dw"), target,
                            export=ExportOptions(max_batch=64))
    directory = write_artifacts(result.files, tmp_path / target)
    proc = subprocess.run([sys.executable, "-c", LOADER, str(directory), "64"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results["64"] == {"ctr": [64, 1]} and results["1"] == {"ctr": [1, 1]}
    assert "outside 1 .. 64" in results["too_big"]


@pytest.mark.parametrize("bad", [-1, 8, 99, -2**63])  # country: vocab 8
def test_loader_rejects_out_of_vocabulary_ids(tmp_path, bad):
    result = compile_source(source(ROOT / "examples" / "lhuc.dw"), "onnx")
    artifact = load(write_artifacts(result.files, tmp_path / "a"))
    _, cls = compile_example(ROOT / "examples" / "lhuc.dw")
    inputs = cls.example_inputs(3)
    inputs["country"] = torch.tensor([0, 7, 4])  # both ends of the vocabulary are valid
    assert artifact(inputs)["ctr"].shape == (3, 1)
    inputs["country"][0] = bad
    with pytest.raises(ArtifactError, match=r"'country' has ids outside \[0, 8\)"):
        artifact(inputs)


def _misaligned(array: np.ndarray) -> np.ndarray:
    """A copy of `array` whose data starts 8 bytes past a 64-byte boundary."""
    raw = np.empty(array.nbytes + 128, np.uint8)
    start = -raw.ctypes.data % 64 + 8
    out = raw[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
    out[...] = array
    return out


def test_tvm_inputs_are_staged_per_thread_and_outputs_stay_the_callers(tmp_path):
    """TVM needs 64-byte aligned inputs: misaligned and small ones go through reused staging
    tensors. Every call still computes its own inputs (batch sizes changing between calls), and
    a result already returned is never overwritten by a later call."""
    spec = source(ROOT / "examples" / "lhuc.dw")
    options = ExportOptions(max_batch=64)
    tvm_dir = write_artifacts(compile_source(spec, "tvm", export=options).files, tmp_path / "t")
    onnx_dir = write_artifacts(compile_source(spec, "onnx", export=options).files, tmp_path / "o")
    tvm_artifact, reference = load(tvm_dir), load(onnx_dir)
    _, cls = compile_example(ROOT / "examples" / "lhuc.dw")
    results = []
    for seed, batch in enumerate([7, 7, 3, 64, 7]):
        inputs = {k: _misaligned(v.numpy()) for k, v in
                  cls.example_inputs(batch, torch.Generator().manual_seed(seed)).items()}
        got = tvm_artifact(inputs)
        results.append((got, {k: v.copy() for k, v in got.items()}, reference(inputs)))
    for got, copied, expected in results:
        for name, value in expected.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(got[name], copied[name])
    # four threads at once: each stages its own inputs, the compiled module runs one at a time
    # (unlocked, concurrent calls corrupted each other's arguments)
    import concurrent.futures

    batches = {seed: cls.example_inputs(48, torch.Generator().manual_seed(seed))
               for seed in range(128)}
    arrays = {seed: {k: _misaligned(v.numpy()) for k, v in inputs.items()}
              for seed, inputs in batches.items()}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = dict(zip(arrays, pool.map(tvm_artifact, arrays.values()), strict=True))
    for seed, inputs in arrays.items():
        np.testing.assert_allclose(got[seed]["ctr"], reference(inputs)["ctr"], rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("length", [-5, 21, 99])
def test_loader_rejects_sequence_lengths_outside_max_len(tmp_path, length):
    result = compile_source(source(ROOT / "examples" / "ctr_mlp.dw"), "onnx")
    artifact = load(write_artifacts(result.files, tmp_path / "a"))
    _, cls = compile_example(ROOT / "examples" / "ctr_mlp.dw")
    inputs = cls.example_inputs(3)
    inputs["clicked_len"] = torch.tensor([0, 20, 5])  # both ends of 0 .. max_len are valid
    assert artifact(inputs)["ctr"].shape == (3, 1)
    inputs["clicked_len"][2] = length
    with pytest.raises(ArtifactError, match=r"'clicked_len' has lengths outside 0 \.\. 20"):
        artifact(inputs)


def test_verify_cli_reports_per_output(capsys):
    assert main(["verify", str(ROOT / "examples" / "ppnet.dw"), "--targets", "torch,onnx",
                 "--batches", "2,5"]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok") == 4 and "onnx   batch     5  ctr" in out


def test_verify_cli_fails_above_tolerance(monkeypatch, capsys):
    import dwc.runtime

    loaded = dwc.runtime.load

    def off_by_2e_4(directory):  # an artifact whose outputs are all 2e-4 too high
        artifact = loaded(directory)
        return lambda inputs: {k: v + 2e-4 for k, v in artifact(inputs).items()}

    monkeypatch.setattr(dwc.runtime, "load", off_by_2e_4)
    assert main(["verify", str(ROOT / "examples" / "ppnet.dw"), "--targets", "torch,onnx",
                 "--batches", "3"]) == 3
    captured = capsys.readouterr()
    assert "error[DW409]: outputs differ from torch by more than 0.0001" in captured.err
    (torch_row,), (onnx_row,) = ([line for line in captured.out.splitlines()
                                  if line.startswith(t + " ")] for t in ("torch", "onnx"))
    assert torch_row.endswith(" ok") and onnx_row.endswith("FAIL")
    assert 1.5e-4 < float(onnx_row.split("max abs error ")[1].split()[0]) < 2.5e-4


def test_missing_weights_file_is_a_diagnostic():
    with pytest.raises(DiagnosticError) as info:
        compile_source(source(ROOT / "examples" / "lhuc.dw"), "onnx",
                       export=ExportOptions(weights="/nonexistent/state.pt"))
    assert info.value.diagnostics[0].code == "DW405"
