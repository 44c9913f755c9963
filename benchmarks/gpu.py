"""Every example's served forms on a CUDA GPU: the TVM CUDA artifact, the AOTInductor package built
for CUDA, ONNX Runtime's CUDA execution provider (where the onnxruntime there has one) and the torch
inference module on the GPU, checked against the CPU torch reference and timed at B = 1 .. 8192.

    python benchmarks/gpu.py                        # a GPU machine with dwc's export extra: all steps
    python benchmarks/gpu.py --build-only DIR       # anywhere with nvcc: TVM CUDA builds, ONNX, references
    python benchmarks/gpu.py --run DIR --json FILE  # on the GPU machine, from DIR (AOTI is built there)
    python benchmarks/gpu.py --from-json FILE       # writes the "gpu" section of docs/benchmarks.md

The steps split because the GPU machine need not hold the compiler's toolchain: `--build-only`
compiles each example with the `dwc` CLI (`--target tvm --device cuda`, cross-compiled with nvcc;
`--target onnx`), with weights moved off the seeded initialisation (benchmarks/backends.py), and
stores the CPU torch reference outputs (the training module's eval forward at B = 1 and 64), the
generated model.py and the AOTInductor manifest. `--run` needs torch with CUDA, numpy and dwc's
sources only (no spec compiler, no TVM compiler): it builds the AOTInductor packages there (a
package runs only under the torch that built it, and needs CUDA to build), in parallel processes;
loads each form through `dwc.runtime.load(DIR, device="cuda")` (numpy in and out: host-device
copies included, as a caller of the runtime pays them); runs the TVM artifact with TVM's runtime
libraries alone (`RuntimeOnlyTvm`) where the machine has no `tvm` package, from the copies
`--build-only` puts in DIR/tvm-runtime; checks every output against the CPU reference (max abs
error <= 1e-4, else exit status 1); and times the forms round by round in one process, as ratios
to the torch module on the GPU. A form the machine cannot run (no CUDA execution provider in its
onnxruntime, no TVM runtime) is skipped and named in the table's notes.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from common import ROOT, table, timed_forms, timing_rows, write_section

from dwc.runtime import Artifact, ArtifactError, load

BATCHES = (1, 64, 1024, 8192)
TARGETS = ("torch", "aoti", "onnx", "tvm")
LABELS = {"torch": "torch CUDA", "aoti": "AOTI CUDA", "onnx": "ORT CUDA", "tvm": "TVM CUDA"}
CHECK_BATCHES = (1, 64)
TOLERANCE = 1e-4
MAX_BATCH = max(BATCHES)
CARRY_LIMIT = 64 * 2**20
"""What the device machine's `run` tool carries (working tree included)."""
RUNTIME_LIBRARIES = ("libtvm_runtime.so", "libtvm_runtime_extra.so", "libtvm_runtime_cuda.so")
INDEX = "index.json"
DEVICE = "cuda"
"""Where the run step puts the torch module, the AOTInductor packages and ORT (a constant, so
that the run step's code can be exercised on the CPU by patching it)."""


class Refused(Exception):
    """This machine cannot run the step (no GPU, missing build directory)."""


# --- build step (no GPU needed) ------------------------------------------------------------

