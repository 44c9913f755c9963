"""`for_inference()` and the scenario-table methods of the training class, as records the
template renders: each op an inference fold made (its type is the marker) has a fold function
writing the lines that compute its parameters from the training module's; a layer kind's folds
come from its `Kind.folds`, the core's are below."""

from __future__ import annotations

from dataclasses import dataclass, field

from dwc import layers
from dwc.backends.torch.builder import Builder
from dwc.backends.torch.layout import INDENT, Arg, call_lines
from dwc.backends.torch.naming import Namespace
from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.source import SourceFile


@dataclass
class ForInferenceView:
    """`for_inference()`: the inference class it builds, and the fold records' lines that
    compute the folded parameters (inside `with torch.no_grad():`)."""

    cls: str
    folds: list[str]
    tables: list[str] = field(default_factory=list)
    """The generators whose per-cell tables the folds read, in the order they first ask: each
    needs its `_scenario_table_<suffix>()` method in the training class."""


@dataclass
class ScenarioTableView:
    """`_scenario_table_<suffix>()`: `generator` evaluated for every scenario cell."""

    suffix: str
    generator: str
    cells: int
    inputs: list[tuple[str, int, int]]
    """(feature, stride, vocabulary) of each scenario feature: its id in cell c."""
    blocks: list
    result: str


def for_inference_view(name: str, inference: Graph, attrs: Namespace) -> ForInferenceView:
    """`for_inference()`: the records of every fold in the inference graph, in order."""
    ctx = FoldContext(attrs)
    for op in inference.ops:
        fold = _fold_of(op)
        if fold is not None:
            fold(ctx, op)
    return ForInferenceView(f"{name}Inference", ctx.lines, list(ctx.tables))


@dataclass
class FoldContext:
    """What a fold writes `for_inference()`'s lines with: `self` is the training module, `model`
    the inference module being filled (inside `with torch.no_grad():`)."""

    attrs: Namespace
    lines: list[str] = field(default_factory=list)
    tables: dict[str, str] = field(default_factory=dict)
    """generator -> the local holding its per-cell table"""

    def attr(self, module: str) -> str:
        """The attribute (in both classes) of the parameter owner `module`."""
        return self.attrs.create(module)

    def copy(self, target: str, expr: str) -> None:
        """`model.<target>.copy_(expr)`."""
        self.lines.extend(_copy(target, expr))

    def call(self, head: str, args: list[Arg]) -> None:
        """`head(args)` (e.g. `weight = torch.cat` and its arguments), wrapped to the line width."""
        self.lines.extend(call_lines(head, args, indent=INDENT + 4))

    def stack_linears(self, target: str, layers: list[str]) -> None:
        """`model.<target>`, a linear layer, filled with `layers` (expressions naming linear
        layers of the training module) stacked along their outputs, in order."""
        for member in ("weight", "bias"):
            self.call(f"{member} = torch.cat", [[f"{layer}.{member}" for layer in layers]])
            self.copy(f"{target}.{member}", member)

    def table(self, generator: str) -> str:
        """The local holding `generator`'s per-cell table, computed once however many read it."""
        if generator not in self.tables:
            self.tables[generator] = f"table_{len(self.tables)}"
            self.lines.append(f"{self.tables[generator]} = "
                              f"self._scenario_table_{_method_suffix(generator)}()")
        return self.tables[generator]

    def cell_slot(self, table: str, slot: ir.Slot, cells: int) -> str:
        """One slot of every cell's row of the per-cell table `table`: cells x the slot's shape."""
        return _cell_slot(table, slot, cells)


def _fold_scenario_table(ctx: FoldContext, op: ir.ScenarioTable) -> None:
    ctx.copy(f"{ctx.attr(op.module)}.weight", ctx.table(op.generator))


def _fold_scenario_linear(ctx: FoldContext, op: ir.ScenarioLinear) -> None:
    ctx.lines.extend(_scenario_linear_fold(op, ctx.attr(op.module), ctx.table(op.generator),
                                           ctx.attrs))


def _fold_fused_generator(ctx: FoldContext, op: ir.FusedGenerator) -> None:
    """The stacked generator: the parts' linear layers concatenated, in part order."""
    ctx.stack_linears(ctx.attr(op.module), [f"self.{ctx.attr(p.module)}[0]" for p in op.parts])


def _fold_norm_linear(ctx: FoldContext, op: ir.NormFoldedLinear) -> None:
    """The trained layer with its batch norm's eval affine map y = x s + t multiplied in."""
    a, linear, norm = ctx.attr(op.module), ctx.attr(op.linear), ctx.attr(op.norm)
    ctx.lines += [f"norm = self.{norm}",
                  "scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)",
                  "shift = norm.bias - norm.running_mean * scale"]
    bias = f" + self.{linear}.bias" if op.linear_bias else ""
    if op.norm_first:  # (x s + t) W + b
        ctx.copy(f"{a}.weight", f"self.{linear}.weight * scale")
        ctx.copy(f"{a}.bias", f"self.{linear}.weight @ shift{bias}")
    else:  # (x W + b) s + t
        ctx.copy(f"{a}.weight", f"self.{linear}.weight * scale.unsqueeze(1)")
        ctx.copy(f"{a}.bias", f"self.{linear}.bias * scale + shift" if op.linear_bias
                 else "shift")


