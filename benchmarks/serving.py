"""Small-batch serving of the torch inference form, every example beside ONNX Runtime: what the
grad mode and the input checks cost per call.

    python benchmarks/serving.py                          # writes the "serving" section of docs/benchmarks.md
    python benchmarks/serving.py --only ctr_mlp,can --batches 1 --quick

Forms, each called as a user calls it and timed round by round in one process (in a fresh order
each round, so drift on this 2-core machine hits all alike); in brackets the median per-round
ratio to ORT:
- ORT: `dwc.runtime.load` of the `dwc compile --target onnx` artifact, numpy in and out (as in
  backends.py);
- no_grad: `for_inference()` under `torch.no_grad()`, input checks on (backends.py's torch form);
- inference_mode: the same under `torch.inference_mode()`;
- unchecked: under `torch.inference_mode()` with `validate_inputs=False`;
- and `check_inputs` alone, in microseconds.

Each sample is one call made right after another form's, as in backends.py. On two cores that
call can stall behind the previous form's thread pool, still spinning (ORT's workers, OpenMP's):
a row whose medians and ratio disagree (a torch median far above ORT's, a ratio near 1) shows
it. Running with `--settle` in backends.py, each form on its own warm pool, moved such rows by
+-30% in either direction on this machine; neither way is a server's, which runs one form.

Every torch form and ORT carry the same weights and agree with the training module's eval forward
to 1e-4 before anything is timed. Builds (ONNX, about 3 s per example) are cached in `--work`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from backends import Disagreement, Example, parse_batches, parse_list, selection_options, source_digest
from common import ROOT, fmt_ms, machine, table, timed_forms, write_section

from dwc.runtime import load

BATCHES = (1, 64)
FORMS = ("onnx", "no_grad", "inference_mode", "unchecked", "check")
HEADERS = {"no_grad": "no_grad", "inference_mode": "inference_mode",
           "unchecked": "inference_mode, unchecked"}
TARGET = 1.5
"""Issue 17's target for the torch form at B = 1: at most this many times ORT's time."""


def thunks(example: Example, artifact, batch: int) -> dict:
    """Form -> a function of no arguments making one call on this batch size's inputs."""
    inputs = example.inputs(batch)
    arrays = {name: value.numpy() for name, value in inputs.items()}
    served = example.served
    unchecked = example.reference.for_inference()
    unchecked.validate_inputs = False

    def no_grad():
        with torch.no_grad():
            served(inputs)

    def inference_mode():
        with torch.inference_mode():
            served(inputs)

    def lean():
        with torch.inference_mode():
            unchecked(inputs)

    return {"onnx": lambda: artifact(arrays), "no_grad": no_grad,
            "inference_mode": inference_mode, "unchecked": lean,
            "check": lambda: served.check_inputs(inputs)}


def check_forms(example: Example, artifact) -> float:
    """The largest max abs error of ORT and of the torch forms under inference_mode against the
    reference (raises Disagreement past the tolerance)."""
    unchecked = example.reference.for_inference()
    unchecked.validate_inputs = False

    def under_inference_mode(model):
        def call(inputs):
            with torch.inference_mode():
                return model(inputs)
        return call

    return max(example.check("ORT", artifact),
               example.check("torch (inference_mode)", under_inference_mode(example.served)),
               example.check("torch (unchecked)", under_inference_mode(unchecked)))


def rows_of(records: list[dict]) -> list[list[str]]:
    rows = []
    for record in records:
        seconds, ratios = record["seconds"], record["ratios"]
        cells = [record["example"], str(record["batch"]), fmt_ms(seconds["onnx"])]
        cells += [f"{fmt_ms(seconds[f])} ({ratios[f]:.2f}x)" for f in HEADERS]
        cells.append(f"{seconds['check'] * 1e6:.0f}")
        rows.append(cells)
    return rows


def summary(records: list[dict]) -> list[str]:
    """One line per torch form: how many examples meet the target at B = 1, and the range."""
    ones = [r for r in records if r["batch"] == 1]
    if not ones:
        return []
    lines = []
    for form, label in HEADERS.items():
        ratios = sorted(r["ratios"][form] for r in ones)
        met = sum(ratio <= TARGET for ratio in ratios)
        lines.append(f"- {label}: {ratios[0]:.2f}-{ratios[-1]:.2f}x ORT at B = 1; {met} of "
                     f"{len(ratios)} examples within {TARGET}x.")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = selection_options(parser, BATCHES)
    parser.add_argument("--quick", action="store_true",
                        help="5 rounds per batch size at most, 1 s each (rough numbers)")
    parser.add_argument("--work", default=None, metavar="DIR",
                        help="keep weights and builds here and reuse them on the next run")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write the measurements as JSON")
    args = parser.parse_args(argv)
    examples = parse_list(args.only, names, "example") if args.only else names
    batches = parse_batches(args.batches)
    full = examples == names and batches == list(BATCHES) and not args.quick
    records, worst = [], 0.0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dwc-serving-") as scratch:
        work = Path(args.work) if args.work else Path(scratch)
        digest = source_digest()
        for name in examples:
            example = Example(ROOT / "examples" / f"{name}.dw", work, digest)
            directory, _, _ = example.build("onnx", ["--target", "onnx"])
            artifact = load(directory)
            try:
                worst = max(worst, check_forms(example, artifact))
            except Disagreement as error:
                print(f"serving.py: {error}", file=sys.stderr)
                return 1
            for batch in batches:
                record = timed_forms(thunks(example, artifact, batch), "onnx", args.quick,
                                     repeats=200, warmup=10, budget=6.0)
                records.append({"example": name, "batch": batch, **record})
                print(" | ".join(rows_of(records[-1:])[0]), flush=True)
    elapsed = time.perf_counter() - started
    header = ["example", "B", "ORT (ms)", *(f"{h} (ms, x ORT)" for h in HEADERS.values()),
              "check_inputs (µs)"]
    md = [
        "## Serving the torch form at small batches (`python benchmarks/serving.py`)", "",
        f"Machine: {machine()}.", "",
        "The generated module's `for_inference()` called on torch tensors under `no_grad` and "
        "under `inference_mode` with input checks on (the default), under `inference_mode` "
        "without them (`validate_inputs=False`), and `check_inputs` alone; ORT = `dwc.runtime` "
        "on the ONNX artifact, numpy in and out. Same weights everywhere, every form within "
        f"{worst:.1e} of the training module's eval forward. Median ms per call; in brackets "
        "the median per-round ratio to ORT, the forms timed round by round in one process.", "",
        table(header, rows_of(records)), "",
        *summary(records), "",
        f"Target (issue 17): torch <= {TARGET}x ORT at B = 1 with input checks on.",
        f"({len(examples)} examples in {elapsed:.0f} s, builds included.)",
    ]
    print("\n".join(md))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine(), "records": records, "max_abs_error": worst,
             "seconds": elapsed}, indent=1) + "\n")
    if full:
        write_section("serving", "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
