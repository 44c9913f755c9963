"""dwc's TVM CPU schedules: the rules apply to the kernels of a real model (parallel and
vectorised loops in the scheduled IR), the scheduled build computes what the unscheduled one
does, a function no rule matches is left alone, per-cell layers become one kernel that reads
each sample's own cell's weights, exp/tanh/sigmoid take their vectorisable forms, and `--tune`
tunes bucketed batch sizes with a tuning database that a rebuild reuses without a single
trial."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch

from dwc.cli import main
from dwc.runtime import load
from tests.conftest import ROOT

pytestmark = [pytest.mark.filterwarnings("ignore")]

tvm = pytest.importorskip("tvm")

from tvm import relax, tirx  # noqa: E402

from dwc.backends import tvm_per_cell, tvm_schedule  # noqa: E402
from dwc.backends.export import example_args, export_program, inference_model  # noqa: E402
from dwc.driver import compile_source, load_source  # noqa: E402


def _relax_module(example: str):
    from tvm.relax.frontend.torch import from_exported_program

    result = compile_source(load_source(ROOT / "examples" / f"{example}.dw"), "torch")
    im = inference_model(result.files["model.py"], result.inference.model, None)
    mod = from_exported_program(export_program(im, 8192), keep_params_as_input=True)
    mod, params = relax.frontend.detach_params(mod)
    return im, mod, params["main"]


def _target():
    return tvm.target.Target({"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu()})


@pytest.fixture(scope="module")
def ctr_mlp():
    return _relax_module("ctr_mlp")


def test_the_rules_schedule_every_kernel_of_ctr_mlp(ctr_mlp):
    _, mod, _ = ctr_mlp
    target = _target()
    with target:
        fused = tvm.transform.Sequential(tvm_schedule.fusion_passes(target))(mod)
        scheduled = tvm_schedule.ApplyCpuSchedules(tvm_schedule.default_rules())(fused)
    kernels = {gv.name_hint: f for gv, f in scheduled.functions_items()
               if isinstance(f, tirx.PrimFunc)}
    matmuls = {n: f for n, f in kernels.items() if n.startswith("fused_matmul")}
    assert len(matmuls) == 3  # the MLP's two hidden layers and the output layer
    for name, func in kernels.items():
        assert func.attrs.get("tirx.is_scheduled"), name
    for name, func in matmuls.items():
        text = func.script()
        # over the symbolic batch: a parallel schedule above the threshold, a serial one below
        assert "T.parallel(" in text and "if s" in text, name
        assert 'scope="local"' in text, name  # the register tile's accumulators
        if "sigmoid" not in name:  # 128 and 64 outputs: whole vectors (the last layer has 1)
            assert "T.vectorized(" in text, name
    # the gathers were fused with their casts and the concatenation into one kernel
    assert any("take" in n and "concatenate" in n for n in kernels)


def test_scheduled_and_unscheduled_builds_agree(ctr_mlp):
    im, mod, params = ctr_mlp
    # below and above the parallel threshold, with a tile tail
    _agree(im, mod, params, [1, 5, 37, 64])


def _kernels(mod) -> dict:
    target = _target()
    with target:
        fused = tvm.transform.Sequential(tvm_schedule.fusion_passes(target))(mod)
    return {gv.name_hint: f for gv, f in fused.functions_items() if isinstance(f, tirx.PrimFunc)}


def _agree(im, mod, params, batches, atol=1e-6):
    """The dwc-scheduled build against Relax's default one, at each batch size."""
    target = _target()
    scheduled = relax.VirtualMachine(
        relax.build(mod, target=target, relax_pipeline=tvm_schedule.cpu_pipeline(target)),
        tvm.cpu())
    plain = relax.VirtualMachine(relax.build(mod, target=target), tvm.cpu())
    for batch in batches:
        args = [tvm.runtime.tensor(a.numpy()) for a in example_args(im, batch)]
        ours, theirs = scheduled["main"](*args, *params), plain["main"](*args, *params)
        np.testing.assert_allclose(ours[0].numpy(), theirs[0].numpy(), rtol=1e-5, atol=atol)


