"""Every example's served forms side by side: the torch inference module, the AOTInductor package,
ONNX Runtime and TVM (llvm; untuned, and tuned with `--tune`), with their latency as ratios
against ONNX Runtime.

    python benchmarks/backends.py                     # writes the "backends" section of docs/benchmarks.md
    python benchmarks/backends.py --only ctr_mlp,star --batches 1,1024 --quick   # printed only
    python benchmarks/backends.py --targets torch,onnx,tvm --work /tmp/dwc-bench  # reuse builds

The served forms, each as a user calls it: torch = the generated module's `for_inference()` under
no_grad with input validation on (torch tensors in); AOTI, ORT and TVM = `dwc.runtime.load(DIR)`
of the `dwc compile --target aoti|onnx|tvm` artifact (numpy arrays in and out, the runtime's input
checks included). Every artifact is built by the `dwc` CLI with the same weights (the seeded
initialisation, moved off its neutral start by a fixed perturbation, so that dynamic paths compute
something) and checked against the training module's eval forward (max abs error <= 1e-4 on every
output at B = 1 and 64; a disagreement stops the run with exit status 1). Each batch size's forms
run round by round in one process, in a fresh order each round; a form's ratio is the median of
its per-round time / ORT's time (lower is better).

Builds are cached in the work directory (`--work`, default a temporary one), keyed by the spec,
the target's options and a digest of dwc's own sources, so a rerun after an unrelated change does
not rebuild (AOTInductor builds take 20-60 s each on 2 cores). Only a full run (every example,
batch size and target, no `--quick`) writes docs/benchmarks.md; `--json FILE` writes the measured
numbers of any run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import ROOT, machine, table, timed_forms, timing_rows, write_section

from dwc.backends.export import load_generated
from dwc.driver import compile_source
from dwc.runtime import load
from dwc.source import SourceFile

EXAMPLES = sorted((ROOT / "examples").glob("*.dw"))
BATCHES = (1, 64, 1024, 8192)
TARGETS = ("torch", "aoti", "onnx", "tvm", "tvm-tuned")
LABELS = {"torch": "torch", "aoti": "AOTI", "onnx": "ORT", "tvm": "TVM", "tvm-tuned": "TVM tuned"}
TOLERANCE = 1e-4
PERTURBATION = 0.05
"""Standard deviation of the noise added to every parameter of the seeded initialisation."""
MAX_BATCH = max(BATCHES)
DWC = [sys.executable, "-m", "dwc"]


class Disagreement(Exception):
    """A served form whose outputs differ from the torch reference by more than TOLERANCE."""


def source_digest() -> str:
    """sha256 over dwc's sources (package, templates, grammar) and the torch version: what an
    artifact depends on besides its spec, so a cached build is reused only while these hold."""
    digest = hashlib.sha256(torch.__version__.encode())
    for folder in ("dwc", "templates", "grammar"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def dwc_can_tune() -> bool:
    """Whether this dwc's `compile` has `--tune` (TVM MetaSchedule tuning with a cached database)."""
    help_text = subprocess.run([*DWC, "compile", "--help"], capture_output=True, text=True,
                               cwd=ROOT, check=True).stdout
    return "--tune" in help_text


def perturbed_weights(cls, path: Path) -> None:
    """Save the seeded initialisation (torch seed 0, as `dwc compile` without weights uses) with
    fixed noise added to every parameter: a neutral start (zero generators, identity gates)
    would let a broken dynamic path agree with the reference."""
    torch.manual_seed(0)
    model = cls(validate_inputs=False)
    noise = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=noise) * PERTURBATION)
    torch.save(model.state_dict(), path)


