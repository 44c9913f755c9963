"""Two revisions of dwc side by side: each example's served form as a base revision builds it and
as the working tree builds it, timed alternately in one process, the ratio new / base per round.

    python benchmarks/ab.py --base HEAD~1                         # torch form, every example
    python benchmarks/ab.py --base 633f981 --only star,hamur --batches 1,1024
    python benchmarks/ab.py --base HEAD~3 --targets torch,tvm --only can --batches 8192

What a change to the compiler buys, measured the way this 2-core machine allows: both builds of
a form run in the same process, round by round (a fresh order each round), so drift hits
both alike.
The base revision's tracked files are exported with `git archive` into a temporary directory
(the repository is not touched) and its `dwc compile` runs from there; the working tree's from
here. Both compile the working tree's copy of each example spec, with the same weights: the
seeded initialisation of the working tree's training form, perturbed as in backends.py (so a
neutral start cannot hide a broken path), loaded into each side's training class. The torch
form is each side's `for_inference()` under no_grad with input validation on; an artifact target
(onnx, tvm, aoti) is `dwc.runtime.load` of each side's build. The two sides must agree to 1e-4
at every measured batch size, or the run stops.

Prints a markdown table (example, B, target, base and new median ms, median per-round new /
base: below 1 is faster); `--json FILE` writes the records. It writes nothing to docs/: a doc
that quotes a before/after figure names the command that measured it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch
from backends import BATCHES, EXAMPLES, MAX_BATCH, TOLERANCE, parse_list, perturbed_weights
from common import ROOT, machine, table, timed_forms

from dwc.backends.export import load_generated
from dwc.driver import compile_source
from dwc.runtime import load
from dwc.source import SourceFile

TARGETS = ("torch", "onnx", "tvm", "aoti")
SIDES = ("base", "new")


def export_revision(revision: str, into: Path) -> str:
    """The tracked files of `revision` extracted into `into`; returns its commit hash."""
    found = subprocess.run(["git", "rev-parse", "--verify", f"{revision}^{{commit}}"],
                           capture_output=True, text=True, cwd=ROOT)
    if found.returncode:
        raise SystemExit(f"ab.py: {revision!r} is not a commit of this repository")
    commit = found.stdout.strip()
    archive = into.with_suffix(".tar")
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), commit], check=True,
                   cwd=ROOT)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    archive.unlink()
    return commit


def compile_with(tree: Path, spec: Path, target: str, weights: Path, out: Path) -> Path:
    """`dwc compile SPEC --target TARGET` run from the dwc sources in `tree`; returns `out`."""
    command = [sys.executable, "-m", "dwc", "compile", str(spec), "--target", target,
               "-o", str(out)]
    if target != "torch":
        command += ["--weights", str(weights), "--max-batch", str(MAX_BATCH)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(command, capture_output=True, text=True, cwd=tree, env=env)
    if done.returncode:
        raise SystemExit(f"ab.py: `{' '.join(command[2:])}` failed with the sources in {tree} "
                         f"(exit {done.returncode}):\n{done.stderr}")
    return out


def served(directory: Path, target: str, name: str, weights: Path):
    """One side's served form as a function of a torch input dict, and how to prepare the dict
    for it."""
    if target != "torch":
        return load(directory), lambda inputs: {k: v.numpy() for k, v in inputs.items()}
    cls = load_generated((directory / "model.py").read_text(), f"{name}_{directory.parent.name}")
    model = cls()
    try:
        model.load_state_dict(torch.load(weights, weights_only=True))
    except RuntimeError as error:  # the revisions' training forms differ
        raise SystemExit(f"ab.py: {name}: the {directory.parent.name} side's training form "
                         f"does not take the working tree's weights:\n{error}") from None
    form = model.eval().for_inference()

    def call(inputs):
        with torch.no_grad():
            return form(inputs)

    return call, lambda inputs: inputs


def gap(a: dict, b: dict) -> float:
    """Max abs difference over every output of two calls."""
    return max((torch.as_tensor(a[k]) - torch.as_tensor(b[k])).abs().max().item() for k in a)


def measure(name: str, spec: Path, trees: dict[str, Path], targets: list[str],
            batches: list[int], work: Path, quick: bool) -> list[dict]:
    """Every target's two builds of one example, timed at every batch size."""
    cls = load_generated(compile_source(SourceFile(str(spec), spec.read_text())).files["model.py"],
                         name)
    weights = work / f"{name}.pt"
    perturbed_weights(cls, weights)
    records = []
    for target in targets:
        calls = {side: served(compile_with(tree, spec, target, weights,
                                           work / side / f"{name}-{target}"),
                              target, name, weights)
                 for side, tree in trees.items()}
        for batch in batches:
            inputs = cls.example_inputs(batch, torch.Generator().manual_seed(batch))
            thunks, results = {}, {}
            for side, (call, prepare) in calls.items():
                prepared = prepare(inputs)
                results[side] = call(prepared)
                thunks[side] = lambda call=call, prepared=prepared: call(prepared)
            error = gap(results["base"], results["new"])
            if not error <= TOLERANCE:  # also catches NaN
                raise SystemExit(f"ab.py: {name} {target} at B = {batch}: the two builds differ "
                                 f"by {error:.2e} > {TOLERANCE:g}")
            record = timed_forms(thunks, "base", quick, repeats=40 if batch < 8192 else 12,
                                 warmup=3, budget=6.0)
            records.append({"example": name, "batch": batch, "target": target,
                            "max_abs_error": error, **record})
            print(f"  {name} {target} B={batch}: new / base {record['ratios']['new']:.2f}",
                  file=sys.stderr, flush=True)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [p.stem for p in EXAMPLES]
    parser.add_argument("--base", required=True, metavar="REV",
                        help="the revision to compare against (a commit, tag or branch)")
    parser.add_argument("--only", default=None, metavar="EXAMPLE[,..]",
                        help=f"these examples only (of {', '.join(names)})")
    parser.add_argument("--targets", default="torch", metavar="T[,..]",
                        help=f"served forms (default torch; of {', '.join(TARGETS)})")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES[:3])), metavar="B[,..]",
                        help=f"batch sizes (default 1,64,1024; at most {MAX_BATCH})")
    parser.add_argument("--quick", action="store_true",
                        help="5 rounds per batch size at most, 1 s each (rough numbers)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write the measurements as JSON")
    args = parser.parse_args(argv)
    examples = parse_list(args.only, names, "example") if args.only else names
    targets = parse_list(args.targets, TARGETS, "target")
    try:
        batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        raise SystemExit(f"ab.py: --batches takes integers: {args.batches!r}") from None
    if not batches or not all(1 <= b <= MAX_BATCH for b in batches):
        raise SystemExit(f"ab.py: batch sizes must lie in 1 .. {MAX_BATCH}")
    with tempfile.TemporaryDirectory(prefix="dwc-ab-") as scratch:
        work = Path(scratch)
        commit = export_revision(args.base, work / "base-tree")
        trees = {"base": work / "base-tree", "new": ROOT}
        records = []
        for name in examples:
            records += measure(name, ROOT / "examples" / f"{name}.dw", trees, targets, batches,
                               work, args.quick)
    rows = [[r["example"], str(r["batch"]), r["target"],
             f"{r['seconds']['base'] * 1e3:.3f}", f"{r['seconds']['new'] * 1e3:.3f}",
             f"{r['ratios']['new']:.2f}"] for r in records]
    print(f"Machine: {machine()}.\nbase = {args.base} ({commit[:12]}), new = the working tree; "
          "median ms per call, new / base the median per-round ratio (below 1: faster).\n")
    print(table(["example", "B", "target", "base (ms)", "new (ms)", "new / base"], rows))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"base": args.base, "commit": commit, "machine": machine(), "records": records},
            indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