def build(directory: Path, names: list[str], arch: str) -> dict:
    """The GPU-independent part into `directory` (reused when already there): per example the
    TVM CUDA artifact, the ONNX model, weights, model.py, the CPU references and the
    AOTInductor manifest; TVM's runtime libraries in tvm-runtime/. Returns the index."""
    from backends import Example, source_digest

    from dwc.driver import compile_source
    from dwc.manifest import manifest
    from dwc.source import SourceFile

    digest = source_digest()
    entries = []
    for name in names:
        example = Example(ROOT / "examples" / f"{name}.dw", directory, digest)
        seconds = {}
        _, seconds["tvm"], _ = example.build(
            f"tvm-cuda-{arch}", ["--target", "tvm", "--device", "cuda", "--arch", arch])
        _, seconds["onnx"], _ = example.build("onnx", ["--target", "onnx"])
        result = compile_source(SourceFile(str(example.path), example.path.read_text()))
        (example.dir / "model.py").write_text(result.files["model.py"])
        weights = json.loads((example.dir / "onnx" / "manifest.json").read_text())["weights"]
        (example.dir / "aoti.manifest.json").write_text(manifest(
            result.inference, result.records, {"kind": "aoti", "device": "cuda"},
            {"package": "model.pt2", "spec": "spec.dw"}, MAX_BATCH, weights))
        arrays = {}
        for batch in CHECK_BATCHES:
            inputs = example.inputs(batch)
            with torch.no_grad():
                expected = example.reference(inputs)
            arrays |= {f"{batch}/in/{k}": v.numpy() for k, v in inputs.items()}
            arrays |= {f"{batch}/out/{k}": v.numpy() for k, v in expected.items()}
        np.savez(example.dir / "reference.npz", **arrays)
        entries.append({"example": name, "dir": example.dir.name, "tvm": f"tvm-cuda-{arch}",
                        "build_seconds": seconds})
        print(f"{name}: TVM CUDA {seconds['tvm']:.1f} s, ONNX {seconds['onnx']:.1f} s", flush=True)
    runtime = directory / "tvm-runtime"
    runtime.mkdir(exist_ok=True)
    from tvm import libinfo

    found = {p.name: p for p in Path(libinfo.find_libtvm_runtime()).parent.glob("libtvm_*.so")}
    for library in RUNTIME_LIBRARIES:
        if library not in found:
            raise Refused(f"this TVM has no {library} (the apache-tvm wheel ships it)")
        shutil.copyfile(found[library], runtime / library)
    index = {"format": "dwc-gpu-benchmark/1", "arch": arch, "max_batch": MAX_BATCH,
             "tvm_ffi": _version("apache-tvm-ffi"), "examples": entries}
    (directory / INDEX).write_text(json.dumps(index, indent=1) + "\n")
    size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    print(f"{directory}: {size / 2**20:.1f} MiB" + (
        f" (over the {CARRY_LIMIT // 2**20} MiB the device tool carries: build fewer examples "
        "per run with --only)" if size > CARRY_LIMIT else ""))
    return index


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


# --- run step (on the GPU machine) -----------------------------------------------------------

class RuntimeOnlyTvm(Artifact):
    """A TVM artifact run by TVM's runtime libraries alone, through tvm_ffi: for a GPU machine
    with no `tvm` package (its compiler library alone is 250 MB). The inputs are checked as
    `dwc.runtime` checks them; tensors cross between numpy, torch and TVM through DLPack, on the
    device the artifact was built for (torch's allocations are aligned as TVM's kernels assume)."""

    def __init__(self, directory: str | Path, libraries: Path) -> None:
        super().__init__(directory)
        import tvm_ffi

        self.device = "cuda" if self.kind == "cuda" else "cpu"
        if self.device == "cuda":
            if not torch.cuda.is_available():
                raise ArtifactError("this TVM artifact was built for CUDA and torch sees no GPU")
            torch.cuda.init()  # its CUDA runtime, which libtvm_runtime_cuda.so links, is loaded
        names = RUNTIME_LIBRARIES if self.device == "cuda" else RUNTIME_LIBRARIES[:2]
        for name in names:
            try:
                ctypes.CDLL(str(libraries / name), mode=ctypes.RTLD_GLOBAL)
            except OSError as error:
                raise ArtifactError(f"cannot load TVM's runtime library {name}: {error}") from None
        self._ffi = tvm_ffi
        module = tvm_ffi.load_module(str(self.directory / "model.so"))
        self.vm = module["vm_load_executable"]()
        pooled, cpu, cuda = 2, 1, 2  # TVM's allocator kind and DLPack device types
        devices = [cuda, 0, pooled, cpu, 0, pooled] if self.device == "cuda" else [cpu, 0, pooled]
        self.vm["vm_initialization"](*devices)
        self.main = self.vm["main"]
        params = tvm_ffi.get_global_func("runtime.LoadParamsFromFile")(
            str(self.directory / "model.params"))
        self._held = [torch.from_dlpack(params[k]).to(self.device, copy=True)
                      for k in sorted(params.keys())]
        self.params = [tvm_ffi.from_dlpack(t) for t in self._held]
        transform = self.manifest["target"].get("transform_params")
        if transform:  # the weights' layout changes lifted out of main, as dwc.runtime runs them
            self.params = list(self.vm[transform](self.params))

    def _run(self, arrays, batch):
        held = [torch.from_numpy(arrays[i["name"]]).to(self.device, copy=True)
                for i in self.inputs]
        result = self.main(*(self._ffi.from_dlpack(t) for t in held), *self.params)
        values = list(result) if isinstance(result, self._ffi.Array) else [result]
        return [torch.from_dlpack(v).cpu().numpy() for v in values]