_FOLDS = {ir.ScenarioTable: _fold_scenario_table, ir.ScenarioLinear: _fold_scenario_linear,
          ir.FusedGenerator: _fold_fused_generator, ir.NormFoldedLinear: _fold_norm_linear}
"""The core's folds; a fold's op type is its marker."""


def _fold_of(op: ir.Op):
    """How for_inference() computes `op`'s parameters from the training module's: a layer
    kind's fold (by op type), else the core's; None for ops holding training parameters."""
    fold = layers.torch_folds().get(type(op)) or _FOLDS.get(type(op))
    if fold is None and op.tabulated() is not None:  # would serve zeros: fail the compile
        raise AssertionError(f"no for_inference() fold for {type(op).__name__}")
    return fold


def _copy(target: str, expr: str) -> list[str]:
    """`model.<target>.copy_(expr)` in for_inference()'s `with torch.no_grad():` block."""
    return call_lines(f"model.{target}.copy_", [expr], indent=INDENT + 4)


def _cell_slot(table: str, slot: ir.Slot, cells: int) -> str:
    """Expression for one slot of every cell's row of `table`: cells x the slot's shape (a
    vector slot stays cells x width)."""
    piece = f"{table}[:, {slot.offset}:{slot.end}]"
    if len(slot.shape) == 1:
        return piece
    return f"{piece}.reshape({cells}, {', '.join(map(str, slot.shape))})"


def _scenario_linear_fold(op: ir.ScenarioLinear, a: str, table: str,
                          attrs: Namespace) -> list[str]:
    """for_inference() lines computing a ScenarioLinear's per-cell weights from `table`, the
    folded layer's generator output for every cell (row c = cell c)."""
    f, cells = op.folded, op.cells
    trained = attrs.create(f.module) if f.module else None  # the training owner (U, V, bias)
    lines: list[str] = []

    def copy(target: str, expr: str) -> None:
        lines.extend(_copy(target, expr))

    def cols(slot: ir.Slot) -> str:
        return _cell_slot(table, slot, cells)

    weights = f.dynamic_weights()
    generated = weights.generated
    if weights.rank is not None:  # shared factors: the trained layer's U and V, a core per cell
        copy(f"{a}.u_weight", f"self.{trained}.u().T")
        copy(f"{a}.core", cols(generated[0]))
        copy(f"{a}.v_weight", f"self.{trained}.v()")
        if not op.v_shared:
            copy(f"{a}.weight", f"model.{a}.core @ model.{a}.v_weight")
    elif len(generated) == 1:
        lines.append(f"weight = {cols(generated[0])}")
        copy(f"{a}.weight", "weight")
    else:  # generated U, S and V: their product per cell
        names = ("u", "core", "v")
        lines += [f"{name} = {cols(slot)}" for name, slot in zip(names, generated, strict=True)]
        copy(f"{a}.weight", " @ ".join(names))
    if f.bias == "generated":
        assert f.bias_slot is not None
        copy(f"{a}.bias", _cell_slot(table, f.bias_slot, cells))
    elif f.bias == "static":  # the layer's own module holds it, else the module is the bias
        copy(f"{a}.bias", f"self.{trained}.bias" if weights.module else f"self.{trained}")
    return lines


def _method_suffix(ssa: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in ssa)


def scenario_table_views(train: Graph, generators: list[str], source: SourceFile | None,
                         attrs: Namespace, helpers: set[str]) -> list[ScenarioTableView]:
    """A method per tabulated value (`generators`: those for_inference()'s folds read, which
    include the tables of ops a later pass folded away, e.g. a gate multiplied into the per-cell
    layer after it) computing it for every scenario cell, in order."""
    tables: list[ScenarioTableView] = []
    vocab = {s.name: s.vocab for s in train.inputs}
    for generator in generators:
        needed = train.ancestors(generator)
        sub = Builder(train, source, attrs, helpers)
        sub.emit_init = False
        sub.unsplit.add(generator)
        for node in train.ops:
            if node.result in needed:
                sub.lower(node)
        strides, stride = [], 1
        for feature in reversed(train.scenario):
            strides.append((feature, stride, vocab[feature]))
            stride *= vocab[feature]
        tables.append(ScenarioTableView(_method_suffix(generator), generator, train.scenario_cells,
                                        strides[::-1], sub.forward, sub.var(generator)))
    return tables