class Example:
    """One example spec: its generated module, weights and reference, and its built artifacts."""

    def __init__(self, path: Path, work: Path, digest: str) -> None:
        self.path = path
        self.name = path.stem
        spec = path.read_bytes()
        self.key = hashlib.sha256(spec + b"\0" + digest.encode()).hexdigest()[:16]
        self.dir = work / f"{self.name}-{self.key}"
        self.dir.mkdir(parents=True, exist_ok=True)
        result = compile_source(SourceFile(str(path), spec.decode()))
        self.cls = load_generated(result.files["model.py"], self.name)
        self.weights = self.dir / "weights.pt"
        if not self.weights.exists():
            partial = self.weights.with_suffix(".tmp")
            perturbed_weights(self.cls, partial)
            partial.replace(self.weights)
        state = torch.load(self.weights, weights_only=True)
        self.reference = self.cls()
        self.reference.load_state_dict(state)
        self.reference.eval()
        self.served = self.reference.for_inference()  # validation on: the class default

    def build(self, stem: str, arguments: list[str]) -> tuple[Path, float, bool]:
        """Build (or find in the work directory) the artifact `dwc compile SPEC ARGUMENTS` makes,
        with this example's weights and --max-batch 8192, into the `stem` folder.

        Returns (directory, build seconds, whether it came from the cache)."""
        out = self.dir / stem
        record = self.dir / f"{stem}.build.json"
        if (out / "manifest.json").exists() and record.exists():
            return out, json.loads(record.read_text())["seconds"], True
        command = [*DWC, "compile", str(self.path), *arguments, "--weights", str(self.weights),
                   "--max-batch", str(MAX_BATCH), "-o", str(out)]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"{Path(sys.argv[0]).name}: `{' '.join(command)}` failed "
                             f"(exit {done.returncode}):\n{done.stderr}")
        record.write_text(json.dumps({"seconds": seconds, "command": command[2:]}) + "\n")
        return out, seconds, False

    def inputs(self, batch: int) -> dict[str, torch.Tensor]:
        return self.cls.example_inputs(batch, torch.Generator().manual_seed(batch))

    def check(self, label: str, call) -> float:
        """Max abs error of `call(inputs)` against the reference over every output at B = 1 and
        64; raises Disagreement past TOLERANCE."""
        worst = 0.0
        for batch in (1, 64):
            inputs = self.inputs(batch)
            with torch.no_grad():
                expected = self.reference(inputs)
            got = call(inputs)
            for name, value in expected.items():
                mine = torch.as_tensor(got[name])
                if tuple(mine.shape) != tuple(value.shape):
                    raise Disagreement(f"{label} on {self.name}: output {name!r} has shape "
                                       f"{list(mine.shape)}, the reference {list(value.shape)}")
                worst = max(worst, (mine - value).abs().max().item())
        if not worst <= TOLERANCE:  # also catches NaN
            raise Disagreement(f"{label} on {self.name} disagrees with the torch reference: max "
                               f"abs error {worst:.2e} > {TOLERANCE:g}")
        return worst


def served_calls(example: Example, artifacts: dict[str, Path]):
    """target -> a function of a torch input dict (numpy for the artifacts' runtimes, converted
    once beforehand by `prepare`) returning the outputs."""

    def torch_call(inputs):
        with torch.no_grad():
            return example.served(inputs)

    calls = {"torch": (torch_call, lambda inputs: inputs)}
    for target, directory in artifacts.items():
        calls[target] = (load(directory), lambda inputs: {k: v.numpy() for k, v in inputs.items()})
    return calls


def measure(example: Example, calls, batches, quick: bool, settle: float = 0.0) -> list[dict]:
    """Time every form at every batch size, round by round; one record per batch size."""
    records = []
    targets = list(calls)
    for batch in batches:
        inputs = example.inputs(batch)
        thunks = {}
        for target in targets:
            call, prepare = calls[target]
            prepared = prepare(inputs)
            thunks[target] = lambda call=call, prepared=prepared: call(prepared)
        record = timed_forms(thunks, "onnx", quick, repeats=40 if batch < 8192 else 12,
                             warmup=3, budget=8.0, settle=settle)
        records.append({"example": example.name, "batch": batch, **record})
    return records


def timing_table(records: list[dict], targets: list[str]) -> tuple[list[str], list[list[str]]]:
    relative = "onnx" in targets
    header = ["example", "B"] + [
        f"{LABELS[t]} (ms{', x ORT' if relative and t != 'onnx' else ''})" for t in targets]
    return header, timing_rows(records, targets)