def test_star_per_cell_layers_read_only_their_cells_weights():
    im, mod, params = _relax_module("star")
    kernels = _kernels(mod)
    per_cell = sorted(n for n in kernels if tvm_per_cell.KERNEL in n)
    # the two star layers and the main head, each with its bias and activation fused in
    assert len(per_cell) == 3, per_cell
    assert any("relu" in n for n in per_cell) and any("sigmoid" in n for n in per_cell)
    # no side-by-side matmul over all 8 cells' columns (512 = 8 x 64) is left
    assert not any("T.int64(512)" in f.script() for n, f in kernels.items()
                   if "matmul" in n and tvm_per_cell.KERNEL not in n)
    for name in per_cell:
        scheduled = tvm_schedule.ApplyCpuSchedules(tvm_schedule.default_rules())
        with _target():
            text = scheduled(tvm.IRModule({name: kernels[name]}))[name].script()
        assert "T.parallel(" in text and 'scope="local"' in text, name
    # every cell present, batches on both sides of the parallel threshold
    _agree(im, mod, params, [1, 7, 300, 1024])


def test_a_concatenation_is_vectorised_part_by_part():
    """AdaSparse's input kernel concatenates gathers of 8 and 16 columns: its vectors are 8 wide
    (every part starts on a multiple of 8), each row's six unrolled, so that no vector straddles
    two parts; the build computes what the unscheduled one does."""
    im, mod, params = _relax_module("adasparse")
    kernels = _kernels(mod)
    (name,) = [n for n in kernels if "take" in n and n.endswith("concatenate1")]
    scheduled = tvm_schedule.ApplyCpuSchedules(tvm_schedule.default_rules())
    with _target():
        text = scheduled(tvm.IRModule({name: kernels[name]}))[name].script()
    assert "T.vectorized(T.int64(8))" in text and "T.unroll(T.int64(6))" in text
    assert "T.parallel(" in text
    _agree(im, mod, params, [1, 7, 300])


@pytest.mark.parametrize(("starts", "extent", "width"), [
    ({0, 8, 24, 40}, 48, 8), ({0, 16, 32}, 64, 16), ({0, 4}, 12, 4), ({0, 3}, 7, 1)])
def test_segment_width_divides_every_part(starts, extent, width):
    assert tvm_schedule.segment_width(starts, extent, 16) == width


_SIDE_BY_SIDE = """
@I.ir_module
class Module:
    @R.function
    def main(x: R.Tensor(("n", 6), "float32"), cell: R.Tensor((CELLS,), "int64"),
             w: R.Tensor((6, 12), "float32")):
        n = T.int64()
        with R.dataflow():
            every = R.matmul(x, w)
            rows = R.arange(R.prim_value(START), R.prim_value(n + START), R.prim_value(1),
                            dtype="int64")
            picked = R.add(R.multiply(rows, R.const(SCALE, "int64")), cell)
            slices = R.reshape(every, R.shape([n * 3, 4]))
            out = R.take(slices, picked, axis=0)
            R.output(out)
        return out
"""


def _side_by_side(scale: int = 3, start: int = 0, cells: str = '"n"'):
    """x (n x 6) times 3 cells' 6 x 4 weights side by side, each row's slice gathered; the
    variants change the index's scale, its arange's start, or broadcast one cell to every row."""
    text = _SIDE_BY_SIDE.replace("SCALE", str(scale)).replace("START", str(start))
    return tvm.script.from_source(text.replace("CELLS", cells))


def test_the_per_cell_rewrite_computes_each_rows_slice():
    mod = _side_by_side()  # 3 cells of 4 columns side by side
    rewritten = tvm_per_cell.per_cell_matmuls(mod)
    assert tvm_per_cell.KERNEL in [gv.name_hint for gv in rewritten.get_global_vars()]
    assert "R.matmul" not in rewritten["main"].script()  # the side-by-side product is gone
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((5, 6)).astype("float32"), rng.standard_normal((6, 12)).astype(
        "float32")
    cell = np.array([2, 0, 1, 2, 2], dtype="int64")
    vm = relax.VirtualMachine(relax.build(rewritten, target=_target()), tvm.cpu())
    out = vm["main"](*(tvm.runtime.tensor(a) for a in (x, cell, w))).numpy()
    expected = np.stack([x[b] @ w[:, 4 * c:4 * c + 4] for b, c in enumerate(cell)])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", [
    {"scale": 2},  # arange * 2: not the 3 cells the weight holds
    {"start": 1},  # rows shifted by one: not each row's own slice
    {"cells": "1"},  # one cell broadcast to every row: cell[b] would read past it
])
def test_a_gather_that_is_not_a_per_cell_slice_is_left_alone(variant):
    rewritten = tvm_per_cell.per_cell_matmuls(_side_by_side(**variant))
    assert "R.matmul" in rewritten["main"].script()
    assert tvm_per_cell.KERNEL not in [gv.name_hint for gv in rewritten.get_global_vars()]


