"""CPU schedules for the kernels dwc's TVM backend emits, applied the way dlight applies its GPU
rules: after legalisation and fusion, every PrimFunc is offered to the rules in order, the first
that matches schedules it, and a function no rule matches is left as it is.

Relax's own CPU pipeline schedules nothing: every matmul is a naive single-threaded loop nest.
The rules here cover what a dwc model is made of:

- `DenseMatmul`: C[i, j] = sum_k A[i, k] * B[k, j] (or B[j, k]), optionally batched over a
  leading axis, with a spatial epilogue (bias, activation, ...). A register tile of MR rows by
  NR columns (NR a multiple of the vector width) accumulates in a local buffer over the whole
  reduction, the epilogue is applied when the tile is written back, the NR columns are one
  vectorised loop, the MR rows are unrolled, and the row tiles run in parallel on all cores.
- `RowReduction`: other reductions (sequence pooling, sums over a small axis): the spatial
  producers are inlined, the batch rows run in parallel and the innermost spatial axis is
  vectorised with the reduction moved outside it.
- `Elementwise`: functions of spatial blocks only (gathers, casts, concatenations, the
  elementwise tails): everything is inlined into the output block, whose rows run in parallel
  with the innermost axis vectorised.

Before legalisation, `fast_math` replaces exp, tanh, sigmoid, erf and softmax with topi's
polynomial forms: LLVM has no vector exp on x86 without a vector math library, so the exact
forms are one scalar libm call per element inside loops that are otherwise vectorised (CAN's
tanh micro-MLPs spent 90% of their time there). The polynomials are accurate to about 4e-6
relative (exp) and 3e-7 absolute (tanh), far inside dwc's 1e-4 agreement with torch.

The parallel loops carry the symbolic batch; TVM's thread pool runs them on every core.
"""

from __future__ import annotations

import contextlib

import tvm
from tvm import s_tir, tirx
from tvm.ir import IRModule
from tvm.s_tir.schedule import ScheduleError
from tvm.target import Target


def vector_lanes(target: Target) -> int:
    """float32 lanes of the widest vector register the llvm target has (16 with AVX-512)."""
    mcpu = str(target.attrs.get("mcpu", ""))
    features = {str(f) for f in target.attrs.get("mattr", [])}
    if any(f.startswith("+avx512") for f in features) or mcpu in _AVX512_CPUS:
        return 16
    if mcpu in _AVX2_CPUS or "+avx2" in features:
        return 8
    return 4


_AVX512_CPUS = {"znver4", "znver5", "skylake-avx512", "cascadelake", "cooperlake", "icelake-server",
                "icelake-client", "tigerlake", "sapphirerapids", "emeraldrapids", "graniterapids",
                "rocketlake", "cannonlake", "x86-64-v4"}
_AVX2_CPUS = {"znver1", "znver2", "znver3", "haswell", "broadwell", "skylake", "alderlake",
              "raptorlake", "meteorlake", "x86-64-v3"}


def _static(extent) -> int | None:
    return int(extent) if isinstance(extent, tirx.IntImm) else None


def _root_blocks(sch: s_tir.Schedule) -> list:
    return list(sch.get_child_blocks(_root(sch)))


def _root(sch: s_tir.Schedule):
    func = sch.mod["main"]
    return sch.get_sblock(func.body.block.name_hint)


def _iter_kinds(sch: s_tir.Schedule, block) -> str:
    kinds = {tirx.IterVar.DataPar: "S", tirx.IterVar.CommReduce: "R"}
    return "".join(kinds.get(v.iter_type, "O") for v in sch.get(block).iter_vars)


def _region_vars(region) -> list:
    """The buffer region's index expressions when each is a plain block variable, else []."""
    out = []
    for r in region.region:
        if not isinstance(r.min, tirx.Var) or _static(r.extent) != 1:
            return []
        out.append(r.min)
    return out


def _inline_all_but(sch: s_tir.Schedule, keep) -> bool:
    """Inlines every spatial block except `keep` into its consumers (or, for blocks after a
    reduction, into their producer); True if all could be inlined."""
    done = True
    for block in reversed(_root_blocks(sch)):
        if sch.get(block).same_as(sch.get(keep)):
            continue
        try:
            sch.compute_inline(block)
        except ScheduleError:
            done = False
    return done


