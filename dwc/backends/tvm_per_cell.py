"""Per-cell linear layers in the TVM CPU build: each sample's own cell's weights, read in place.

A traced per-cell (per-domain) linear layer (`_dwc_per_domain_linear` in the generated module:
folded STAR layers, per-scenario heads, APG's folded core matrices, HMoE, MLoRA, HAMUR, ...)
exports as one matmul against every cell's weights side by side, then a gather of each
sample's slice:

    every  = matmul(x, W)                       # W: K x (cells * N), all cells side by side
    picked = arange(B) * cells + cell           # row b's slice of `every`
    y      = take(reshape(every, [B * cells, N]), picked, axis=0)

That is what ONNX Runtime runs best (one large GEMM), but it does `cells` times the work that
is used: 8x for STAR, 24x for APG's country x page cells, and at B = 1024 the two side-by-side
matmuls were most of STAR's time in TVM. `per_cell_matmuls` rewrites the pattern into one
kernel that computes only the used slice,

    y[b, j] = sum_k x[b, k] * W[k, cell[b] * N + j]

reading the weights where they are (no per-sample copy), and `PerCellMatmul` schedules it: a
vector accumulator of the row's columns, rows in parallel. The layer's bias gather, add and
activation fuse into its write-back like any matmul epilogue.
"""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import s_tir, tirx
from tvm.ir import IRModule
from tvm.s_tir.schedule import ScheduleError
from tvm.target import Target

from dwc.backends.tvm_schedule import (
    CpuRule,
    DenseMatmul,
    _iter_kinds,
    _parallel,
    _root_blocks,
    _static,
    _vector_registers,
    vector_lanes,
)

KERNEL = "per_cell_matmul"
"""The name of the rewritten kernel's PrimFunc and of its reduction block."""

_OUT_EWISE_FUSABLE = 4
"""relax's OpPatternKind kOutEWiseFusable: FuseOps fuses elementwise consumers into it (the
layer's bias and activation), as it does for matmul."""


def per_cell_matmul(x, weight, cell, width: int):
    """TE: y[b, j] = sum_k x[b, k] * weight[k, cell[b] * width + j] (weight: K x cells*width)."""
    from tvm import te

    k = te.reduce_axis((0, x.shape[1]), name="k")
    return te.compute(
        (x.shape[0], width),
        lambda b, j: te.sum(x[b, k] * weight[k, cell[b].astype("int64") * width + j], axis=k),
        name=KERNEL)


def _call(expr, op: str):
    """`expr` when it is a call of the Relax operator `op`, else None."""
    from tvm import relax

    if isinstance(expr, relax.Call) and getattr(expr.op, "name", None) == op:
        return expr
    return None


def _int_constant(expr) -> int | None:
    """The value of a scalar integer constant, else None."""
    if isinstance(expr, tvm.ir.Constant) and tuple(expr.value.shape) == ():
        value = expr.value.numpy()
        return int(value) if value.dtype.kind in "iu" else None
    return None


def _known_2d(expr) -> bool:
    """Whether the tensor's shape is known and two-dimensional."""
    shape = getattr(expr.ty, "shape", None)
    return shape is not None and len(shape) == 2


def _every_row(arange, rows) -> bool:
    """Whether `arange` is arange(0, rows, 1): one index per row of x, in order."""
    start, end, step = arange.args
    return _static(start) == 0 and _static(step) == 1 and tvm_ffi.structural_equal(end, rows)