def test_transcendentals_take_their_vectorisable_forms():
    im, mod, params = _relax_module("ppnet")  # sigmoid gates and head
    for name, func in _kernels(mod).items():
        text = func.script()
        assert "T.exp(" not in text and "T.sigmoid(" not in text and "T.tanh(" not in text, name
    _agree(im, mod, params, [1, 300], atol=2e-6)


@pytest.mark.parametrize(("extent", "width"), [(128, 16), (8, 8), (16, 16), (50, 10), (200, 10),
                                               (53, 1), (34, 1)])
def test_vector_width_never_exceeds_a_register_unless_whole(extent, width):
    assert tvm_schedule.vector_width(extent, 16) == width


_TWO_REDUCTIONS = """
@T.prim_func(s_tir=True)
def main(a: T.Buffer((T.int64(8), T.int64(4)), "float32"),
         b: T.Buffer((T.int64(8),), "float32"), c: T.Buffer((T.int64(8),), "float32")):
    for i, k in T.grid(T.int64(8), T.int64(4)):
        with T.sblock("sum"):
            vi, vk = T.axis.remap("SR", [i, k])
            with T.init():
                b[vi] = T.float32(0)
            b[vi] = b[vi] + a[vi, vk]
    for i, k in T.grid(T.int64(8), T.int64(4)):
        with T.sblock("max"):
            vi, vk = T.axis.remap("SR", [i, k])
            with T.init():
                c[vi] = T.float32(-1e30)
            c[vi] = T.max(c[vi], a[vi, vk])
"""


def test_a_function_no_rule_matches_is_left_alone():
    func = tvm.script.from_source(_TWO_REDUCTIONS)
    assert all(rule.schedule(func, _target(), True) is None
               for rule in tvm_schedule.default_rules())
    mod = tvm.IRModule({"two_reductions": func})
    with _target():
        out = tvm_schedule.ApplyCpuSchedules(tvm_schedule.default_rules())(mod)
    assert out["two_reductions"].same_as(func)


def test_a_dense_matmul_gets_a_register_tile():
    func = tvm.script.from_source(_DENSE)
    scheduled = tvm_schedule.DenseMatmul().schedule(func, _target(), True).mod["main"]
    text = scheduled.script()
    assert "T.parallel(" in text and "T.unroll(" in text and "T.vectorized(" in text
    assert '"relu"' not in text  # the epilogue runs on the tile's write-back
    a, w, bias = (np.random.default_rng(0).standard_normal(s).astype("float32")
                  for s in ((64, 57), (57, 128), (128,)))
    out = tvm.runtime.empty((64, 128), "float32", tvm.cpu())
    tvm.tirx.build(scheduled, target=_target())(*(tvm.runtime.tensor(v) for v in (a, w, bias)),
                                                out)
    np.testing.assert_allclose(out.numpy(), np.maximum(a @ w + bias, 0), rtol=1e-5, atol=1e-5)


_DENSE = """
@T.prim_func(s_tir=True)
def main(a: T.Buffer((T.int64(64), T.int64(57)), "float32"),
         w: T.Buffer((T.int64(57), T.int64(128)), "float32"),
         bias: T.Buffer((T.int64(128),), "float32"), out: T.Buffer((T.int64(64), T.int64(128)),
                                                                   "float32")):
    mm = T.sblock_alloc_buffer((T.int64(64), T.int64(128)))
    for i, j, k in T.grid(T.int64(64), T.int64(128), T.int64(57)):
        with T.sblock("matmul"):
            vi, vj, vk = T.axis.remap("SSR", [i, j, k])
            with T.init():
                mm[vi, vj] = T.float32(0)
            mm[vi, vj] = mm[vi, vj] + a[vi, vk] * w[vk, vj]
    for i, j in T.grid(T.int64(64), T.int64(128)):
        with T.sblock("relu"):
            vi, vj = T.axis.remap("SS", [i, j])
            out[vi, vj] = T.max(mm[vi, vj] + bias[vj], T.float32(0))
"""


