"""Is the input pipeline of `dwc train` the bottleneck? Rows per second fed vs trained.

    .venv/bin/python benchmarks/train_input.py [--rows 100000] [--batch-size 1024] [--steps 60]

Writes the synthetic data (`dwc.data.make_dataset`) as a prepared directory (Parquet shards of
25,000 rows, the layout of docs/data.md) and as in-memory .npz arrays, then times, alternately and
`--repeats` times each:

- reader: one epoch of shuffled training batches from the prepared directory, the model idle
  (what dwc.prepared can feed: Parquet decoding, the shuffle buffer, tensors);
- reader (.npz): the same from the in-memory arrays;
- trained, fed by the reader: `--steps` training steps of experiments/apg.dw (forward, backward,
  Adam) on batches streamed from the prepared directory, the reader on its background thread
  (as `dwc train` runs it), and again with the reader in the training thread;
- trained, batches in memory: the same steps on the same batches, read beforehand (the model's
  own speed).

The input pipeline is not the bottleneck when "fed by the reader" trains as fast as "batches in
memory" (ratio near 1) and the reader alone is many times faster than training. Medians are
printed as a markdown table, with the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine  # noqa: E402

from dwc.backends.export import load_generated  # noqa: E402
from dwc.data import make_dataset  # noqa: E402
from dwc.dataset import Split as Arrays  # noqa: E402
from dwc.driver import compile_source  # noqa: E402
from dwc.prepared import ArraySplit, open_training_data  # noqa: E402
from dwc.source import SourceFile  # noqa: E402
from tests.train.prepared_dir import write_prepared  # noqa: E402

SPEC = ROOT / "experiments" / "apg.dw"


def read_epoch(split, batch_size: int, epoch: int) -> float:
    """Rows per second of one epoch of shuffled batches, nothing trained."""
    started = time.perf_counter()
    plan = split.epoch(epoch, 0, 0, 1, batch_size)
    rows = sum(len(targets["ctr"]) for _, targets in plan.batches)
    return rows / (time.perf_counter() - started)


def train_steps(model, optimizer, batches, steps: int) -> float:
    """Rows per second of `steps` training steps on `batches` (an iterator)."""
    rows = 0
    started = time.perf_counter()
    for _, (inputs, targets) in zip(range(steps), batches, strict=False):
        optimizer.zero_grad()
        model.loss(inputs, targets).backward()
        optimizer.step()
        rows += len(targets["ctr"])
    return rows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="training rows")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=60, help="training steps per timing")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    result = compile_source(SourceFile(str(SPEC), SPEC.read_text()))
    graph = result.graph
    splits = {"train": make_dataset(args.rows, 0, 0), "valid": make_dataset(1000, 0, 1)}
    with tempfile.TemporaryDirectory(prefix="dwc-train-input-") as work:
        root = write_prepared(Path(work) / "prepared", SPEC, graph, splits, shard_rows=25_000)
        prepared = open_training_data(str(root), graph).splits["train"]
        names = {s.name for s in graph.inputs}
        arrays = ArraySplit(Arrays("train", {k: v for k, v in splits["train"].items() if k in names},
                                   {"ctr": splits["train"]["ctr"]}))
        torch.manual_seed(0)
        model = load_generated(result.files["model.py"], "bench")(validate_inputs=False)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        def batches_of(epoch: int) -> list:
            """The batches the reader feeds in `epoch`, read beforehand (untimed): every
            variant trains on the same rows."""
            plan = prepared.epoch(epoch, 0, 0, 1, args.batch_size)
            try:
                return [batch for _, batch in zip(range(args.steps), plan.batches, strict=False)]
            finally:
                plan.close()

        train_steps(model, optimizer, iter(batches_of(0)), 5)  # warm-up
        def fed(epoch: int, prefetch: bool) -> float:
            prepared.prefetch = prefetch
            plan = prepared.epoch(epoch, 0, 0, 1, args.batch_size)
            try:
                return train_steps(model, optimizer, plan.batches, args.steps)
            finally:
                plan.close()
                prepared.prefetch = True

        trainers = {
            "trained, fed by the reader (its thread, as dwc train runs)": lambda e: fed(e, True),
            "trained, fed by the reader in the training thread": lambda e: fed(e, False),
            "trained, batches in memory": lambda e: train_steps(model, optimizer,
                                                                iter(batches_of(e)), args.steps),
        }
        timings: dict[str, list[float]] = {}
        ratios: dict[str, list[float]] = {}
        for repeat in range(args.repeats):
            epoch = repeat + 1
            timings.setdefault("reader (prepared directory)", []).append(
                read_epoch(prepared, args.batch_size, epoch))
            timings.setdefault("reader (.npz in memory)", []).append(
                read_epoch(arrays, args.batch_size, epoch))
            names_now = list(trainers)[repeat % 3:] + list(trainers)[:repeat % 3]  # rotated
            rates = {name: trainers[name](epoch) for name in names_now}  # the same batches
            memory = rates["trained, batches in memory"]
            for name, rate in rates.items():
                timings.setdefault(name, []).append(rate)
                ratios.setdefault(name, []).append(rate / memory)
            ratios.setdefault("reader (prepared directory)", []).append(
                timings["reader (prepared directory)"][-1] / memory)
            ratios.setdefault("reader (.npz in memory)", []).append(
                timings["reader (.npz in memory)"][-1] / memory)
    print(f"{args.rows:,} training rows in {-(-args.rows // 25_000)} shards, batch "
          f"{args.batch_size}, {args.steps} steps per training timing; medians of "
          f"{args.repeats} rounds (the ratio: the median of each round's ratio to that round's "
          f"training on batches in memory); {machine()}\n")
    print("| what | rows/s | vs training on batches in memory |")
    print("|---|---:|---:|")
    for name, values in timings.items():
        print(f"| {name} | {statistics.median(values):,.0f} | "
              f"{statistics.median(ratios[name]):.2f}x |")

if __name__ == "__main__":
    main()
