"""Shared helpers for dwc's benchmarks: compiling specs to modules, timing, peak memory, and
writing result tables into docs/benchmarks.md (each benchmark owns one marked section)."""

from __future__ import annotations

import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dwc.backends.export import load_generated  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"


def machine() -> str:
    """The CPU (with its widest float vectors: the TVM schedules and every runtime's kernels
    depend on them, and "AMD EPYC" alone names hosts with and without AVX-512), the cores and the
    software."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():  # the first core's lines
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = info.get("model name") or platform.processor() or "unknown CPU"
    flags = set((info.get("flags") or info.get("Features") or "").split())  # x86, arm
    vectors = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"),
                                            ("avx", "AVX"), ("asimd", "NEON")) if flag in flags),
                   None)
    if vectors:
        cpu += f" ({vectors})"
    return (f"{cpu}, {os.cpu_count()} logical cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}, "
            f"{platform.system()} {platform.machine()}")


def load_model(spec: str, name: str, **options):
    """Compile spec text with dwc; returns the generated module's training class."""
    # imported here: gpu.py's GPU step runs where the spec compiler's packages (lark) are not
    from dwc.driver import compile_source
    from dwc.source import SourceFile

    result = compile_source(SourceFile(f"{name}.dw", spec), **options)
    return load_generated(result.files["model.py"], name)


def forward_fn(model, inputs):
    """One inference call of `model` on `inputs` (no autograd), as a thunk for the timers."""

    def run():
        with torch.no_grad():
            model(inputs)

    return run


def median_seconds(fn, repeats: int = 20, warmup: int = 3, budget: float = 3.0) -> float:
    """Median wall time of fn(); fewer repeats when one call is slow (keeps runs short)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - started < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


SETTLED_BURST = 0.002
"""With `settle`: each sample times back-to-back calls for about this many seconds."""


def interleaved_seconds(fns, repeats: int = 20, warmup: int = 3,
                        budget: float = 6.0, settle: float = 0.0) -> list[list[float]]:
    """Time several functions round by round (so drift on a shared machine hits all alike), each
    block of n rounds a seeded shuffle rotated through every position, so that each runs first
    equally often and none always runs right after the same other one: a form called after ORT
    meets its still-spinning workers, and when the order was only rotated, the form after ORT
    in the list met them in nearly every round (serving.py: `can` at B = 64 read 5.1 ms under
    no_grad, next after ORT, and 1.3 ms under inference_mode).

    Returns one list per round: the seconds of each function, in `fns` order. At least 3 rounds,
    at most `repeats`, fewer once `budget` seconds have passed.

    By default a sample is one call, made right after another function's call. When the
    functions run on different thread pools (ORT, TVM, OpenMP), the previous one's workers are
    still spinning then, on the same cores. `settle` > 0 idles that many seconds before each
    sample instead, makes one untimed call, and times a burst of back-to-back calls (about
    SETTLED_BURST seconds, 1-20 calls), reporting the seconds per call: each function measured
    on its own warm pool, as in a process that serves only it.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    rounds: list[list[float]] = []
    started = time.perf_counter()
    while len(rounds) < repeats and (len(rounds) < 3 or time.perf_counter() - started < budget):
        times = [0.0] * len(fns)
        # each block of n rounds: one seeded shuffle, rotated so that every function runs in
        # every position once per block (balanced, as two forms alternating first must be)
        block, shift = divmod(len(rounds), len(fns))
        order = list(range(len(fns)))
        random.Random(block).shuffle(order)
        for i in order[shift:] + order[:shift]:
            calls = 1
            if settle > 0:
                time.sleep(settle)
                t0 = time.perf_counter()
                fns[i]()
                calls = max(1, min(20, int(SETTLED_BURST / max(time.perf_counter() - t0, 1e-9))))
            t0 = time.perf_counter()
            for _ in range(calls):
                fns[i]()
            times[i] = (time.perf_counter() - t0) / calls
        rounds.append(times)
    return rounds


def paired_seconds(reference, candidate, repeats: int = 20, warmup: int = 3,
                   budget: float = 6.0) -> tuple[float, float, float]:
    """Time two functions alternately (interleaved_seconds).

    Returns (median reference seconds, median candidate seconds, median of the per-pair
    speed-ups reference / candidate).
    """
    pairs = interleaved_seconds([reference, candidate], repeats, warmup, budget)
    return (statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs),
            statistics.median(a / b for a, b in pairs))


def timed_forms(thunks: dict, base: str, quick: bool, **timing) -> dict:
    """Time named functions round by round (interleaved_seconds) and return their record:
    {"seconds": median per name, "ratios": median per-round time / `base`'s time for every other
    name (empty without `base`), "rounds"}. `quick`: at most 5 rounds in about a second."""
    names = list(thunks)
    if quick:
        timing = {"repeats": 5, "warmup": 1, "budget": 1.0, "settle": timing.get("settle", 0.0)}
    rounds = interleaved_seconds([thunks[n] for n in names], **timing)
    ratios = {}
    if base in names:
        b = names.index(base)
        ratios = {n: statistics.median(r[i] / r[b] for r in rounds)
                  for i, n in enumerate(names) if n != base}
    return {"seconds": {n: statistics.median(r[i] for r in rounds) for i, n in enumerate(names)},
            "ratios": ratios, "rounds": len(rounds)}


def timing_rows(records: list[dict], names: list[str]) -> list[list[str]]:
    """Table rows of timed_forms records (each with "example" and "batch"): ms per name, the
    ratio in brackets, "-" for a name a record lacks."""
    rows = []
    for record in records:
        cells = []
        for name in names:
            if name not in record["seconds"]:
                cells.append("-")
                continue
            cell = fmt_ms(record["seconds"][name])
            if name in record["ratios"]:
                cell += f" ({record['ratios'][name]:.2f}x)"
            cells.append(cell)
        rows.append([record["example"], str(record["batch"]), *cells])
    return rows


def high_water_bytes() -> int:
    """This process's peak resident set size (VmHWM: per address space, so unlike ru_maxrss it
    does not inherit the parent's peak across fork/exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def peak_rss_delta(script: str, *args: str) -> int:
    """Run `script args` in a fresh process; it prints one JSON number: bytes of peak-RSS growth."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    return int(json.loads(out.strip().splitlines()[-1]))


def write_section(name: str, markdown: str) -> None:
    """Replace the `name` section of docs/benchmarks.md (creating the file if needed)."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    text = DOC.read_text() if DOC.exists() else (
        "# Benchmarks\n\nMeasured side by side in one run per section; rerun the command shown "
        "in each section to reproduce. Numbers are from the machine each section names.\n")
    block = f"{begin}\n{markdown.rstrip()}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, text,
                      flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


def fmt_mib(n: int) -> str:
    return f"{n / 2**20:.1f}"