_SYMBOLIC_DENSE = """
@T.prim_func(s_tir=True)
def main(a_h: T.handle, w: T.Buffer((T.int64(K), T.int64(N)), "float32"),
         bias: T.Buffer((T.int64(N),), "float32"), o_h: T.handle):
    m = T.int64()
    a = T.match_buffer(a_h, (m, T.int64(K)), "float32")
    out = T.match_buffer(o_h, (m, T.int64(N)), "float32")
    mm = T.sblock_alloc_buffer((m, T.int64(N)))
    for i, j, k in T.grid(m, T.int64(N), T.int64(K)):
        with T.sblock("matmul"):
            vi, vj, vk = T.axis.remap("SSR", [i, j, k])
            with T.init():
                mm[vi, vj] = T.float32(0)
            mm[vi, vj] = mm[vi, vj] + a[vi, vk] * w[vk, vj]
    for i, j in T.grid(m, T.int64(N)):
        with T.sblock("relu"):
            vi, vj = T.axis.remap("SS", [i, j])
            out[vi, vj] = T.max(mm[vi, vj] + bias[vj], T.float32(0))
"""


@pytest.mark.parametrize(("k", "n"), [(44, 48), (97, 242), (57, 128)])
def test_a_dense_layer_over_the_batch_is_padded_to_whole_tiles(k, n):
    """HMoE's 48 columns (three registers), PEPNet's 242 (padded to 256), a plain 128."""
    func = tvm.script.from_source(_SYMBOLIC_DENSE.replace("K", str(k)).replace("N", str(n)))
    target = tvm.target.Target({"kind": "llvm", "mcpu": "sapphirerapids"})  # 16-float vectors
    scheduled = tvm_schedule.DenseMatmul().schedule(func, target, True).mod["main"]
    text = scheduled.script()
    assert "_pad" in text  # rows padded to whole tiles (and columns, for 242)
    assert ("T.int64(256)" in text) == (n == 242)
    vectors = [int(w) for w in re.findall(r"T\.vectorized\(T\.int64\((\d+)\)\)", text)]
    assert vectors and max(vectors) <= 16  # one register at a time
    if tvm.target.codegen.llvm_get_system_cpu() not in ("sapphirerapids", "emeraldrapids",
                                                        "graniterapids"):
        target = _target()  # run what this machine can: the same rule for its own vectors
        scheduled = tvm_schedule.DenseMatmul().schedule(func, target, True).mod["main"]
    built = tvm.compile(tvm.IRModule({"main": scheduled.with_attr("global_symbol", "main")}),
                        target=target)["main"]
    rng = np.random.default_rng(0)
    for rows in (1, 37):  # a single row, and a last tile only partly filled
        a, w, bias = (rng.standard_normal(s).astype("float32") for s in ((rows, k), (k, n), (n,)))
        out = tvm.runtime.empty((rows, n), "float32", tvm.cpu())
        built(*(tvm.runtime.tensor(v) for v in (a, w, bias)), out)
        np.testing.assert_allclose(out.numpy(), np.maximum(a @ w + bias, 0), rtol=1e-5,
                                   atol=1e-5)


def test_runtime_outputs_are_not_overwritten_by_the_next_call(tmp_path):
    out = tmp_path / "tvm"
    assert main(["compile", str(ROOT / "examples" / "ctr_mlp.dw"), "--target", "tvm", "-o",
                 str(out)]) == 0
    artifact = load(out)
    assert json.loads((out / "manifest.json").read_text())["target"]["schedule"] == "dwc-cpu"
    result = compile_source(load_source(ROOT / "examples" / "ctr_mlp.dw"), "torch")
    im = inference_model(result.files["model.py"], result.inference.model, None)
    first_inputs = dict(zip(im.input_names, (a.numpy() for a in example_args(im, 3)), strict=True))
    first = artifact(first_inputs)["ctr"]
    kept = first.copy()
    artifact({k: v[::-1].copy() for k, v in first_inputs.items()})
    np.testing.assert_array_equal(first, kept)
    with torch.no_grad():
        expected = im.module({k: torch.from_numpy(v) for k, v in first_inputs.items()})["ctr"]
    np.testing.assert_allclose(first, expected.numpy(), atol=1e-5)