def build_aoti(entry_dir: str) -> float:
    """Build one example's AOTInductor package for CUDA in `entry_dir`/aoti-cuda (unless there);
    returns the seconds it took. Runs in a worker process of its own."""
    from torch.export.passes import move_to_device_pass

    from dwc.backends.export import export_program, export_warnings, inference_model

    entry = Path(entry_dir)
    out = entry / "aoti-cuda"
    if (out / "manifest.json").exists():
        return 0.0
    started = time.perf_counter()
    model_py = (entry / "model.py").read_text()
    im = inference_model(model_py, entry.name.rsplit("-", 1)[0], entry / "weights.pt")
    with export_warnings(), torch.no_grad():
        program = move_to_device_pass(export_program(im, MAX_BATCH), DEVICE)
        staging = entry / "aoti-cuda.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        torch._inductor.aoti_compile_and_package(program,
                                                 package_path=str(staging / "model.pt2"))
    manifest = json.loads((entry / "aoti.manifest.json").read_text())
    manifest["target"] |= {"torch": torch.__version__, "device": DEVICE}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    shutil.copyfile(entry / "onnx" / "spec.dw", staging / "spec.dw")
    staging.replace(out)
    return time.perf_counter() - started


def load_forms(entry: Path, tvm_dir: str, targets: list[str], notes: dict[str, str]) -> dict:
    """target -> a loaded form (a callable of numpy inputs returning numpy outputs); forms this
    machine cannot run are left out, with the reason in `notes`."""
    from dwc.backends.export import load_generated

    forms = {}
    if "torch" in targets:
        cls = load_generated((entry / "model.py").read_text(), entry.name.rsplit("-", 1)[0])
        model = cls()
        model.load_state_dict(torch.load(entry / "weights.pt", weights_only=True))
        served = model.eval().for_inference().to(DEVICE)

        def torch_form(inputs, served=served):
            with torch.no_grad():
                outputs = served({k: torch.from_numpy(v).to(DEVICE) for k, v in inputs.items()})
            return {k: v.cpu().numpy() for k, v in outputs.items()}

        forms["torch"] = torch_form
    if "aoti" in targets:
        forms["aoti"] = load(entry / "aoti-cuda", device=DEVICE)
    if "onnx" in targets:
        try:
            forms["onnx"] = load(entry / "onnx", device=DEVICE)
        except ArtifactError as error:
            notes["onnx"] = f"{LABELS['onnx']} not run: {error}"
    if "tvm" in targets:
        try:
            import tvm  # noqa: F401
        except ImportError:
            libraries = entry.parent / "tvm-runtime"
            try:
                import tvm_ffi  # noqa: F401
            except ImportError:
                notes["tvm"] = (f"{LABELS['tvm']} not run: neither tvm nor tvm_ffi (the "
                                "apache-tvm-ffi wheel) is installed here")
            else:
                forms["tvm"] = RuntimeOnlyTvm(entry / tvm_dir, libraries)
        else:
            forms["tvm"] = load(entry / tvm_dir, device="cuda")
    return forms


def check(name: str, forms: dict, reference) -> dict[str, float]:
    """Max abs error of every form against the CPU reference; exits on a disagreement."""
    errors = {}
    for target, form in forms.items():
        worst = 0.0
        for batch in CHECK_BATCHES:
            inputs = {k.split("/", 2)[2]: reference[k] for k in reference.files
                      if k.startswith(f"{batch}/in/")}
            got = form(inputs)
            for key in (k for k in reference.files if k.startswith(f"{batch}/out/")):
                expected = reference[key]
                mine = np.asarray(got[key.split("/", 2)[2]])
                if mine.shape != expected.shape:
                    raise SystemExit(f"gpu.py: {LABELS[target]} on {name}: output {key} has "
                                     f"shape {mine.shape}, the reference {expected.shape}")
                worst = max(worst, float(np.abs(mine - expected).max()))
        if not worst <= TOLERANCE:
            raise SystemExit(f"gpu.py: {LABELS[target]} on {name} disagrees with the CPU torch "
                             f"reference: max abs error {worst:.2e} > {TOLERANCE:g}")
        errors[target] = worst
    return errors


