"""`dwc compile --target tvm --tune TRIALS`: MetaSchedule on the kernels of the statically
shaped bucket functions (`main_bN`, one per `--tune-batches` size; MetaSchedule cannot tune a
symbolic batch), with a tuning database cached per (workload, target).

The database is a MetaSchedule JSON database in `cache/<target digest>/` (default
`$XDG_CACHE_HOME/dwc/tvm-tuning`, else `~/.cache/dwc/tvm-tuning`). A kernel that already has a
tuning record there is not tuned again, so rebuilding a model, or building another model with
the same kernel shapes, reuses the records without a single trial. Without xgboost (not a
dependency) MetaSchedule's cost model is random, so the search is MetaSchedule's replay-trace
strategy: candidates sampled from each kernel's design space and measured, the fastest kept.
TRIALS is the total number of measured candidates, spread over the kernels still to tune, at
least one each.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dwc.diagnostics import Diagnostic, DiagnosticError

WORKER_TIMEOUT = 300
"""Seconds a MetaSchedule worker may take to build or to run one candidate."""


def default_cache() -> Path:
    """`$XDG_CACHE_HOME/dwc/tvm-tuning`, or `~/.cache/dwc/tvm-tuning`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dwc" / "tvm-tuning"


@dataclass
class TuneOptions:
    trials: int
    buckets: list[int] = field(default_factory=lambda: [1, 64, 1024, 8192])
    cache: Path | None = None
    """The tuning cache directory (None: `default_cache()`)."""
    progress: bool | None = None
    """Show a progress bar (None: when stderr is a terminal)."""


def _fail(code: str, message: str, help: str) -> DiagnosticError:
    return DiagnosticError([Diagnostic.file_level(code, message, help=help)])


def check_options(options: TuneOptions, max_batch: int) -> None:
    """Rejects a bad --tune / --tune-batches before anything is built (DW410, DW411)."""
    if options.trials < 1:
        raise _fail("DW410", f"--tune needs a positive number of trials, got {options.trials}",
                    "pass the total number of tuning trials, e.g. --tune 64")
    bad = [b for b in options.buckets if not 1 <= b <= max_batch]
    if not options.buckets or bad or len(set(options.buckets)) != len(options.buckets):
        raise _fail("DW411", "--tune-batches must be distinct batch sizes within 1 .. "
                    f"{max_batch} (--max-batch), got {','.join(map(str, options.buckets))}",
                    "e.g. --tune-batches 1,64,1024,8192 (each at most --max-batch)")


def parse_batches(text: str) -> list[int]:
    """`1,64,1024` -> [1, 64, 1024]; a malformed list is DW411."""
    try:
        batches = [int(part) for part in text.split(",")]
    except ValueError:
        raise _fail("DW411", f"--tune-batches must be comma-separated integers, got {text!r}",
                    "e.g. --tune-batches 1,64,1024,8192") from None
    return sorted(batches)


def _target_dir(cache: Path, target) -> Path:
    text = json.dumps(dict(target.export()), sort_keys=True, default=str)
    return cache / hashlib.sha256(text.encode()).hexdigest()[:16]


def _open_database(directory: Path):
    from tvm.s_tir import meta_schedule as ms

    try:
        directory.mkdir(parents=True, exist_ok=True)
        return ms.database.JSONDatabase(str(directory / "workloads.json"),
                                        str(directory / "records.json"), allow_missing=True)
    except (OSError, ValueError, RuntimeError) as error:
        raise _fail("DW412", f"cannot use the tuning cache '{directory}': {error}",
                    "pass a writable directory with --tune-cache DIR, or remove the damaged "
                    "cache directory") from None


def _called(function) -> list:
    """The PrimFuncs (global vars) a Relax function calls through call_tir, in order."""
    from tvm import relax

    seen = []

    def visit(expr) -> None:
        if isinstance(expr, relax.Call) and getattr(expr.op, "name", "") == "relax.call_tir":
            gv = expr.args[0]
            if not any(gv.same_as(s) for s in seen):
                seen.append(gv)

    relax.analysis.post_order_visit(function.body, visit)
    return seen


def bucket_kernels(mod, target, buckets: list[int]) -> list[tuple[str, object]]:
    """Legalises and fuses `mod` as the build does and returns the distinct (by structure)
    statically shaped kernels the bucket functions call, as (name, PrimFunc)."""
    import tvm
    import tvm_ffi

    from dwc.backends.tvm_export import bucket_name
    from dwc.backends.tvm_schedule import fusion_passes

    with target:
        fused = tvm.transform.Sequential(fusion_passes(target))(mod)
    kernels, hashes = [], set()
    for batch in buckets:
        for gv in _called(fused[bucket_name(batch)]):
            func = fused[gv]
            digest = tvm_ffi.structural_hash(func)
            if digest not in hashes:
                hashes.add(digest)
                kernels.append((gv.name_hint, func))
    return kernels


