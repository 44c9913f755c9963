"""How close dwc's generated inference modules come to this machine's matmul peak at B = 8192.

    python benchmarks/efficiency.py   # writes the "efficiency" section of docs/benchmarks.md

For every example spec (and the three models of `peers.py`), the served form (`for_inference()`)
runs at B = 8192 under `torch.profiler`. Its dominant layers are its GEMMs (mm, addmm, bmm, ...:
every linear, dynamic or not, lowers to one), so the table reports the GEMM kernels' achieved
GFLOP/s, with the FLOPs computed from each call's recorded shapes and the time each call took
inside the real forward (first touches of fresh output pages included), against the machine's
fp32 matmul peak and against the roofline min(peak, FLOP/byte x memory bandwidth), both measured
in the same run. Next to it: the share of the model's FLOPs (dwc's cost model) those GEMMs
carry, and the whole forward's GFLOP/s (cost-model FLOPs over the median forward time,
embeddings, grouping by cell and elementwise work included). The whole forward is timed in two
fresh child processes: with glibc's default malloc, and with glibc told to keep freed memory
(what jemalloc or tcmalloc do), each with its minor page faults per forward.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys

import peers
import torch
from common import (
    ROOT,
    fmt_ms,
    forward_fn,
    load_generated,
    machine,
    median_seconds,
    table,
    write_section,
)

from dwc.driver import compile_source
from dwc.source import SourceFile

BATCH = 8192
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(2**25), "MALLOC_TRIM_THRESHOLD_": str(2**40)}
"""Blocks up to 32 MiB (glibc's largest allowed threshold; above it the setting is ignored) come
from the heap, which is never trimmed: freed buffers are reused without page faults."""
EXAMPLES = sorted((ROOT / "examples").glob("*.dw"))
GEMMS = {"aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm",
         "aten::baddbmm_"}


def specs() -> list[tuple[str, str]]:
    out = [(path.stem, path.read_text()) for path in EXAMPLES]
    out += [(f"peers: {name}", getattr(peers, name.upper())) for name in ("apg", "ppnet", "star")]
    return out


def gemm_shape(name: str, shapes: list[list[int]]) -> tuple[int, int]:
    """(FLOPs, bytes of operands and result) of one GEMM call from its recorded input shapes
    (a bias, if any, comes first)."""
    a, b = shapes[:2] if name in ("aten::mm", "aten::bmm") else shapes[1:3]
    batch = a[0] if len(a) == 3 else 1
    m, k, n = a[-2], a[-1], b[-1]
    return 2 * batch * m * k * n, 4 * batch * (m * k + k * n + m * n)


def served(name: str, spec: str):
    """The model's served form, example inputs at BATCH, and its FLOPs per batch (cost model)."""
    module = name.replace("peers: ", "") + "_eff"
    result = compile_source(SourceFile(f"{module}.dw", spec))
    cls = load_generated(result.files["model.py"], module)
    torch.manual_seed(0)
    model = cls(validate_inputs=False).eval().for_inference()
    inputs = cls.example_inputs(BATCH, torch.Generator().manual_seed(0))
    return model, inputs, sum(op.flops() for op in result.inference.ops) * BATCH


def forward_seconds(model, inputs) -> tuple[float, float]:
    """Median seconds of one forward, and the minor page faults per forward."""
    run, calls = forward_fn(model, inputs), [0]

    def counted():
        calls[0] += 1
        run()

    for _ in range(3):  # warm up outside the count
        run()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    seconds = median_seconds(counted, repeats=30, warmup=0)
    return seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls[0]


def child() -> None:
    """Whole-forward times and page faults of every model (run by main in fresh processes)."""
    print(json.dumps({name: forward_seconds(*served(name, spec)[:2]) for name, spec in specs()}))


def forwards(env: dict[str, str]) -> dict[str, list[float]]:
    out = subprocess.run([sys.executable, __file__, "--child"], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={**os.environ, **env}).stdout
    return json.loads(out.strip().splitlines()[-1])


def gemm_profile(model, inputs, calls: int = 15) -> tuple[float, float, float]:
    """(GEMM FLOPs, bytes and seconds per forward) inside the real forward: each of `calls`
    forwards profiled on its own, the median GEMM time kept (the shared machine is noisy)."""
    run = forward_fn(model, inputs)
    for _ in range(3):
        run()
    times = []
    for _ in range(calls):
        with torch.profiler.profile(record_shapes=True) as prof:
            run()
        flops = moved = seconds = 0.0
        for event in prof.events():
            parent, nested = event.cpu_parent, False
            while parent is not None and not nested:
                nested, parent = parent.name in GEMMS, parent.cpu_parent
            if event.name in GEMMS and not nested:
                f, b = gemm_shape(event.name, event.input_shapes)
                flops, moved, seconds = flops + f, moved + b, seconds + event.cpu_time_total / 1e6
        times.append(seconds)
    return flops, moved, statistics.median(times)


def matmul_peak(n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / median_seconds(lambda: a @ b, repeats=10) / 1e9


def memory_bandwidth(n: int = 2**26) -> float:
    """GB/s of a 256 MiB copy into a warm buffer (bytes read + written): the bound on kernels
    that do little arithmetic per byte."""
    a = torch.randn(n)
    b = torch.empty_like(a).copy_(a)
    return 2 * 4 * n / median_seconds(lambda: b.copy_(a), repeats=10) / 1e9


def tanh_and_sigmoid() -> tuple[float, float]:
    """Seconds of torch.tanh and torch.sigmoid on 8192 x 256 floats (why generated layers take
    tanh as 2 sigmoid(2x) - 1 on large CPU tensors)."""
    x = torch.randn(BATCH, 256)
    return (median_seconds(lambda: torch.tanh(x), repeats=20),
            median_seconds(lambda: torch.sigmoid(x), repeats=20))


def main() -> None:
    if sys.argv[1:] == ["--child"]:
        child()
        return
    default, keeping = forwards({}), forwards(KEEP_FREED_MEMORY)
    peak, bandwidth = matmul_peak(), memory_bandwidth()
    tanh_s, sigmoid_s = tanh_and_sigmoid()
    rows = []
    for name, spec in specs():
        model, inputs, flops = served(name, spec)
        gemm, moved, gemm_s = gemm_profile(model, inputs)
        achieved, intensity = gemm / gemm_s / 1e9, gemm / moved
        roof = min(peak, intensity * bandwidth)  # what the GEMMs' bytes allow at best
        row = [name, f"{flops / 1e9:.3f}", f"{100 * gemm / flops:.0f}%", f"{intensity:.1f}",
               f"{achieved:.0f}", f"{100 * achieved / peak:.0f}%", f"{roof:.0f}",
               f"{100 * achieved / roof:.0f}%"]
        for t, faults in (default[name], keeping[name]):
            row += [fmt_ms(t), f"{100 * flops / t / 1e9 / peak:.0f}%", f"{faults:,.0f}"]
        rows.append(row)
        print(" | ".join(row), flush=True)
    md = [
        "## Against the machine (`python benchmarks/efficiency.py`)", "",
        f"Machine: {machine()}.", "",
        f"Measured in the same run: fp32 matmul peak (2048 x 2048 x 2048) {peak:.1f} GFLOP/s; "
        f"memory bandwidth (256 MiB copy, bytes read + written) {bandwidth:.1f} GB/s; "
        f"torch.tanh vs torch.sigmoid on {BATCH} x 256 floats: {fmt_ms(tanh_s)} vs "
        f"{fmt_ms(sigmoid_s)} ms.", "",
        f"Each model's served form (`for_inference()`) at B = {BATCH}. The dominant layers are the "
        "GEMMs every linear lowers to: their FLOPs from each call's shapes, their time inside the "
        "real forward (torch.profiler, fresh output pages included). Whole forward: the cost "
        "model's FLOPs over the median forward time (embeddings, grouping by cell, elementwise "
        "work included), in a fresh process with glibc's default malloc and in one keeping "
        "freed memory (`MALLOC_MMAP_THRESHOLD_=33554432`, `MALLOC_TRIM_THRESHOLD_` huge), with "
        "the minor page faults per forward (a fault is a fresh 4 KiB page). `peers:` rows are "
        "the models of `peers.py`. GEMM FLOP/byte: the GEMMs' "
        "FLOPs over the bytes of their operands and results (arithmetic intensity). Roofline: "
        "the most those GEMMs could reach on this machine, min(peak, FLOP/byte x bandwidth), "
        "as if every operand crossed memory once.", "",
        table(["model", "GFLOP per batch", "in GEMMs", "GEMM FLOP/byte", "GEMM GFLOP/s",
               "GEMMs of peak", "roofline GFLOP/s", "GEMMs of roofline",
               "forward (ms)", "of peak", "faults", "keeping freed memory (ms)", "of peak",
               "faults"], rows), "",
        "Target (issue 8): dominant layers >= 60% of peak at B = 8192.",
    ]
    write_section("efficiency", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
