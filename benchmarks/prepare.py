"""Peak memory and throughput of `dwc data prepare` as the log grows (docs/data.md).

Writes synthetic raw logs of each size (string user and item ids, a float64 price with nulls, a
`^`-joined history of up to 20 item ids, scenario names for country and page, a 0/1 click; a
fixed number of distinct ids, so the vocabularies are the same size at every row count), then
runs `dwc data prepare` on each in a fresh process and reports that process's peak RSS and rows/s.
Peak memory that stays flat from 200k to 5M rows shows the streaming holds.

    nice -n 10 python benchmarks/prepare.py                     # 200k, 800k, 5M; Parquet, CSV
    python benchmarks/prepare.py --rows 200000,800000 --formats parquet
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
USERS, ITEMS, HISTORY, CHUNK = 100_000, 20_000, 20, 100_000
COUNTRIES = np.array(["US", "DE", "FR", "BR", "JP", "IN", "GB", "MX"])
PAGES = np.array(["feed", "search", "detail"])

SPEC = """\
model prepare_bench

feature user_id  : categorical(vocab = 100_001, dim = 16)
feature item_id  : categorical(vocab = 20_001, dim = 16)
feature category : categorical(vocab = 51, dim = 8)
feature price    : numeric(norm = log1p)
feature history  : sequence(item_id, max_len = 20)
feature country  : categorical(vocab = 9, dim = 4) scenario
feature page     : categorical(vocab = 4, dim = 4) scenario

scenarios country * page

condition z = concat(country, page)

x = concat(user_id, item_id, category, price, history)
h = mlp(x, [64, 32]) dynamic(by = z)
output ctr = sigmoid(linear(h, 1)) loss = bce column = "click"
"""

# the child: run `dwc data prepare`, then print its own peak RSS (ru_maxrss is KiB on Linux)
_CHILD = """\
import json, resource, sys, time
from dwc.cli import main
start = time.perf_counter()
status = main(sys.argv[1:])
seconds = time.perf_counter() - start
print(json.dumps({"status": status, "seconds": seconds,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
_IMPORT_ONLY = """\
import json, resource
import dwc.cli, dwc.prepare, dwc.driver, pyarrow.parquet, pyarrow.csv
print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def chunk(rng: np.random.Generator, rows: int) -> pa.Table:
    """`rows` synthetic log rows (see the module docstring)."""
    users = rng.zipf(1.3, rows) % USERS
    items = rng.zipf(1.2, rows) % ITEMS
    lengths = rng.integers(0, HISTORY + 1, rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    history_items = pc.binary_join_element_wise(
        "i", pc.cast(pa.array(rng.zipf(1.2, int(offsets[-1])) % ITEMS), pa.string()), "")
    history = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), history_items), "^")
    price = rng.lognormal(3.0, 1.0, rows)
    price[rng.random(rows) < 0.02] = np.nan
    return pa.table({
        "user_id": pc.binary_join_element_wise("u", pc.cast(pa.array(users), pa.string()), ""),
        "item_id": pc.binary_join_element_wise("i", pc.cast(pa.array(items), pa.string()), ""),
        "category": pa.array(items % 50),
        "price": pa.array(price, from_pandas=True),
        "history": history,
        "country": pa.array(COUNTRIES[rng.choice(len(COUNTRIES), rows, p=[
            .4, .2, .1, .1, .08, .06, .04, .02])]),
        "page": pa.array(PAGES[rng.choice(3, rows, p=[.7, .2, .1])]),
        "click": pa.array((rng.random(rows) < 0.1).astype(np.float64)),
    })


def write_log(path: Path, rows: int, fmt: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    writer = None
    try:
        for start in range(0, rows, CHUNK):
            table = chunk(rng, min(CHUNK, rows - start))
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema) if fmt == "parquet" else \
                    pacsv.CSVWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def run_child(code: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"prepare failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="200000,800000,5000000")
    parser.add_argument("--formats", default="parquet,csv")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    sizes = [int(r) for r in args.rows.split(",")]
    formats = args.formats.split(",")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, pyarrow {pa.__version__}")
    base = run_child(_IMPORT_ONLY)["peak_mib"]
    print(f"imports alone (dwc, pyarrow): {base:.0f} MiB peak RSS\n")
    print("| format | rows | log size | peak RSS | rows/s |")
    print("|---|---:|---:|---:|---:|")
    results = []
    with tempfile.TemporaryDirectory(prefix="dwc-prepare-bench-") as tmp:
        spec = Path(tmp) / "spec.dw"
        spec.write_text(SPEC)
        for fmt in formats:
            for rows in sizes:
                log = Path(tmp) / f"log-{rows}.{fmt}"
                write_log(log, rows, fmt)
                out = Path(tmp) / f"prepared-{fmt}-{rows}"
                begun = time.perf_counter()
                measured = run_child(_CHILD, "data", "prepare", str(spec), "--train", str(log),
                                     "--out", str(out))
                wall = time.perf_counter() - begun
                rate = rows / measured["seconds"]
                size = log.stat().st_size / 2**20
                print(f"| {fmt} | {rows:,} | {size:,.0f} MiB | {measured['peak_mib']:,.0f} MiB | "
                      f"{rate:,.0f} |", flush=True)
                results.append({"format": fmt, "rows": rows, "log_mib": size,
                                "peak_mib": measured["peak_mib"], "rows_per_s": rate,
                                "wall_s": wall})
                log.unlink()
                subprocess.run(["rm", "-rf", str(out)], check=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"imports_mib": base, "results": results},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