def _progress_callback(bar):
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class Progress(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results,
                  runner_results) -> None:
            bar.update(len(runner_results))

    return Progress()


def tune(mod, target, options: TuneOptions):
    """Tunes the bucket kernels of `mod` that the cache has no record for; returns (the
    database to build with, what the manifest records)."""
    import tvm
    import tvm_ffi
    from tqdm import tqdm
    from tvm.s_tir import meta_schedule as ms

    directory = _target_dir(options.cache or default_cache(), target)
    database = _open_database(directory)
    kernels = bucket_kernels(mod, target, options.buckets)
    # a kernel with any record (a measured candidate, even one that failed to build or run)
    # was tuned with its share of an earlier --tune; only kernels without one are tuned now
    recorded = _record_counts(database)
    workloads = []  # (name, workload, its structural hash)
    for name, func in kernels:
        workload = tvm.IRModule({"main": func.with_attr("global_symbol", "main")})
        workloads.append((name, workload, tvm_ffi.structural_hash(workload)))
    todo = [(name, w) for name, w, digest in workloads if digest not in recorded]
    started = time.perf_counter()
    trials = 0
    if todo:
        per_iter = max(1, min(16, options.trials // len(todo)))
        total = max(options.trials, per_iter * len(todo))
        show = sys.stderr.isatty() if options.progress is None else options.progress
        with _work_dir() as work, \
                tqdm(total=total, desc="tuning", unit="trial", disable=not show,
                     file=sys.stderr) as bar:
            loggers = ms.logging.get_loggers_from_work_dir(work, [n for n, _ in todo])
            contexts = [ms.TuneContext(mod=workload, target=target,
                                       space_generator="post-order-apply",
                                       search_strategy="replay-trace", task_name=name,
                                       logger=logger, num_threads="physical").clone()
                        for (name, workload), logger in zip(todo, loggers, strict=True)]
            before = _record_count(directory)
            ms.tune.tune_tasks(
                tasks=contexts, task_weights=[1.0] * len(contexts), work_dir=work,
                max_trials_global=total, max_trials_per_task=math.ceil(total / len(todo)),
                num_trials_per_iter=per_iter, database=database, cost_model="random",
                # a worker process imports TVM before it builds or runs a candidate: on a small
                # busy machine that alone can pass MetaSchedule's default 30 s limit
                builder=ms.builder.LocalBuilder(timeout_sec=WORKER_TIMEOUT,
                                                f_build=build_candidate),
                runner=ms.runner.LocalRunner(timeout_sec=WORKER_TIMEOUT),
                measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"),
                                   _progress_callback(bar)])
            trials = _record_count(directory) - before
            recorded = _record_counts(database)  # with the new ones
    seconds = time.perf_counter() - started
    chosen, kept = _tuned_where_faster(database, workloads, recorded, target, directory)
    info = {"trials": options.trials, "buckets": options.buckets, "kernels": len(kernels),
            "tuned_kernels": len(todo), "cached_kernels": len(kernels) - len(todo),
            "measured": trials, "tuned_schedules_used": len(kernels) - kept,
            "dwc_schedules_kept": kept}
    print(f"dwc: tuned {len(todo)} of {len(kernels)} kernels ({trials} trials, "
          f"{seconds:.1f} s); {len(kernels) - len(todo)} from the cache {directory}; "
          f"{len(kernels) - kept} run their tuned schedule, {kept} dwc's (faster, or no "
          "working candidate)", file=sys.stderr)
    return chosen, info


def _record_counts(database) -> Counter:
    """The database's number of tuning records per workload (by structural hash)."""
    import tvm_ffi

    return Counter(tvm_ffi.structural_hash(r.workload.mod)
                   for r in database.get_all_tuning_records())


def _tuned_where_faster(database, workloads, recorded: Counter, target, directory: Path):
    """The records of the kernels whose best tuned schedule runs faster than dwc's own, as an
    in-memory database to build with, and how many kernels keep dwc's schedule. `workloads`:
    (name, workload, structural hash) per kernel; `recorded`: the database's record count per
    workload hash.

    A few random trials per kernel rarely beat dwc's rules, and MetaSchedule keeps the fastest
    candidate it measured, however slow: without this, `--tune` could make a model slower. Both
    forms of a kernel are built and timed here, the same way (`kernel_seconds`); a tuned form
    that fails to build or run counts as slower. The verdicts are kept in the cache
    (`choices.json`), keyed by the kernel and dwc's schedule for it, and redone when the
    kernel's number of records changes: a rebuild times only kernels whose records or whose
    dwc schedule (a newer dwc's rules) changed."""
    import tvm_ffi
    from tvm.s_tir import meta_schedule as ms

    from dwc.backends.tvm_schedule import ApplyCpuSchedules, default_rules

    path = directory / "choices.json"
    choices = _read_choices(path)
    memory = ms.database.MemoryDatabase()
    rules = ApplyCpuSchedules(default_rules())
    kept, changed = 0, False
    for _, workload, digest in workloads:
        record = database.query_tuning_record(workload, target, "main")
        if record is None:  # no candidate built and ran
            kept += 1
            continue
        with target:
            own = rules.schedule(workload["main"], target) or workload["main"]
        key = f"{digest:x}-{tvm_ffi.structural_hash(own):x}"
        verdict = choices.get(key)
        if verdict is None or verdict["records"] != recorded[digest]:
            verdict = {"records": recorded[digest], "tuned_s": _tuned_seconds(
                database, workload, target), "dwc_s": kernel_seconds(own, target)}
            choices[key], changed = verdict, True
        if verdict["tuned_s"] < verdict["dwc_s"]:
            memory.commit_tuning_record(ms.database.TuningRecord(
                record.trace, memory.commit_workload(workload), record.run_secs, record.target,
                record.args_info))
        else:
            kept += 1
    if changed:
        with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".tmp", delete=False) as out:
            out.write(json.dumps(choices, indent=1, sort_keys=True) + "\n")
        os.replace(out.name, path)  # whole, or not at all (another compile may share the cache)
    return memory, kept