def _records(cache) -> int:
    return sum(len(p.read_text().splitlines()) for p in cache.glob("*/records.json"))


@pytest.mark.skipif(not os.environ.get("DWC_TUNING_TESTS"),
                    reason="minutes on a small machine (MetaSchedule builds and runs each "
                    "candidate in worker processes); set DWC_TUNING_TESTS=1 to run it")
def test_tuning_buckets_and_the_cache(tmp_path, capsys):
    cache, first, second = tmp_path / "cache", tmp_path / "a", tmp_path / "b"
    spec = str(ROOT / "examples" / "ctr_mlp.dw")
    args = ["--target", "tvm", "--tune", "1", "--tune-batches", "2", "--tune-cache", str(cache),
            "--max-batch", "64"]
    assert main(["compile", spec, "-o", str(first), *args]) == 0
    tuned = json.loads((first / "manifest.json").read_text())["target"]
    assert tuned["buckets"] == {"2": "main_b2"}
    assert tuned["tuning"]["trials"] == 1 and tuned["tuning"]["buckets"] == [2]
    assert tuned["tuning"]["tuned_kernels"] == tuned["tuning"]["kernels"] > 0
    records = _records(cache)
    assert records >= tuned["tuning"]["kernels"]  # at least one measured candidate per kernel
    capsys.readouterr()
    assert main(["compile", spec, "-o", str(second), *args]) == 0
    again = json.loads((second / "manifest.json").read_text())["target"]["tuning"]
    assert again["tuned_kernels"] == 0 and again["cached_kernels"] == tuned["tuning"]["kernels"]
    assert _records(cache) == records  # the rebuild measured nothing
    assert "tuned 0 of" in capsys.readouterr().err
    # the bucket and the dynamic function both serve, and agree with torch
    artifact = load(second)
    result = compile_source(load_source(ROOT / "examples" / "ctr_mlp.dw"), "torch")
    im = inference_model(result.files["model.py"], result.inference.model, None)
    for batch in (2, 3):
        inputs = dict(zip(im.input_names, (a.numpy() for a in example_args(im, batch)), strict=True))
        with torch.no_grad():
            expected = im.module({k: torch.from_numpy(v) for k, v in inputs.items()})["ctr"]
        np.testing.assert_allclose(artifact(inputs)["ctr"], expected.numpy(), atol=1e-4)


class _Task:
    """What `_naive_records` reads of a MetaSchedule TuneContext."""

    def __init__(self, mod, target, **_options) -> None:
        self.mod, self.target = mod, target

    def clone(self) -> _Task:
        return self


def _naive_records(tasks, database, **_):
    """Stands in for MetaSchedule's search: one record per task, the kernel unscheduled (a trace
    that only looks its blocks up, a valid and slow schedule; the database ignores an empty
    trace), as a few random trials might leave it."""
    from tvm.s_tir import meta_schedule as ms

    for task in tasks:
        workload = database.commit_workload(task.mod)
        sch = tvm.s_tir.Schedule(task.mod)
        sch.get_child_blocks(sch.get_sblock("root", func_name="main"))
        trace = sch.trace
        database.commit_tuning_record(ms.database.TuningRecord(
            trace, workload, [1e-3], task.target,
            ms.arg_info.ArgInfo.from_prim_func(task.mod["main"])))