def _parallel(sch: s_tir.Schedule, loops: list, parallel: bool) -> None:
    """Fuses `loops` (outermost first) and makes them parallel when `parallel`."""
    loop = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    if parallel:
        sch.parallel(loop)


def vector_width(extent: int, lanes: int) -> int:
    """How many iterations of a static innermost loop of `extent` to vectorise as one: a whole
    register where it divides the loop, the whole loop where it fits in one register, else the
    largest divisor up to a register (at least 4), else 1 (left to LLVM). Never a vector wider
    than a register that is not a multiple of it: LLVM splits those into pieces plus a scalar
    tail, which ran CAN's 50-step loops several times slower than vectors of 10."""
    if extent % lanes == 0 or extent <= lanes:
        return min(extent, lanes)
    width = next(d for d in range(lanes, 0, -1) if extent % d == 0)
    return width if width >= min(4, lanes) else 1


def _vector_registers(sch: s_tir.Schedule, loop, lanes: int) -> None:
    """Vectorises a static loop of whole registers (or of at most one) one register at a time:
    a loop of several registers is split, the registers unrolled. LLVM handles a vector of
    3 x 16 floats badly (not a power of two: HMoE's 48-wide layer ran 17x slower than the
    same tile as three 16-float vectors)."""
    extent = _static(sch.get(loop).extent)
    if extent > lanes:
        registers, loop = sch.split(loop, [None, lanes])
        sch.unroll(registers)
    sch.vectorize(loop)


def _vectorize_inner(sch: s_tir.Schedule, inner, lanes: int) -> list:
    """Vectorises the static loop `inner` by `vector_width`; returns the loops split off
    outside the vectorised part ([] or one)."""
    extent = _static(sch.get(inner).extent)
    width = vector_width(extent, lanes)
    if width <= 1:
        return []
    if width < extent:
        rest, inner = sch.split(inner, [None, width])
        sch.vectorize(inner)
        return [rest]
    sch.vectorize(inner)
    return []


def _parallel_rows(sch: s_tir.Schedule, loops: list, lanes: int, parallel: bool) -> None:
    """Loops of a spatial block: the innermost static loop vectorised (`vector_width`), the
    loops outside it fused and made parallel. (Fusing the static loops into one longer vector
    looks tempting, but a gather or transpose then indexes by division and remainder of the
    fused variable in every lane: CAN's embedding gathers ran 4x slower.)"""
    inner = loops[-1]
    outer = loops[:-1]
    if _static(sch.get(inner).extent) is None:  # one symbolic loop: parallel, LLVM vectorises
        _parallel(sch, loops, parallel)
        return
    outer += _vectorize_inner(sch, inner, lanes)
    if outer:
        _parallel(sch, outer, parallel)


class CpuRule:
    """A schedule rule: `schedule` returns the scheduled function's Schedule, or None when the
    function is not what the rule is for. With `parallel` False the rule makes no loop
    parallel (the serial variant `ApplyCpuSchedules` runs below the parallel threshold)."""

    def schedule(self, func: tirx.PrimFunc, target: Target, parallel: bool):
        raise NotImplementedError


