"""ONNX and TVM builds print dwc's own lines and nothing else: the warnings and C++ log lines every
build triggers inside torch and TVM are dropped by exact message; anything else still shows."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
import torch

from dwc.backends.export import load_generated
from dwc.driver import compile_source
from dwc.source import SourceFile
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

FAST_MODE = (b"[09:30:16] /project/include/tvm/topi/transform.h:1261: Warning: Fast mode segfaults "
             b"when there are out-of-bounds indices. Make sure input indices are in bound\n")


def trained_weights(example: str, path) -> None:
    """A state_dict of the example's training module, so the build has no DW406 to report."""
    spec = ROOT / "examples" / example
    result = compile_source(SourceFile(str(spec), spec.read_text()))
    torch.save(load_generated(result.files["model.py"])().state_dict(), path)


def compile_quietly(tmp_path, example: str, target: str) -> list[str]:
    """Compiles in a fresh interpreter with every warning shown (-W default); returns stderr."""
    weights = tmp_path / "state.pt"
    trained_weights(example, weights)
    out = tmp_path / target
    run = subprocess.run(
        [sys.executable, "-W", "default", "-m", "dwc", "compile", f"examples/{example}",
         "--target", target, "-o", str(out), "--weights", str(weights)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert (out / "manifest.json").exists()
    return run.stderr.splitlines()


def test_tvm_build_prints_only_dwc_lines(tmp_path):
    pytest.importorskip("tvm")
    lines = compile_quietly(tmp_path, "ctr_mlp.dw", "tvm")
    assert len(lines) == 1 and lines[0].startswith("dwc: compiled examples/ctr_mlp.dw"), lines


@pytest.mark.parametrize("example", ["apg.dw", "m2m.dw"])
def test_onnx_export_prints_only_dwc_lines(tmp_path, example):
    pytest.importorskip("onnx")
    # apg: its folded layers trip the exporter's in-place rewrite (aten::addmm_)
    # m2m: the experts' softmax branched on the expert count while traced (a TracerWarning)
    lines = compile_quietly(tmp_path, example, "onnx")
    assert len(lines) == 1 and lines[0].startswith(f"dwc: compiled examples/{example}"), lines


def test_native_lines_other_than_the_expected_still_reach_stderr():
    pytest.importorskip("tvm")
    code = (
        "import os, sys\n"
        "from dwc.backends.tvm_export import EXPECTED_NATIVE_LINES, drop_native_lines\n"
        "with drop_native_lines(EXPECTED_NATIVE_LINES):\n"
        f"    os.write(2, {FAST_MODE!r})\n"
        "    os.write(2, b'[09:30:17] /project/src/target/llvm.cc:7: Warning: a real one\\n')\n"
        "    print('from python', file=sys.stderr)\n"
        f"    os.write(2, {FAST_MODE!r})\n"
        "try:\n"  # a failing build: stderr is restored and what it printed is still shown
        "    with drop_native_lines(EXPECTED_NATIVE_LINES):\n"
        f"        os.write(2, {FAST_MODE!r})\n"
        "        os.write(2, b'before the error\\n')\n"
        "        raise RuntimeError\n"
        "except RuntimeError:\n"
        "    pass\n"
        "print('after', file=sys.stderr)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=300,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == [
        b"[09:30:17] /project/src/target/llvm.cc:7: Warning: a real one", b"from python",
        b"before the error", b"after"]


def test_a_build_that_crashes_still_shows_what_it_printed():
    """A segfault inside TVM (the ABI mismatch docs/backends.md describes) kills the process in
    the filter: lines printed before it must already have reached stderr."""
    pytest.importorskip("tvm")
    code = (
        "import os, time\n"
        "from dwc.backends.tvm_export import EXPECTED_NATIVE_LINES, drop_native_lines\n"
        "with drop_native_lines(EXPECTED_NATIVE_LINES):\n"
        f"    os.write(2, {FAST_MODE!r})\n"
        "    os.write(2, b'the last words of a crashing build\\n')\n"
        "    time.sleep(0.5)\n"
        "    os.abort()\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=300)
    assert run.returncode != 0
    assert run.stderr.splitlines()[:1] == [b"the last words of a crashing build"], run.stderr


def caught(context, emit) -> list[str]:
    """The messages of the warnings `emit` raises inside `context`, with every warning shown."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with context():
            emit()
    return [str(w.message) for w in seen]


def test_tvm_filter_drops_only_the_leafspec_deprecation():
    pytest.importorskip("tvm")
    from dwc.backends.export import export_warnings as expected_warnings

    def emit():
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, "
                      "TreeSpec) and treespec.is_leaf()` instead.", FutureWarning, stacklevel=1)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", UserWarning, stacklevel=1)
        warnings.warn("some other API is deprecated", FutureWarning, stacklevel=1)

    assert caught(expected_warnings, emit) == [
        "`isinstance(treespec, LeafSpec)` is deprecated", "some other API is deprecated"]


def test_onnx_filter_drops_only_the_exporters_own_notices():
    from dwc.backends.onnx_export import expected_warnings

    def emit():
        warnings.warn("You are using the legacy TorchScript-based ONNX export. Starting in ...",
                      DeprecationWarning, stacklevel=1)
        warnings.warn("The feature will be removed. Please remove usage of this function",
                      DeprecationWarning, stacklevel=1)
        warnings.warn("ONNX Preprocess - Removing mutation from node aten::addmm_ on block input: "
                      "'model.h_fc0.v_weight'. This changes graph semantics.", UserWarning,
                      stacklevel=1)
        warnings.warn("ONNX Preprocess - Removing mutation from node aten::copy_ on block input: "
                      "'model.w'. This changes graph semantics.", UserWarning, stacklevel=1)
        warnings.warn("Converting a tensor to a Python boolean might cause the trace to be "
                      "incorrect.", torch.jit.TracerWarning, stacklevel=1)

    assert caught(expected_warnings, emit) == [
        "ONNX Preprocess - Removing mutation from node aten::copy_ on block input: 'model.w'. "
        "This changes graph semantics.",
        "Converting a tensor to a Python boolean might cause the trace to be incorrect."]