def gpu_present() -> bool:
    return torch.cuda.is_available()


def gpu_machine() -> str:
    props = torch.cuda.get_device_properties(0)
    return (f"{props.name} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} "
            f"SMs), torch {torch.__version__} (CUDA {torch.version.cuda}), "
            f"{os.cpu_count()} CPU cores, Python {sys.version.split()[0]}")


def run(directory: Path, targets: list[str], batches: list[int], quick: bool, jobs: int,
        names: list[str] | None) -> dict:
    """The GPU step: AOTI builds, checks and timings of every example in `directory`."""
    if not gpu_present():
        raise Refused("torch sees no CUDA GPU here (torch.cuda.is_available() is False; torch "
                      f"{torch.__version__}): run this step on the GPU machine")
    try:
        index = json.loads((directory / INDEX).read_text())
    except (OSError, ValueError) as error:
        raise Refused(f"no build in {directory} ({error}): run --build-only {directory} "
                      "first") from None
    entries = [e for e in index["examples"] if names is None or e["example"] in names]
    aoti_seconds = {}
    if "aoti" in targets:
        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            dirs = [str(directory / e["dir"]) for e in entries]
            for entry, seconds in zip(entries, pool.map(build_aoti, dirs), strict=True):
                aoti_seconds[entry["example"]] = seconds
                print(f"{entry['example']}: AOTI CUDA built in {seconds:.1f} s", flush=True)
    records, errors, notes = [], {}, {}
    for entry in entries:
        name = entry["example"]
        forms = load_forms(directory / entry["dir"], entry["tvm"], targets, notes)
        reference = np.load(directory / entry["dir"] / "reference.npz")
        errors[name] = check(name, forms, reference)
        print(f"{name}: max abs error " + ", ".join(
            f"{LABELS[t]} {e:.1e}" for t, e in errors[name].items()), flush=True)
        order = list(forms)
        cls_inputs = _input_maker(directory / entry["dir"])
        for batch in batches:
            inputs = cls_inputs(batch)
            thunks = {t: lambda f=forms[t], x=inputs: f(x) for t in order}
            record = timed_forms(thunks, "torch", quick, repeats=30, warmup=5, budget=4.0)
            records.append({"example": name, "batch": batch, **record})
            print(" | ".join(timing_rows([records[-1]], targets)[0]), flush=True)
    return {"machine": gpu_machine(), "targets": targets, "batches": batches, "quick": quick,
            "examples": [e["example"] for e in entries], "records": records,
            "max_abs_error": errors, "notes": sorted(notes.values()),
            "build_seconds": {e["example"]: {**e["build_seconds"],
                                             "aoti": aoti_seconds.get(e["example"])}
                              for e in entries}}


def _input_maker(entry: Path):
    from dwc.backends.export import load_generated

    cls = load_generated((entry / "model.py").read_text(), entry.name.rsplit("-", 1)[0])
    return lambda batch: {k: v.numpy() for k, v in
                          cls.example_inputs(batch, torch.Generator().manual_seed(batch)).items()}


def section(result: dict) -> str:
    targets = result["targets"]
    header = ["example", "B", *(f"{LABELS[t]} (ms{', x torch' if t != 'torch' else ''})"
                                for t in targets)]
    worst = {t: max(e[t] for e in result["max_abs_error"].values() if t in e) for t in targets
             if any(t in e for e in result["max_abs_error"].values())}
    return "\n".join([
        *HEADING, f"Machine: {result['machine']}.", "",
        "Each form as a user calls it, numpy in and out (host-device copies included): torch = "
        "the generated module's `for_inference()` on the GPU under no_grad, validation on; TVM, "
        "AOTI and ORT = the artifact through `dwc.runtime` on the GPU. All agree with the CPU "
        "torch reference (max abs error: " + ", ".join(
            f"{LABELS[t]} {e:.1e}" for t, e in worst.items()) + "). Median ms per call; in "
        "brackets the median per-round ratio to torch on the GPU (lower is better), the forms "
        "timed round by round in one process." + (
            " " + "; ".join(result["notes"]) + "." if result["notes"] else ""), "",
        table(header, timing_rows(result["records"], targets)),
    ])