def _read_choices(path: Path) -> dict[str, dict]:
    """choices.json's verdicts; a missing, damaged or foreign file reads as none (they are
    redone)."""
    try:
        choices = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(choices, dict):
        return {}
    fields = {"records": int, "tuned_s": float, "dwc_s": float}
    return {key: verdict for key, verdict in choices.items()
            if isinstance(verdict, dict) and all(isinstance(verdict.get(name), kind)
                                                 for name, kind in fields.items())}


def _tuned_seconds(database, workload, target) -> float:
    """kernel_seconds of the kernel's best tuned schedule; infinity when that candidate fails
    to replay, build or run here (dwc's schedule is then kept)."""
    try:
        tuned = database.query_schedule(workload, target, "main").mod["main"]
        return kernel_seconds(tuned, target)
    except Exception:  # noqa: BLE001 - any failure of a MetaSchedule candidate: keep dwc's
        return float("inf")


def kernel_seconds(func, target, min_repeat_ms: int = 20) -> float:
    """Median seconds of one call of the statically shaped PrimFunc `func`, lowered as a tuning
    candidate is (`build_candidate`) for `target`, on random floats and zero integers (ids:
    every gather stays in bounds)."""
    import numpy as np
    import tvm
    from tvm.s_tir import meta_schedule as ms

    library = build_candidate(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}),
                              target)
    device = tvm.cpu()
    rng = np.random.default_rng(0)
    args = []
    for info in ms.arg_info.ArgInfo.from_prim_func(func):
        shape, dtype = [int(n) for n in info.shape], str(info.dtype)
        data = (rng.standard_normal(shape).astype(dtype) if dtype.startswith("float")
                else np.zeros(shape, dtype))
        args.append(tvm.runtime.tensor(data, device))
    timer = library.time_evaluator("main", device, number=1, repeat=7,
                                   min_repeat_ms=min_repeat_ms)
    return float(timer(*args).median)


def build_candidate(mod, target, _params=None):
    """MetaSchedule's default candidate build without its first step, an import of TVM's tensor
    intrinsics (`tvm.s_tir.tensor_intrin`, 32 s on a 2-core machine). LocalBuilder starts fresh
    worker processes for every batch of candidates, so that import was paid again per batch,
    most of the tuning time. A candidate arrives already scheduled (any tensorisation applied
    in the tuning process, where the intrinsics are registered); building it only lowers it."""
    from tvm.driver import build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def _work_dir():
    """MetaSchedule's logs: a temporary directory, or DWC_TUNE_LOGS to keep them."""
    import contextlib

    kept = os.environ.get("DWC_TUNE_LOGS")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=True)
        return contextlib.nullcontext(kept)
    return tempfile.TemporaryDirectory(prefix="dwc-tune-")


def _record_count(directory: Path) -> int:
    """Tuning records in the cache (one JSON line each)."""
    path = directory / "records.json"
    try:
        return sum(1 for line in path.read_text().splitlines() if line.strip())
    except OSError:
        return 0