def test_a_tuned_schedule_is_used_only_where_it_runs_faster(tmp_path, monkeypatch, capsys):
    """Each tuned kernel is timed against dwc's schedule for it and the faster one is built.
    The timings are real, then skewed so that every other kernel's tuned form wins clearly:
    exactly those are built tuned (and the bucket still agrees with torch). The verdicts are
    cached: a rebuild times nothing."""
    from tvm.s_tir import meta_schedule as ms

    from dwc.backends import tvm_tune

    monkeypatch.setattr(ms.tune, "tune_tasks", _naive_records)
    # a real TuneContext imports TVM's tensor intrinsics (30 s here) for a search not run here
    monkeypatch.setattr(ms, "TuneContext", _Task)
    timed = []
    real = tvm_tune.kernel_seconds

    def seconds(func, target, **options):
        # per kernel, the tuned form is timed first, then dwc's
        kernel, tuned_form = divmod(len(timed), 2)[0], len(timed) % 2 == 0
        timed.append(func)
        value = real(func, target, **options)
        return value * (1e-3 if (kernel % 2 == 0) == tuned_form else 1e3)

    monkeypatch.setattr(tvm_tune, "kernel_seconds", seconds)
    cache, spec = tmp_path / "cache", str(ROOT / "examples" / "ctr_mlp.dw")
    args = ["--target", "tvm", "--tune", "1", "--tune-batches", "3", "--tune-cache", str(cache),
            "--max-batch", "64"]
    assert main(["compile", spec, "-o", str(tmp_path / "a"), *args]) == 0
    tuning = json.loads((tmp_path / "a" / "manifest.json").read_text())["target"]["tuning"]
    kernels = tuning["kernels"]
    assert kernels > 1 and len(timed) == 2 * kernels  # both forms of every kernel
    used = (kernels + 1) // 2
    assert (tuning["tuned_schedules_used"], tuning["dwc_schedules_kept"]) == (used, kernels - used)
    assert f"{used} run their tuned schedule, {kernels - used} dwc's" in capsys.readouterr().err
    choices = json.loads(next(cache.glob("*/choices.json")).read_text())
    assert len(choices) == kernels
    assert sum(c["tuned_s"] < c["dwc_s"] for c in choices.values()) == used
    # a rebuild reuses the records and the verdicts
    assert main(["compile", spec, "-o", str(tmp_path / "b"), *args]) == 0
    assert len(timed) == 2 * kernels
    again = json.loads((tmp_path / "b" / "manifest.json").read_text())["target"]["tuning"]
    assert again["tuned_kernels"] == 0 and again["tuned_schedules_used"] == used
    artifact = load(tmp_path / "b")
    result = compile_source(load_source(ROOT / "examples" / "ctr_mlp.dw"), "torch")
    im = inference_model(result.files["model.py"], result.inference.model, None)
    inputs = dict(zip(im.input_names, (a.numpy() for a in example_args(im, 3)), strict=True))
    with torch.no_grad():
        expected = im.module({k: torch.from_numpy(v) for k, v in inputs.items()})["ctr"]
    np.testing.assert_allclose(artifact(inputs)["ctr"], expected.numpy(), atol=1e-4)


@pytest.mark.parametrize("args, code", [
    (["--tune", "0"], "DW410"),
    (["--tune", "4", "--tune-batches", "1,99999"], "DW411"),
    (["--tune", "4", "--tune-batches", "1,x"], "DW411"),
])
def test_bad_tuning_options_are_diagnosed(tmp_path, capsys, args, code):
    out = tmp_path / "out"
    assert main(["compile", str(ROOT / "examples" / "ctr_mlp.dw"), "--target", "tvm", "-o",
                 str(out), *args]) != 0
    assert code in capsys.readouterr().err
    assert not out.exists()


def test_damaged_tuning_verdicts_read_as_none(tmp_path):
    """choices.json that is not JSON, not an object, or holds incomplete verdicts costs a
    retiming, never a failed build; complete verdicts are kept."""
    from dwc.backends.tvm_tune import _read_choices

    path = tmp_path / "choices.json"
    assert _read_choices(path) == {}  # missing
    for text in ("{not json", "[1, 2]", '"text"'):
        path.write_text(text)
        assert _read_choices(path) == {}
    good = {"records": 3, "tuned_s": 1e-5, "dwc_s": 2e-5}
    path.write_text(json.dumps({"a-b": good, "c-d": {"records": 3}, "e-f": [1], "g-h": {
        "records": "3", "tuned_s": 1e-5, "dwc_s": 2e-5}}))
    assert _read_choices(path) == {"a-b": good}


def test_a_tuned_candidate_that_fails_keeps_dwcs_schedule():
    """A record whose schedule cannot be replayed (or built, or run) times as infinitely slow."""
    from dwc.backends.tvm_tune import _tuned_seconds

    class Broken:
        def query_schedule(self, *args):
            raise tvm.error.TVMError("the trace does not replay")

    assert _tuned_seconds(Broken(), None, None) == float("inf")