HEADING = ["## On a GPU (`python benchmarks/gpu.py`)", ""]


def merged(results: list[dict], examples: list[str]) -> dict:
    """One result from runs over parts of the examples; refuses a set that misses an example or
    a batch size, or a quick run (the docs table holds full runs only)."""
    if not all(isinstance(r, dict) and {"records", "batches", "machine", "quick"} <= set(r)
               for r in results):
        raise Refused("these are not the JSON files of `gpu.py --run DIR --json FILE`")
    covered = {r["example"] for result in results for r in result["records"]}
    batches = {tuple(result["batches"]) for result in results}
    if (covered != set(examples) or batches != {BATCHES} or any(r["quick"] for r in results)
            or len({r["machine"] for r in results}) != 1):
        raise Refused("the runs must cover every example at B = 1, 64, 1024, 8192 on one machine, "
                      f"without --quick (got {sorted(covered)} at {sorted(batches)})")
    first = results[0]
    return {**first, "records": [r for result in results for r in result["records"]],
            "max_abs_error": {k: v for result in results for k, v in result["max_abs_error"].items()},
            "notes": sorted({n for result in results for n in result["notes"]})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    examples = sorted(p.stem for p in (ROOT / "examples").glob("*.dw"))
    steps = parser.add_mutually_exclusive_group()
    steps.add_argument("--build-only", metavar="DIR", help="the builds that need no GPU, into DIR")
    steps.add_argument("--run", metavar="DIR", help="the GPU step, from DIR's builds")
    steps.add_argument("--from-json", nargs="+", metavar="FILE",
                       help="write docs/benchmarks.md's section from the --json FILEs of runs "
                       "that together cover every example at every batch size")
    parser.add_argument("--only", default=None, metavar="EXAMPLE[,..]",
                        help=f"these examples only (of {', '.join(examples)})")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help=f"forms to run (default {','.join(TARGETS)})")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--arch", default="sm_90", help="CUDA architecture (default sm_90, Hopper)")
    parser.add_argument("--quick", action="store_true", help="5 rounds per batch size at most")
    parser.add_argument("--jobs", type=int, default=max(1, min(8, (os.cpu_count() or 2) // 2)),
                        help="parallel AOTInductor builds (default: half the cores, at most 8)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write the run's results")
    parser.add_argument("--work", default=None, metavar="DIR",
                        help="without --build-only/--run: the build directory (default: a "
                        "temporary one)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else None
    unknown = sorted(set(names or []) - set(examples))
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    bad = sorted(set(targets) - set(TARGETS))
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        batches = []
    if unknown or bad or not batches or not all(1 <= b <= MAX_BATCH for b in batches):
        print(f"gpu.py: unknown examples {unknown}, targets {bad} or batch sizes "
              f"{args.batches!r} (1 .. {MAX_BATCH})", file=sys.stderr)
        return 2
    try:
        if args.from_json:
            try:
                runs = [json.loads(Path(f).read_text()) for f in args.from_json]
            except (OSError, UnicodeDecodeError, ValueError) as error:
                raise Refused(f"cannot read the runs' JSON: {error}") from None
            result = merged(runs, examples)
            write_section("gpu", section(result))
            print(section(result))
            return 0
        if args.build_only:
            build(Path(args.build_only), names or examples, args.arch)
            return 0
        if args.run:
            result = run(Path(args.run), targets, batches, args.quick, args.jobs, names)
        else:
            with tempfile.TemporaryDirectory(prefix="dwc-gpu-") as scratch:
                work = Path(args.work or scratch)
                build(work, names or examples, args.arch)
                result = run(work, targets, batches, args.quick, args.jobs, names)
    except Refused as error:
        print(f"gpu.py: {error}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    markdown = section(result)
    print(markdown)
    if not args.run and names is None and not args.quick and batches == list(BATCHES):
        write_section("gpu", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
