"""The TVM backend: the folded inference module, through torch.export (dynamic batch up to a
declared maximum) into Relax, built for CPU (llvm with the host's CPU features) or CUDA
(cross-compiled with nvcc; the module tree is checked to really contain CUDA code). Weights are
kept out of the library and shipped as a parameter file.

A build prints only what is unexpected: TVM's C++ log lines and torch's warnings that every dwc
build triggers, and that nothing in a spec can change, are dropped by exact message (see
`EXPECTED_NATIVE_LINES` and `dwc.backends.export.export_warnings`); everything else still
reaches stderr."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from dwc.backends.export import InferenceModel, export_program, export_warnings
from dwc.backends.tvm_tune import TuneOptions


def target_for(device: str, arch: str | None) -> dict[str, object]:
    import tvm

    if device == "cpu":  # num-cores: the cores MetaSchedule tunes the parallel loops for
        return {"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu(),
                "num-cores": os.cpu_count() or 1}
    return {"kind": "cuda", "arch": arch or "sm_90", "max_shared_memory_per_block": 49152}


EXPECTED_NATIVE_LINES = (
    # topi's `take` (every embedding lookup and id gather) in its default "fast" mode, which
    # does not bounds-check. dwc's ids are checked before they reach the compiled gathers: the
    # generated module's check_inputs and dwc.runtime reject ids outside [0, vocab), so fast
    # mode is what dwc wants (docs/backends.md says so). TVM logs it once per gather.
    re.compile(rb"^\[[0-9:]+\] \S*topi/transform\.h:\d+: Warning: Fast mode segfaults when "
               rb"there are out-of-bounds indices\. Make sure input indices are in bound$"),
)
"""Lines that TVM's C++ logging (LOG(WARNING), written straight to file descriptor 2, not through
Python's warnings or logging) prints for every dwc build."""


@contextlib.contextmanager
def drop_native_lines(expected: tuple[re.Pattern[bytes], ...]) -> Iterator[None]:
    """Runs the block with file descriptor 2 sent through a pipe: a thread passes every line on to
    stderr as it arrives, except those matching one of `expected` (C++ output cannot be filtered
    on its way otherwise; the block's Python writes to sys.stderr go the same way, in order). Lines
    pass as they come, so what a crashing build printed before it died is still seen."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to protect
        yield
        return
    read_end, write_end = os.pipe()

    def write(data: bytes) -> None:
        while data:
            data = data[os.write(saved, data):]

    def pump() -> None:
        pending = b""
        while chunk := os.read(read_end, 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            write(b"".join(line + b"\n" for line in lines
                           if not any(p.match(line.rstrip(b"\r")) for p in expected)))
        if pending and not any(p.match(pending.rstrip(b"\r")) for p in expected):
            write(pending)

    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    thread = threading.Thread(target=pump, name="dwc-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end closes: the thread drains it and ends
        thread.join()
        os.close(read_end)
        os.close(saved)


def _module_kinds(module) -> list[str]:
    kinds = [module.kind]
    for imported in module.imports:
        kinds += _module_kinds(imported)
    return kinds


def bucket_name(batch: int) -> str:
    """The Relax function compiled for one static batch size (a tuning bucket)."""
    return f"main_b{batch}"


def build_tvm(im: InferenceModel, target: dict[str, object], max_batch: int,
              tuning: TuneOptions | None = None) -> tuple[bytes, bytes, dict[str, object]]:
    """Returns (model.so bytes, model.params bytes, what the manifest records about the build).

    CPU builds lift the weights' layout changes (transposes, reshapes of parameters) into a
    `transform_params` function that `dwc.runtime` runs once at load, and schedule every kernel
    with dwc's CPU rules (`dwc.backends.tvm_schedule`). With `tuning`, each bucket batch size
    gets its own statically shaped copy of `main` (`main_bN`), whose kernels MetaSchedule tunes
    (`dwc.backends.tvm_tune`); `main` keeps the dynamic batch for every other size."""
    import tvm
    from tvm import relax
    from tvm.relax.frontend.torch import from_exported_program

    program = export_program(im, max_batch)
    cpu = target["kind"] != "cuda"
    if cpu:
        tvm_target = tvm.target.Target(target)
    else:
        tvm_target = tvm.target.Target(target, host={"kind": "llvm"})
    info: dict[str, object] = {}
    with export_warnings(), drop_native_lines(EXPECTED_NATIVE_LINES):
        mod = from_exported_program(program, keep_params_as_input=True)
        mod, params = relax.frontend.detach_params(mod)
        if cpu:
            from dwc.backends.tvm_schedule import cpu_pipeline

            buckets = tuning.buckets if tuning is not None else []
            main = mod["main"]
            batch_var = main.params[0].ty.shape[0]
            for batch in buckets:
                mod[bucket_name(batch)] = main.bind_symbolic_vars({batch_var: batch}).with_attr(
                    "global_symbol", bucket_name(batch))
            mod = relax.transform.LiftTransformParams(shared_transform=True)(mod)
            database = None
            if tuning is not None:
                from dwc.backends.tvm_tune import tune

                database, info["tuning"] = tune(mod, tvm_target, tuning)
            executable = relax.build(mod, target=tvm_target,
                                     relax_pipeline=cpu_pipeline(tvm_target, database=database))
            info["schedule"] = "dwc-cpu"
            info["transform_params"] = "transform_params"
            info["buckets"] = {str(b): bucket_name(b) for b in buckets}
        else:
            executable = relax.build(mod, target=tvm_target)
    kinds = _module_kinds(executable.mod)
    info["module_tree"] = kinds
    if not cpu and "cuda" not in kinds:
        raise RuntimeError(f"the CUDA build produced no CUDA module (module tree: {kinds})")
    with tempfile.TemporaryDirectory() as tmp:
        library = Path(tmp) / "model.so"
        # no GNU build-id: it hashes temporary object paths, which would make rebuilds differ
        executable.export_library(str(library), options=["-Wl,--build-id=none"])
        weights = Path(tmp) / "model.params"
        tvm.runtime.save_param_dict_to_file(
            {f"p{i:04d}": t for i, t in enumerate(params["main"])}, str(weights))
        return library.read_bytes(), weights.read_bytes(), info