@tvm.transform.module_pass(opt_level=0, name="DwcPerCellMatmuls")
def per_cell_matmuls(mod: IRModule, _ctx: tvm.transform.PassContext) -> IRModule:
    """Every side-by-side per-cell matmul + gather (see the module docstring) in the Relax
    functions replaced by one `per_cell_matmul` kernel; anything else is left as it is. The
    side-by-side matmul, once unused, is dropped by dead-code elimination."""
    from tvm import relax

    @relax.expr_functor.mutator
    class Rewriter(relax.PyExprMutator):
        def binding(self, expr):
            """The value bound to a variable (None for parameters and non-variables)."""
            return self.lookup_binding(expr) if isinstance(expr, relax.Var) else None

        def match(self, take):
            """(x, weight, cell, width) of a side-by-side per-cell matmul's gather, or None.

            Exactly the exported form: take(reshape(matmul(x, W), [B * cells, N]),
            arange(0, B, 1) * cells + cell, axis=0) with W float32 K x (cells * N) and one
            cell per row of x; anything else (another index, a clipping take, a broadcast
            cell) is not this layer."""
            if take is None or take.attrs.axis is None or int(take.attrs.axis) != 0 \
                    or take.attrs.mode != "fast" or take.ty.dtype != "float32":
                return None
            reshape = _call(self.binding(take.args[0]), "relax.reshape")
            index = _call(self.binding(take.args[1]), "relax.add")
            if reshape is None or index is None:
                return None
            matmul = _call(self.binding(reshape.args[0]), "relax.matmul")
            if matmul is None:
                return None
            x, weight = matmul.args
            if not all(_known_2d(t) for t in (x, weight, reshape)) or x.ty.dtype != "float32" \
                    or weight.ty.dtype != "float32":
                return None
            width = _static(reshape.ty.shape[1])
            columns = _static(weight.ty.shape[1])
            rows = x.ty.shape[0]
            for scaled, cell in (index.args, index.args[::-1]):
                multiply = _call(self.binding(scaled), "relax.multiply")
                arange = None if multiply is None else _call(self.binding(multiply.args[0]),
                                                             "relax.arange")
                if arange is None or not _every_row(arange, rows):
                    continue
                cells = _int_constant(multiply.args[1])
                shape = getattr(cell.ty, "shape", None)
                if cells and width and columns == cells * width and shape is not None \
                        and len(shape) == 1 and tvm_ffi.structural_equal(shape[0], rows):
                    return x, weight, cell, width
            return None

        def visit_call_(self, call):
            call = super().visit_call_(call)
            found = self.match(_call(call, "relax.take"))
            if found is None:
                return call
            x, weight, cell, width = found
            return self.builder_.call_te(per_cell_matmul, x, weight, cell, width,
                                         primfunc_name_hint=KERNEL)

    rewriter = Rewriter(mod)
    for gv, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gv, rewriter.visit_expr(func))
    return relax.transform.DeadCodeElimination()(rewriter.builder_.get())


@tvm.transform.module_pass(opt_level=0, name="DwcPerCellFusable")
def mark_fusable(mod: IRModule, _ctx: tvm.transform.PassContext) -> IRModule:
    """Marks the per-cell kernels (which AnnotateTIROpPattern calls opaque: their weight index is
    data-dependent) as fusable with their elementwise consumers, like a matmul."""
    updated = {gv: func.with_attr("op_pattern", _OUT_EWISE_FUSABLE)
               for gv, func in mod.functions_items()
               if isinstance(func, tirx.PrimFunc) and gv.name_hint.startswith(KERNEL)}
    for gv, func in updated.items():
        mod[gv] = func
    return mod


class PerCellMatmul(CpuRule):
    """The fused `per_cell_matmul` kernel: each row's N columns accumulate in vector registers
    over the reduction (one row per tile: rows do not share weights), its producers inlined,
    the epilogue (the bias gather, add, activation) applied on write-back, rows in parallel."""

    def schedule(self, func: tirx.PrimFunc, target: Target, parallel: bool):
        sch = s_tir.Schedule(func)
        blocks = _root_blocks(sch)
        mains = [b for b in blocks if sch.get(b).name_hint == KERNEL]
        if len(mains) != 1 or any(set(_iter_kinds(sch, b)) - {"S", "R"} for b in blocks):
            return None
        main = mains[0]
        if _iter_kinds(sch, main) != "SSR":
            return None
        n = _static(sch.get(main).iter_vars[1].dom.extent)
        if n is None:
            return None
        # every block that can be is inlined into its consumers (the input's producers, the
        # bias gather, the epilogue's intermediate steps); what is left after the kernel is
        # applied on its write-back
        for block in reversed(blocks):
            if not sch.get(block).same_as(sch.get(main)):
                try:
                    sch.compute_inline(block)
                except ScheduleError:
                    pass
        lanes = vector_lanes(target)
        nr = DenseMatmul._tile(n, lanes)[1]
        b, j, k = sch.get_loops(main)
        jo, ji = sch.split(j, [None, nr])
        sch.reorder(b, jo, k, ji)
        local = sch.cache_write(main, 0, "local")
        sch.reverse_compute_at(local, jo, preserve_unit_loops=True)
        epilogue = [blk for blk in _root_blocks(sch) if not sch.get(blk).same_as(sch.get(main))
                    and not sch.get(blk).same_as(sch.get(local))]
        DenseMatmul._fuse_epilogue(sch, epilogue, lanes, parallel)
        if nr > 1 and (nr % lanes == 0 or nr <= lanes):
            _vector_registers(sch, ji, lanes)
            _vector_registers(sch, sch.get_loops(local)[-1], lanes)
        _parallel(sch, [b], parallel)
        sch.decompose_reduction(main, k)
        return sch
