"""The TVM backend: the folded inference module, through torch.export (dynamic batch up to a
declared maximum) into Relax, built for CPU (llvm with the host's CPU features) or CUDA
(cross-compiled with nvcc; the module tree is checked to really contain CUDA code). Weights are
kept out of the library and shipped as a parameter file."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import torch

from dwc.backends.export import InferenceModel, Positional, example_args


def target_for(device: str, arch: str | None) -> dict[str, object]:
    import tvm

    if device == "cpu":
        return {"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu()}
    return {"kind": "cuda", "arch": arch or "sm_90", "max_shared_memory_per_block": 49152}


def _module_kinds(module) -> list[str]:
    kinds = [module.kind]
    for imported in module.imports:
        kinds += _module_kinds(imported)
    return kinds


def build_tvm(im: InferenceModel, target: dict[str, object], max_batch: int
              ) -> tuple[bytes, bytes, list[str]]:
    """Returns (model.so bytes, model.params bytes, module kinds)."""
    import tvm
    from tvm import relax
    from tvm.relax.frontend.torch import from_exported_program

    wrapper = Positional(im.module, im.input_names, im.output_names).eval()
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(
            wrapper, example_args(im, 2),
            dynamic_shapes=(tuple({0: batch} for _ in im.input_names),))
    mod = from_exported_program(program, keep_params_as_input=True)
    mod, params = relax.frontend.detach_params(mod)
    if target["kind"] == "cuda":
        tvm_target = tvm.target.Target(target, host={"kind": "llvm"})
    else:
        tvm_target = tvm.target.Target(target)
    executable = relax.build(mod, target=tvm_target)
    kinds = _module_kinds(executable.mod)
    if target["kind"] == "cuda" and "cuda" not in kinds:
        raise RuntimeError(f"the CUDA build produced no CUDA module (module tree: {kinds})")
    with tempfile.TemporaryDirectory() as tmp:
        library = Path(tmp) / "model.so"
        # no GNU build-id: it hashes temporary object paths, which would make rebuilds differ
        executable.export_library(str(library), options=["-Wl,--build-id=none"])
        weights = Path(tmp) / "model.params"
        tvm.runtime.save_param_dict_to_file(
            {f"p{i:04d}": t for i, t in enumerate(params["main"])}, str(weights))
        return library.read_bytes(), weights.read_bytes(), kinds