class DenseMatmul(CpuRule):
    """C[(b,) i, j] = sum_k A[(b,) i, k] * B[(b,) k, j] or B[(b,) j, k], plus a spatial epilogue.

    The reduction block must read exactly A and B with plain block variables as indices; the
    function may hold spatial blocks before it (inlined into it, or left where they are when
    that is impossible) and after it (applied on write-back)."""

    def schedule(self, func: tirx.PrimFunc, target: Target, parallel: bool):
        sch = s_tir.Schedule(func)
        blocks = _root_blocks(sch)
        reductions = [b for b in blocks if "R" in _iter_kinds(sch, b)]
        if len(reductions) != 1 or any(set(_iter_kinds(sch, b)) - {"S", "R"} for b in blocks):
            return None
        main = reductions[0]
        layout = self._layout(sch, main)
        if layout is None:
            return None
        batched, transposed_b = layout
        lanes = vector_lanes(target)
        stmt = sch.get(main)
        n = _static(stmt.iter_vars[-2].dom.extent)
        if n is None:
            return None
        rows = _static(stmt.iter_vars[-3].dom.extent)
        # Over the symbolic batch the rows are padded to whole tiles, so that no row guard sits
        # inside the reduction loop (with one, LLVM keeps the accumulators in memory), and a
        # layer's columns, when they are not whole registers, to whole registers (its weights
        # copied into the padded width on every call: a few hundred KiB at most).
        pad_rows = not transposed_b and rows is None
        pad_columns = pad_rows and not batched and n > lanes and n % lanes != 0 and (
            vector_width(n, lanes) < lanes // 2 or self._padded_width(n, lanes) * 8 <= n * 9)
        mr, nr = self._tile(self._padded_width(n, lanes) if pad_columns else n, lanes)
        if rows is not None:  # a static row count (per-sample products): tiles that divide it
            mr = next(d for d in range(min(mr, rows), 0, -1) if rows % d == 0)
        padded = pad_rows and (mr > 1 or pad_columns)
        row_copies, column_copies = [], []
        if padded:
            pads = [1] * len(stmt.iter_vars)
            pads[-3] = mr
            if pad_columns:
                pads[-2] = nr
            a_buffer = stmt.reads[0].source
            before = {sch.get(b).name_hint for b in blocks}
            try:
                sch.pad_einsum(main, pads)
            except ScheduleError:
                padded = False
                mr, nr = self._tile(n, lanes)
            else:
                main = sch.get_sblock(stmt.name_hint)
                blocks = _root_blocks(sch)
                for block in sch.get_producers(main):
                    if sch.get(block).name_hint in before:
                        continue
                    copies_a = sch.get(block).reads[0].source.same_as(a_buffer)
                    (row_copies if copies_a else column_copies).append(block)
        keep = row_copies + column_copies
        # producers: inline what can be (e.g. a concatenation feeding the matmul, or feeding
        # the padded copy of its rows)
        position = [sch.get(b).same_as(sch.get(main)) for b in blocks].index(True)
        for block in reversed(blocks[:position]):
            if any(sch.get(block).same_as(sch.get(k)) for k in keep):
                continue
            try:
                sch.compute_inline(block)
            except ScheduleError:
                pass
        loops = sch.get_loops(main)
        if batched:
            b_loop, i, j, k = loops
        else:
            b_loop, (i, j, k) = None, loops
        io, ii = sch.split(i, [None, mr])
        jo, ji = sch.split(j, [None, nr])
        if transposed_b:  # B[j, k]: the register tile is one column block, k innermost
            outer, inner = io, jo
            sch.reorder(io, jo, ii, ji, k)
        elif padded:  # row tiles outside: a tile's rows are copied once for every panel
            outer, inner = io, jo
            sch.reorder(io, jo, k, ii, ji)
        else:
            outer, inner = jo, io  # a panel of B stays in L1 while the row tiles pass
            sch.reorder(outer, inner, k, ii, ji)
        local = sch.cache_write(main, 0, "local")
        sch.reverse_compute_at(local, inner, preserve_unit_loops=True)
        unpad = None
        if padded:  # the tile's real rows leave the padded result right after the tile
            unpad = sch.get_consumers(local)[0]
            sch.reverse_compute_at(unpad, inner, preserve_unit_loops=True)
            for pad in row_copies:  # each row tile copies its rows (a tile-sized buffer)
                sch.compute_at(pad, io, preserve_unit_loops=True)
            for pad in column_copies:  # the weights, once per call
                _parallel_rows(sch, list(sch.get_loops(pad)), lanes, False)
        skip = [main, local, *keep] + ([unpad] if unpad is not None else [])
        epilogue = [b for b in _root_blocks(sch)
                    if not any(sch.get(b).same_as(sch.get(x)) for x in skip)
                    and "R" not in _iter_kinds(sch, b)]
        self._fuse_epilogue(sch, epilogue, lanes, parallel)
        vector = nr > 1 and (nr % lanes == 0 or nr <= lanes)  # whole registers, or one
        if unpad is not None and vector:
            _vector_registers(sch, sch.get_loops(unpad)[-1], lanes)
        store = sch.get_loops(local)[-2:]
        sch.unroll(store[0])
        if vector:
            _vector_registers(sch, store[1], lanes)
        if not transposed_b:
            sch.unroll(ii)
            if vector:
                _vector_registers(sch, ji, lanes)
        tiles = [outer] if padded else [outer, inner]  # (a padded tile's copy sits between)
        _parallel(sch, [b_loop, *tiles] if b_loop is not None else tiles,
                  parallel)
        sch.decompose_reduction(main, k if not transposed_b else ii)
        return sch

    @staticmethod
    def _layout(sch, main) -> tuple[bool, bool] | None:
        """(batched, B indexed [j, k]) when `main` is a matmul, else None."""
        stmt = sch.get(main)
        kinds = _iter_kinds(sch, main)
        if kinds not in ("SSR", "SSSR") or len(stmt.reads) != 2 or len(stmt.writes) != 1:
            return None
        vs = [v.var for v in stmt.iter_vars]
        batched = len(vs) == 4
        *b, i, j, k = vs
        a_idx = _region_vars(stmt.reads[0])
        b_idx = _region_vars(stmt.reads[1])
        c_idx = _region_vars(stmt.writes[0])
        same = lambda xs, ys: len(xs) == len(ys) and all(x.same_as(y) for x, y in zip(xs, ys, strict=True))  # noqa: E731
        if not same(c_idx, [*b, i, j]):
            return None
        if not (same(a_idx, [*b, i, k]) or (batched and same(a_idx, [i, k]))):
            return None
        if same(b_idx, [*b, k, j]) or (batched and same(b_idx, [k, j])):
            return batched, False
        if same(b_idx, [*b, j, k]) or (batched and same(b_idx, [j, k])):
            return batched, True
        return None

    @staticmethod
    def _padded_width(n: int, lanes: int) -> int:
        """The width a layer of n columns (not whole registers) is padded to: whole tiles of 4,
        3, 2 or 1 registers, whichever costs least counting a tile's efficiency (measured:
        CAN's 200 columns ran 1.4x faster padded to 240 = 5 x 48 than to 208 = 13 x 16).

        `schedule` pads only when that costs at most 1/8 more columns (PEPNet's 242 -> 256: 2.2x
        faster than tiles of 11 columns), or when n has no divisor of half a register or more
        to tile by (97 -> 128); CAN's 200 columns run as tiles of 10 (8 x 10 beat 240)."""
        efficiency = {4: 1.0, 3: 0.95, 2: 0.8, 1: 0.5}
        return min((-(-n // (v * lanes)) * v * lanes for v in efficiency),
                   key=lambda width: width / efficiency[next(v for v in (4, 3, 2, 1)
                                                           if width % (v * lanes) == 0)])

    @staticmethod
    def _tile(n: int, lanes: int) -> tuple[int, int]:
        """(rows MR, columns NR) of the register tile: NR a divisor of N made of whole vectors
        where possible, MR so that the accumulators fill about three quarters of the vector
        registers: 24 of AVX-512's 32, 12 of AVX2's (and SSE's) 16, the rest holding the
        broadcast row values and the weights (a 6 x 4-vector tile spills on AVX2: 24
        accumulators in 16 registers).

        Otherwise NR is at most one vector (`vector_width`): LLVM splits a wider vector that is
        not a multiple of the register width into pieces and a scalar tail per row, and an
        8 x 50 tile (CAN's steps) ran 9x slower than 8 x 10. When N has no divisor from 4 up
        to the register width (34, 53), a tile is one row of all N columns, left to LLVM to
        vectorise."""
        if n % lanes == 0:
            vectors = next(v for v in (4, 3, 2, 1) if (n // lanes) % v == 0)
            accumulators = 24 if lanes >= 16 else 12
            return min(8, accumulators // vectors), vectors * lanes
        if n < lanes:
            return 8, n
        nr = vector_width(n, lanes)
        return (8, nr) if nr > 1 else (1, n)

    @staticmethod
    def _fuse_epilogue(sch, epilogue, lanes: int, parallel: bool) -> None:
        """Folds the elementwise epilogue into the tile's write-back; from the first block that
        cannot be folded (e.g. a concatenation) on, the blocks stay on their own, rows in
        parallel and vectorised."""
        for position, block in enumerate(epilogue):
            try:
                sch.reverse_compute_inline(block)
            except ScheduleError:
                for rest in epilogue[position:]:
                    _parallel_rows(sch, list(sch.get_loops(rest)), lanes, parallel)
                return


class RowReduction(CpuRule):
    """Any other function with one reduction block over a leading batch axis."""

    def schedule(self, func: tirx.PrimFunc, target: Target, parallel: bool):
        sch = s_tir.Schedule(func)
        blocks = _root_blocks(sch)
        reductions = [b for b in blocks if "R" in _iter_kinds(sch, b)]
        if len(reductions) != 1:
            return None
        main = reductions[0]
        position = [sch.get(b).same_as(sch.get(main)) for b in blocks].index(True)
        for block in reversed(blocks[:position]):
            try:
                sch.compute_inline(block)
            except ScheduleError:
                return None
        for block in blocks[position + 1:]:
            try:
                sch.reverse_compute_inline(block)
            except ScheduleError:
                return None
        kinds = _iter_kinds(sch, main)
        loops = sch.get_loops(main)
        if len(loops) != len(kinds) or not kinds.startswith("S"):
            return None
        spatial = [lp for lp, c in zip(loops, kinds, strict=True) if c == "S"]
        reduce = [lp for lp, c in zip(loops, kinds, strict=True) if c == "R"]
        lanes = vector_lanes(target)
        inner = spatial[-1] if len(spatial) > 1 else None
        extent = _static(sch.get(inner).extent) if inner is not None else None
        width = vector_width(extent, lanes) if extent is not None else 1
        if width > 1 and kinds.endswith("R"):
            if width < extent:
                rest, inner = sch.split(inner, [None, width])
                spatial = [*spatial[:-1], rest, inner]
            sch.reorder(*spatial[:-1], *reduce, inner)
            sch.vectorize(inner)
            outer = spatial[:-1]
        else:
            outer = spatial
        _parallel(sch, outer, parallel)
        sch.decompose_reduction(main, reduce[0])
        return sch


class Elementwise(CpuRule):
    """Functions whose blocks are all spatial: inlined into the last one, rows in parallel."""

    def schedule(self, func: tirx.PrimFunc, target: Target, parallel: bool):
        sch = s_tir.Schedule(func)
        blocks = _root_blocks(sch)
        if not blocks or any(set(_iter_kinds(sch, b)) != {"S"} for b in blocks):
            return None
        last = blocks[-1]
        if len(blocks) > 1 and not _inline_all_but(sch, last):
            return None
        if len(_root_blocks(sch)) != 1:
            return None
        loops = sch.get_loops(last)
        if not loops:
            return None
        lanes = vector_lanes(target)
        if not _by_segments(sch, last, list(loops), lanes, parallel):
            _parallel_rows(sch, list(loops), lanes, parallel)
        return sch


_MAX_SEGMENT_CHUNKS = 16
"""The most vectors a row of a concatenation is unrolled into (see `_by_segments`)."""


def _segment_starts(sch: s_tir.Schedule, block, var) -> set[int]:
    """The constant offsets at which the block reads its buffers along the block variable `var`
    (buffer[..., var - o, ...] gives o): a concatenation reads each part at the column where it
    starts. Reads not at a constant offset from `var` are skipped."""
    analyzer = tvm.sym.Analyzer()
    starts = set()
    for read in sch.get(block).reads:
        for r in read.region:
            offset = analyzer.simplify(var - r.min)
            if isinstance(offset, tirx.IntImm) and not isinstance(r.min, tirx.IntImm):
                starts.add(int(offset))
    return starts


def segment_width(starts: set[int], extent: int, lanes: int) -> int:
    """The widest vector, a power of two up to `lanes`, that divides every part's start and the
    row's `extent`: each such vector lies within one part."""
    width = 1
    while width * 2 <= lanes and all(o % (width * 2) == 0 for o in (*starts, extent)):
        width *= 2
    return width


def _by_segments(sch: s_tir.Schedule, block, loops: list, lanes: int, parallel: bool) -> bool:
    """Schedules a concatenation along the innermost static axis part by part: vectors no wider
    than the parts' common alignment (the largest power of two up to a register dividing every
    part's start), the vectors of a row unrolled, rows in parallel. Each unrolled vector then
    reads one part, with constant indices: its source no longer switches lane by lane (a vector
    across a boundary gathered from every part and selected). AdaSparse's input kernel (parts
    of 8 and 16 columns): 9x faster at B = 1024. False (nothing done) for a block that is not a
    concatenation along that axis, or whose row would take more than _MAX_SEGMENT_CHUNKS
    vectors."""
    stmt = sch.get(block)
    extent = _static(sch.get(loops[-1]).extent)
    if extent is None or len(loops) < 2 or len(stmt.iter_vars) != len(loops):
        return False
    starts = _segment_starts(sch, block, stmt.iter_vars[-1].var)
    if len(starts) < 2:  # one part (a plain elementwise block, a slice): not a concatenation
        return False
    width = segment_width(starts, extent, lanes)
    if extent // width > _MAX_SEGMENT_CHUNKS:
        return False
    chunks, inner = sch.split(loops[-1], [None, width])
    sch.unroll(chunks)
    if width > 1:
        sch.vectorize(inner)
    _parallel(sch, loops[:-1], parallel)
    return True


def _fast_sigmoid(x):
    from tvm import topi

    return topi.divide(tirx.const(1, x.dtype), topi.add(tirx.const(1, x.dtype),
                                                        topi.fast_exp(topi.negative(x))))


def _fast_forms() -> dict[str, object]:
    """Relax operator -> the topi function of its input(s) that replaces it."""
    from tvm import topi

    return {
        "relax.exp": topi.fast_exp,
        "relax.tanh": topi.fast_tanh,
        "relax.erf": topi.fast_erf,
        "relax.sigmoid": _fast_sigmoid,
        "relax.nn.softmax": lambda x, axis: topi.nn.fast_softmax(x, axis),
    }


@tvm.transform.module_pass(opt_level=0, name="DwcFastMath")
def fast_math(mod: IRModule, _ctx: tvm.transform.PassContext) -> IRModule:
    """Every float32 exp, tanh, sigmoid, erf and softmax in the Relax functions replaced by its
    vectorisable polynomial form (see the module docstring); other dtypes keep the exact op."""
    from tvm import relax

    forms = _fast_forms()

    @relax.expr_functor.mutator
    class Rewriter(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            name = getattr(call.op, "name", None)
            if name not in forms or call.args[0].ty.dtype != "float32":
                return call
            if name == "relax.nn.softmax":
                return self.builder_.call_te(forms[name], call.args[0], int(call.attrs.axis))
            return self.builder_.call_te(forms[name], call.args[0])

    rewriter = Rewriter(mod)
    for gv, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gv, rewriter.visit_expr(func))
    return rewriter.builder_.get()


@tvm.transform.module_pass(opt_level=0, name="DwcGathersInjective")
def gathers_injective(mod: IRModule, _ctx: tvm.transform.PassContext) -> IRModule:
    """Marks the opaque PrimFuncs that are single spatial blocks (the `take` of every embedding
    lookup and id gather: AnnotateTIROpPattern calls data-dependent indexing opaque) as
    injective, so that FuseOps fuses them with the casts before and the concatenations after
    them instead of running each as its own kernel."""
    updated = {}
    for gv, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc) or int(func.attrs.get("op_pattern", -1)) != 8:
            continue
        sch = s_tir.Schedule(func)
        blocks = _root_blocks(sch)
        if len(blocks) == 1 and _iter_kinds(sch, blocks[0]) and \
                set(_iter_kinds(sch, blocks[0])) == {"S"}:
            updated[gv] = func.with_attr("op_pattern", 2)
    for gv, func in updated.items():
        mod[gv] = func
    return mod


PARALLEL_WORK = 1 << 17
"""A kernel runs its rows in parallel from this many inner-loop iterations on (rows x the
static work per row): below it, waking the thread pool costs more than it saves."""


def _row_work(func: tirx.PrimFunc) -> int:
    """Inner-loop iterations per batch row: over all blocks, the product of their static
    iteration extents (a symbolic extent, the batch, counts as one)."""
    sch = s_tir.Schedule(func)
    total = 0
    for block in _root_blocks(sch):
        work = 1
        for var in sch.get(block).iter_vars:
            work *= _static(var.dom.extent) or 1
        total += work
    return max(total, 1)


def _batch_var(func: tirx.PrimFunc):
    """The one symbolic variable in the blocks' iteration extents (the batch), or None."""
    sch = s_tir.Schedule(func)
    found = []
    for block in _root_blocks(sch):
        for iv in sch.get(block).iter_vars:
            if _static(iv.dom.extent) is None:
                for var in tirx.analysis.undefined_vars(iv.dom.extent):
                    if not any(var.same_as(f) for f in found):
                        found.append(var)
    return found[0] if len(found) == 1 else None


def _fresh_loops(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """The same function with new loop variables (a one-way split of every loop): the two
    branches `_merge` joins must not define the same loop variable."""
    sch = s_tir.Schedule(func)
    seen = []
    for block in _root_blocks(sch):
        for loop in sch.get_loops(block):
            if not any(sch.get(loop).same_as(sch.get(s)) for s in seen):
                seen.append(loop)
    for loop in seen:
        sch.split(loop, [None])
    return sch.mod["main"]


def _merge(parallel: tirx.PrimFunc, serial: tirx.PrimFunc, condition) -> tirx.PrimFunc:
    """One function: `if condition` the parallel schedule's body, else the serial one's."""
    par_root, ser_root = parallel.body.block, serial.body.block
    buffers = list(par_root.alloc_buffers)
    buffers += [b for b in ser_root.alloc_buffers if not any(b.same_as(p) for p in buffers)]
    root = s_tir.SBlock([], [], [], "root", tirx.IfThenElse(condition, par_root.body,
                                                            ser_root.body),
                        alloc_buffers=buffers)
    return parallel.with_body(s_tir.SBlockRealize([], True, root))


@tvm.transform.module_pass(opt_level=0, name="DwcApplyCpuSchedules")
class ApplyCpuSchedules:
    """Offers every PrimFunc not yet scheduled to the rules in order; the first that matches
    schedules it. A function over a symbolic batch gets both a parallel and a serial schedule,
    chosen at run time by the batch (`PARALLEL_WORK`); a static one gets the one its size
    calls for. Functions no rule matches are left as they are."""

    def __init__(self, rules: list[CpuRule]) -> None:
        self.rules = list(rules)

    def transform_module(self, mod: IRModule, _ctx: tvm.transform.PassContext) -> IRModule:
        target = Target.current(allow_none=False)
        updated = {}
        for gv, func in mod.functions_items():
            if not isinstance(func, tirx.PrimFunc) or func.attrs.get("tirx.is_scheduled"):
                continue
            scheduled = self.schedule(func, target)
            if scheduled is not None:
                updated[gv] = scheduled.with_attr("tirx.is_scheduled", True)
        for gv, func in updated.items():
            mod[gv] = func
        return mod

    def schedule(self, func: tirx.PrimFunc, target: Target) -> tirx.PrimFunc | None:
        batch = _batch_var(func)
        rows = -(-PARALLEL_WORK // _row_work(func))
        for rule in self.rules:
            if batch is None:  # static: its whole work is one "row"
                sch = rule.schedule(func, target, _row_work(func) >= PARALLEL_WORK)
                if sch is not None:
                    return sch.mod["main"]
                continue
            parallel = rule.schedule(func, target, True)
            if parallel is None:
                continue
            serial = rule.schedule(_fresh_loops(func), target, False)
            return _merge(parallel.mod["main"], serial.mod["main"],
                          batch >= tirx.IntImm("int64", rows))
        return None


def default_rules() -> list[CpuRule]:
    from dwc.backends.tvm_per_cell import PerCellMatmul

    return [PerCellMatmul(), DenseMatmul(), RowReduction(), Elementwise()]


def fusion_passes(target: Target) -> list[tvm.transform.Pass]:
    """Relax's CPU library dispatch, legalisation and fusion, with the per-cell matmuls rewritten
    (`dwc.backends.tvm_per_cell`), the fast math forms, and the gathers fused too."""
    from tvm.relax.backend.cpu_generic import pipeline as cpu_generic

    from dwc.backends.tvm_per_cell import mark_fusable, per_cell_matmuls

    legalize = cpu_generic.legalize_passes(target)
    return cpu_generic.library_dispatch_passes(target) + [per_cell_matmuls, fast_math] \
        + legalize[:2] + [gathers_injective, mark_fusable] + legalize[2:]


def cpu_pipeline(target: Target, rules: list[CpuRule] | None = None,
                 database=None) -> tvm.transform.Pass:
    """Relax's CPU pipeline (relax.backend.cpu_generic) with dwc's schedules applied after
    fusion; with a MetaSchedule `database`, the kernels it holds records for take the tuned
    schedule first (the rules then leave them alone)."""
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline as cpu_generic
    schedule = ApplyCpuSchedules(rules if rules is not None else default_rules())
    with target:  # the pass reads the target when it is made
        tuned = [] if database is None else [relax.transform.MetaScheduleApplyDatabase()]

    @tvm.transform.module_pass(opt_level=0, name="DwcCpuPipeline")
    def _pipeline(mod: IRModule, _ctx: tvm.transform.PassContext) -> IRModule:
        with target, (database if database is not None else contextlib.nullcontext()):
            seq = tvm.transform.Sequential(
                fusion_passes(target) + tuned + [schedule]
                + cpu_generic.dataflow_lower_passes(target)
                + cpu_generic.finalize_passes(target))
            return seq(mod)

    return _pipeline
