"""The AOTInductor backend: the folded inference module, through torch.export (dynamic batch up
to a declared maximum), compiled ahead of time by TorchInductor into one `.pt2` package (a shared
library with its weights inside). It loads with torch alone:

    runner = torch._inductor.aoti_load_package("out/model.pt2")
    ctr, = runner(user_id, item_id, ...)   # inputs positionally, in manifest.json's order

With --max-batch 1024 or more the build also compiles `model-prepacked.pt2`: the same program
with its weights frozen and packed for oneDNN (`build_aoti`), which is faster for large batches
on most models. The build times both packages and keeps the prepacked one only for the batch
sizes at which it is faster (`prepacked_verdict`); `dwc.runtime` runs each call on the package
made for its batch. Either package alone serves every batch.

This is how TorchEasyRec serves; `dwc.runtime` loads it like the other artifacts. Three
rewrites of the exported graph come first: per-cell layers into the form Inductor fuses into one
kernel each (dwc.backends.aoti_per_cell), pooled id sequences into ATen's embedding bag
(dwc.backends.aoti_bags), small per-sample matrix products into a multiply-and-reduce
(dwc.backends.aoti_per_sample). The build
needs a C++ compiler (g++); it takes ~15-30 s per package and model on two cores (~2-4x less
with `--wrapper-opt O0`, see WRAPPER_OPT_LEVELS), twice that with the prepacked package.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from pathlib import Path

import torch

from dwc.backends.aoti_bags import pool_sequences_as_bags
from dwc.backends.aoti_per_cell import gather_reduce_per_cell
from dwc.backends.aoti_per_sample import reduce_per_sample_products
from dwc.backends.export import InferenceModel, example_args, export_program, export_warnings

WRAPPER_OPT_LEVELS = ("O0", "O1")
"""The C++ optimisation levels of the package's wrapper (the host code that calls the kernels;
the kernels themselves are always optimised). Measured on ctr_mlp, 2 cores: O0 builds 3.6x
faster (12 s against 44 s) and serves 25% slower at B = 1, 2% at B = 1024."""


SIZE_HINT = 1024
"""The batch size TorchInductor plans the package's loops for (at most --max-batch). Its hint for
a dynamic batch is the batch the program was exported on; on the 2 rows the other backends
export with, it judged every loop too small to split across threads and ran all of them on one
core. Measured on PEPNet (2 cores, each form alone): B = 1024 2.18 -> 1.66 ms (ORT 2.45),
B = 8192 23.1 -> 14.3 ms (ORT 16.4); B = 1 unchanged (0.206 against 0.202 ms)."""


PREPACKED_FROM = 1024
"""The smallest batch the prepacked package can serve (see `build_aoti`; `prepacked_verdict`
picks the model's own, or leaves the package out). Measured on a 2-core
AMD EPYC with AVX-512, prepacked / plain package time, the two alternated in one process: at
B = 8192 ctr_mlp 0.47, CAN 0.65, PEPNet 0.57, HMoE 0.81, LHUC 0.62; at B = 1024 0.48-1.05 (4 of
5 below 1); at B = 256 1.0-1.6; at B = 1 and 64 1.2-2.4 (each oneDNN call costs ~10 us more
than MKL's GEMM)."""


VERDICT_BATCHES = (1024, 4096, 8192)
"""The batch sizes (at most --max-batch; --max-batch itself if larger) at which a build times the
prepacked package against the plain one (`prepacked_verdict`)."""

VERDICT_MARGIN = 0.9
"""The prepacked package serves a batch size only where it takes at most this fraction of the
plain package's time: a tie is not worth a second package, and one measurement on a shared
2-core machine is good to about 10% (with 0.95, MLoRA's package was kept by one build and served
1.16x slower)."""

VERDICT_ROUNDS = 9
VERDICT_BURST = 0.003
"""Each of the VERDICT_ROUNDS samples per package and size times back-to-back calls for about
this many seconds (1-20 calls)."""


def prepacked_verdict(im: InferenceModel, plain: bytes, prepacked: bytes,
                      max_batch: int) -> tuple[int | None, dict[int, float]]:
    """(the smallest batch size from which the prepacked package runs, None for never; the
    measured prepacked / plain time ratio per batch size).

    Both packages are loaded here and timed round by round on the same random inputs at each of
    VERDICT_BATCHES (median of the per-round ratios, each round a burst of calls per
    package). The prepacked package serves from the smallest size at which it, and at every
    larger size measured, is at most VERDICT_MARGIN of the plain one's time; if at the largest
    size it is not, it is not kept. Freezing does not speed every model up: MLoRA's per-domain
    low-rank layers ran 1.5x slower prepacked at B = 1024 and 8192 (`python benchmarks/ab.py
    --base 2b811a5 --targets aoti`)."""
    import statistics
    import time

    sizes = sorted({min(b, max_batch) for b in VERDICT_BATCHES if b >= PREPACKED_FROM}
                   | ({max_batch} if max_batch > max(VERDICT_BATCHES) else set()))
    with tempfile.TemporaryDirectory() as tmp:
        runners = []
        for name, data in (("plain", plain), ("prepacked", prepacked)):
            path = Path(tmp) / f"{name}.pt2"
            path.write_bytes(data)
            runners.append(torch._inductor.aoti_load_package(str(path)).loader.run)
        ratios = {}
        for batch in sizes:
            args = list(example_args(im, batch))
            started = time.perf_counter()
            for run in runners * 2:  # warm up
                run(args)
            calls = max(1, min(20, int(VERDICT_BURST * 4 / (time.perf_counter() - started))))
            rounds = []
            for round_ in range(VERDICT_ROUNDS):
                seconds = [0.0, 0.0]
                for i in ((0, 1) if round_ % 2 == 0 else (1, 0)):
                    started = time.perf_counter()
                    for _ in range(calls):
                        runners[i](args)
                    seconds[i] = time.perf_counter() - started
                rounds.append(seconds[1] / seconds[0])
            ratios[batch] = statistics.median(rounds)
    return serving_from(ratios), ratios


def serving_from(ratios: dict[int, float]) -> int | None:
    """The smallest batch size of `ratios` (prepacked / plain time per size) from which the
    prepacked package is at most VERDICT_MARGIN of the plain one's time at every measured size;
    None if not even at the largest."""
    serving = None
    for batch in sorted(ratios, reverse=True):
        if ratios[batch] > VERDICT_MARGIN:
            break
        serving = batch
    return serving


def build_aoti(im: InferenceModel, max_batch: int, wrapper_opt: str = "O1",
               prepacked: bool = False) -> bytes:
    """The .pt2 package's bytes: inputs positionally in `im.input_names` order (every input,
    used or not), outputs as a tuple in `im.output_names` order, batch 1 .. max_batch.

    `prepacked`: TorchInductor freezes the weights into the program and packs every linear
    layer's weight for oneDNN once, at build time; each layer then runs as one oneDNN matmul
    with its bias and activation fused (the plain package calls MKL's GEMM on the weight as it
    lies and applies bias and activation in passes of their own). That is faster from about
    PREPACKED_FROM rows up and slower below it.

    Planned for SIZE_HINT rows; if TorchInductor then opened a parallel region inside a loop
    (see `forks_per_iteration`), the package is built again planned for 2 rows."""
    assert wrapper_opt in WRAPPER_OPT_LEVELS, wrapper_opt
    configs = {"aot_inductor.compile_wrapper_opt_level": wrapper_opt, "freezing": prepacked}
    package = _compile(im, max_batch, max(2, min(max_batch, SIZE_HINT)), configs)
    if forks_per_iteration(package):
        package = _compile(im, max_batch, 2, configs)
    return package


def _compile(im: InferenceModel, max_batch: int, rows: int, configs: dict) -> bytes:
    """The package of `im` exported on `rows` rows (TorchInductor's size hint), compiled with
    the TorchInductor settings `configs`."""
    with export_warnings(), torch.no_grad():
        program = export_program(im, max_batch, rows)
        gather_reduce_per_cell(program)  # per-cell layers: one fused kernel each
        pool_sequences_as_bags(program)  # pooled sequences: ATen's embedding bag
        reduce_per_sample_products(program)  # small per-sample matrix products: one loop nest
        with tempfile.TemporaryDirectory() as tmp:
            path = torch._inductor.aoti_compile_and_package(
                program, package_path=str(Path(tmp) / "model.pt2"), inductor_configs=configs)
            return Path(path).read_bytes()


_NESTED_PARALLEL = re.compile(r"^ {8,}#pragma omp parallel\b", re.MULTILINE)
"""An OpenMP parallel region opened below a kernel function's top level (TorchInductor opens
its parallel regions at the top level, 4 spaces in; deeper, one sits inside a loop)."""


def forks_per_iteration(package: bytes) -> bool:
    """Whether any kernel of the package opens an OpenMP parallel region inside a loop: one
    region per iteration, e.g. a row's few-term sum split across threads for every row.
    TorchInductor does that for some reductions when it plans for many rows (PTUPCDR's meta
    network: 2.3 ms at B = 1024 against 0.6 ms planned for 2 rows)."""
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        return any(_NESTED_PARALLEL.search(archive.read(name).decode("utf-8", "replace"))
                   for name in archive.namelist() if name.endswith(".kernel.cpp"))