def parse_list(text: str, allowed, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in items if t not in allowed]
    if unknown:
        raise SystemExit(f"{Path(sys.argv[0]).name}: unknown {what}: {', '.join(unknown)} "
                         f"(choose from {', '.join(map(str, allowed))})")
    return items


def selection_options(parser: argparse.ArgumentParser, batches: tuple[int, ...]) -> list[str]:
    """--only and --batches (which examples and batch sizes a run covers, `batches` by default)
    on `parser`; returns every example's name."""
    names = [p.stem for p in EXAMPLES]
    parser.add_argument("--only", default=None, metavar="EXAMPLE[,..]",
                        help=f"these examples only (of {', '.join(names)})")
    parser.add_argument("--batches", default=",".join(map(str, batches)), metavar="B[,..]",
                        help=f"batch sizes (default {','.join(map(str, batches))}; at most "
                        f"{MAX_BATCH})")
    return names


def parse_batches(text: str) -> list[int]:
    """The --batches list, each size in 1 .. MAX_BATCH (SystemExit naming the script if not)."""
    script = Path(sys.argv[0]).name
    try:
        batches = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise SystemExit(f"{script}: --batches takes integers: {text!r}") from None
    if not batches or not all(1 <= b <= MAX_BATCH for b in batches):
        raise SystemExit(f"{script}: batch sizes must lie in 1 .. {MAX_BATCH}")
    return batches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = selection_options(parser, BATCHES)
    parser.add_argument("--targets", default=",".join(TARGETS), metavar="T[,..]",
                        help=f"served forms (default {','.join(TARGETS)}; tvm-tuned needs --tune)")
    parser.add_argument("--tune", type=int, default=None, metavar="TRIALS",
                        help="build tvm-tuned with `dwc compile --target tvm --tune TRIALS` "
                        "(dwc reuses its tuning database, so only the first build tunes)")
    parser.add_argument("--tune-batches", default=None, metavar="B[,..]",
                        help="with --tune: the bucket sizes tuned (dwc's --tune-batches; default "
                        "dwc's, 1,64,1024,8192)")
    parser.add_argument("--quick", action="store_true",
                        help="5 rounds per batch size at most, 1 s each (rough numbers)")
    parser.add_argument("--settle", type=float, default=0.0, metavar="MS",
                        help="idle MS milliseconds before each sample and time a burst of calls "
                        "(each form on its own warm thread pool; default: one call per sample, "
                        "right after the previous form's; see docs/benchmarks.md)")
    parser.add_argument("--work", default=None, metavar="DIR",
                        help="keep weights and builds here and reuse them on the next run "
                        "(default: a temporary directory, removed at the end)")
    parser.add_argument("--write-docs", action="store_true",
                        help="write docs/benchmarks.md's section from a partial run too (--only, "
                        "--batches, --targets), saying what was left out (a full run always "
                        "writes it)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write the measurements (and build times) as JSON")
    args = parser.parse_args(argv)
    examples = parse_list(args.only, names, "example") if args.only else names
    batches = parse_batches(args.batches)
    targets = parse_list(args.targets, TARGETS, "target")
    notes = []
    if "tvm-tuned" in targets and (args.tune is None or not dwc_can_tune()):
        why = ("this dwc's compile has no --tune yet" if args.tune is not None
               else "no --tune TRIALS given")
        notes.append(f"TVM tuned: skipped ({why})")
        print(f"backends.py: {notes[-1]}", file=sys.stderr)
        targets.remove("tvm-tuned")
    full = (examples == names and batches == list(BATCHES) and not args.quick
            and set(targets) >= {"torch", "aoti", "onnx", "tvm"})
    with tempfile.TemporaryDirectory(prefix="dwc-backends-") as scratch:
        work = Path(args.work) if args.work else Path(scratch)
        digest = source_digest()
        records, builds, errors = [], [], {}
        started = time.perf_counter()
        for name in examples:
            example = Example(ROOT / "examples" / f"{name}.dw", work, digest)
            artifacts, build = {}, {"example": name}
            for target in targets:
                if target == "tvm-tuned":
                    tuning = ["--tune", str(args.tune)]
                    if args.tune_batches:
                        tuning += ["--tune-batches", args.tune_batches]
                    stem = f"tvm-tuned-{args.tune}" + (
                        f"-b{args.tune_batches.replace(',', '-')}" if args.tune_batches else "")
                    built = example.build(stem, ["--target", "tvm", *tuning])
                elif target != "torch":
                    built = example.build(target, ["--target", target])
                if target != "torch":
                    artifacts[target], build[target], build[f"{target} cached"] = built
            calls = served_calls(example, artifacts)
            try:
                errors[name] = {t: example.check(LABELS[t], calls[t][0]) for t in targets}
            except Disagreement as error:
                print(f"backends.py: {error}", file=sys.stderr)
                return 1
            builds.append(build)
            print(f"{name}: builds " + ", ".join(
                f"{LABELS[t]} {build[t]:.1f} s{' (cached)' if build[f'{t} cached'] else ''}"
                for t in targets if t != "torch") + "; max abs error " + ", ".join(
                f"{LABELS[t]} {e:.1e}" for t, e in errors[name].items()), flush=True)
            for record in measure(example, calls, batches, args.quick, args.settle / 1000):
                records.append(record)
                print(" | ".join(timing_rows([record], targets)[0]), flush=True)
        elapsed = time.perf_counter() - started
    header, rows = timing_table(records, targets)
    build_targets = [t for t in targets if t != "torch"]
    build_rows = [[b["example"], *(f"{b[t]:.1f}{' (cached)' if b[f'{t} cached'] else ''}"
                                   for t in build_targets)] for b in builds]
    worst = {t: max(errors[n][t] for n in errors) for t in targets}
    print(table(header, rows))
    print(f"({len(examples)} examples in {elapsed:.0f} s, builds included)")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine(), "targets": targets, "records": records, "builds": builds,
             "max_abs_error": errors, "notes": notes, "seconds": elapsed}, indent=1) + "\n")
    if not full and not args.write_docs:
        return 0
    scope = "Every example" if full else (
        f"A partial run: {len(examples)} of {len(names)} examples "
        f"({', '.join(examples)}), batch sizes {', '.join(map(str, batches))}; rerun without "
        "options for the full table. Each example")
    md = [
        "## Served forms against ONNX Runtime (`python benchmarks/backends.py`)", "",
        f"Machine: {machine()}.", "",
        f"{scope}, each served form as a user calls it: torch = the generated module's "
        "`for_inference()` under no_grad with input validation on; AOTI, ORT and TVM (llvm, the "
        "host's CPU features) = `dwc.runtime.load` of the `dwc compile` artifact, numpy in and "
        "out. All forms carry the same weights and agree with the training module's eval forward "
        "(max abs error: " + ", ".join(f"{LABELS[t]} {e:.1e}" for t, e in worst.items())
        + "). Median ms per call; in brackets the median per-round ratio to ORT (lower is "
        "better), the forms timed round by round in one process, " + (
            f"each sample {args.settle:g} ms after the previous form's, a burst of warm calls "
            "(`--settle`)" if args.settle else "each sample one call right after the previous "
            "form's") + "." + (
            " " + "; ".join(notes) + "." if notes else ""), "",
        table(header, rows), "",
        "Build time (s, `dwc compile` wall time including interpreter start-up; `(cached)`: "
        "reused from `--work`, time of the original build):", "",
        table(["example", *(LABELS[t] for t in build_targets)], build_rows), "",
        "Targets (issue 17): untuned TVM <= 1.0x ORT at B = 64, 1024, 8192 and <= 1.5x at B = 1; "
        "tuned TVM <= 0.8x ORT at the tuned sizes; AOTI <= 1.0x ORT at B >= 64; torch <= 1.5x ORT "
        "at B = 1.",
    ]
    write_section("backends", "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
