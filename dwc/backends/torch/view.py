"""The view model of a generated torch module: plain data the templates only loop over.

`build_view` walks the IR once and turns every op into constructor lines (parameters, named by the
op's stable `module` name) and forward lines (locals named after SSA values), each block headed by
a comment pointing back to the spec line it came from. All identifiers come from `naming.Namespace`;
the only spec-derived text placed in code is validated names and numbers, and strings go through
`repr()`.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

from dwc import __version__, cost, layers
from dwc.backends.torch.helpers import CORE as CORE_HELPERS
from dwc.backends.torch.inline import helper_source, init_parameters
from dwc.backends.torch.naming import Namespace, attribute_namespace, class_name
from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.ir.types import FieldsType, IdsType, TableType
from dwc.source import SourceFile

_ACTIVATION = {
    "relu": "torch.relu({x})",
    "tanh": "_dwc_tanh({x})",
    "sigmoid": "torch.sigmoid({x})",
    "gelu": "F.gelu({x})",
    "leaky_relu": "F.leaky_relu({x}, 0.01)",
    "silu": "F.silu({x})",
}
_ACTIVATION_IN_PLACE = {
    "relu": "torch.relu_({x})",
    "tanh": "_dwc_tanh_({x})",
    "sigmoid": "torch.sigmoid_({x})",
    "leaky_relu": "F.leaky_relu_({x}, 0.01)",
}
"""In-place forms for the inference class (autograd-safe: these save their output, and the
layers producing their input do not save theirs)."""
_ACTIVATION_MODULE = {
    "relu": "nn.ReLU()", "tanh": "_DwcTanh()", "sigmoid": "nn.Sigmoid()", "gelu": "nn.GELU()",
    "leaky_relu": "nn.LeakyReLU(0.01)", "silu": "nn.SiLU()",
}
_HEAD = {
    "sigmoid": "torch.sigmoid({x})",
    "softmax": "torch.softmax({x}, dim=1)",
    "identity": "{x}",
    "exp": "torch.exp({x})",
}
_LOSS = {
    "bce": ("F.binary_cross_entropy_with_logits", ()),
    "ce": ("F.cross_entropy", ()),
    "mse": ("F.mse_loss", ()),
    "poisson": ("F.poisson_nll_loss", ("log_input=True",)),
}


@dataclass
class Block:
    """Lines of code lowered from one spec statement, with the comment that names it."""

    comment: str
    lines: list[str] = field(default_factory=list)


@dataclass
class InputView:
    key: str
    """repr() of the input's name, ready to place in code."""
    dtype: str
    shape: str
    """Per-sample shape as a Python tuple literal."""
    vocab: int | None
    role: str
    doc: str
    example: str
    max_len: int | None = None
    """For a sequence's lengths input: the sequence's padded length (lengths lie in 0 .. max_len)."""
    """Expression building a random example (uses `batch_size` and `generator`)."""


@dataclass
class OutputView:
    key: str
    var: str
    logit: str
    doc: str
    target_example: str


@dataclass
class ForInferenceView:
    """`for_inference()`: the inference class it builds, and the fold records' lines that
    compute the folded parameters (inside `with torch.no_grad():`)."""

    cls: str
    folds: list[str]


@dataclass
class ScenarioTableView:
    """`_scenario_table_<suffix>()`: `generator` evaluated for every scenario cell."""

    suffix: str
    generator: str
    cells: int
    inputs: list[tuple[str, int, int]]
    """(feature, stride, vocabulary) of each scenario feature: its id in cell c."""
    blocks: list[Block]
    result: str


@dataclass
class ClassView:
    """One generated nn.Module class (the training form or the inference form)."""

    name: str
    role: str
    """"training" or "inference"."""
    summary: list[str]
    init: list[Block]
    forward: list[Block]
    outputs: list[OutputView]
    groups: list[str]
    """Lines of the `groups` dict literal in `parameter_groups()`."""
    loss_lines: list[str]
    """Statements accumulating the weighted loss into `total` (training class only)."""
    for_inference: ForInferenceView | None = None
    """The training class's `for_inference()` (the template writes the method around it)."""
    scenario_tables: list[ScenarioTableView] = field(default_factory=list)
    """The training class's `_scenario_table_*()` methods, one per tabulated value."""
    ungroup: str | None = None
    """The local holding the order that restores the caller's rows (a grouped batch), if any."""


@dataclass
class HelperView:
    """One runtime helper: its Python module's code, inlined (a core helper's or a layer kind's)."""

    name: str
    source: str


@dataclass
class FileView:
    """Everything model.py.j2 renders."""

    model: str
    base: str
    """The shared base class of both forms."""
    spec_name: str
    spec_sha256: str
    version: str
    level: str
    """The optimisation pipeline, e.g. "-O2"."""
    inputs: list[InputView]
    output_keys: str
    """The OUTPUTS tuple literal."""
    training: ClassView
    inference: ClassView
    helpers: list[HelperView]
    """The runtime helpers the file needs, in name order."""

    @property
    def lengths(self) -> list[InputView]:
        """The sequences' lengths inputs (checked against their max_len)."""
        return [i for i in self.inputs if i.max_len is not None]

    @property
    def numeric(self) -> bool:
        """Whether any input is floats (checked against the module's float dtype)."""
        return any(i.role == "numeric" for i in self.inputs)


_KEYWORD = re.compile(r"[A-Za-z_]\w*=(?!=)")
"""An argument already written `name=value`."""

INDENT = 8
"""Indentation of statement lines inside the generated class's methods."""
WIDTH = 100
"""Line length of generated code (the project's ruff setting, which the tests check)."""


def q(name: str) -> str:
    """A double-quoted string literal for a validated identifier-like name."""
    assert all(part.isidentifier() and part.isascii() for part in name.split(".")), name
    return f'"{name}"'


@dataclass(frozen=True)
class Keyword:
    """A keyword argument whose value is a list literal given as its items (`name=[...]`)."""

    name: str
    items: list[str]


Arg = str | list[str] | Keyword
"""A call argument: an expression, a list literal given as its items, or a keyword list."""


def _flat(arg: Arg) -> str:
    if isinstance(arg, Keyword):
        return f"{arg.name}=[{', '.join(arg.items)}]"
    return arg if isinstance(arg, str) else f"[{', '.join(arg)}]"


def _is_list(arg: Arg) -> bool:
    return not isinstance(arg, str)


def call_lines(head: str, args: list[Arg], indent: int = INDENT) -> list[str]:
    """`head(args)` laid out the way ruff format lays it out at this indentation.

    `head` includes everything before the parenthesis (`x = torch.cat`). The result's first line
    has no indentation of its own; continuation lines are indented relative to it.
    """
    one = f"{head}({', '.join(_flat(a) for a in args)})"
    if indent + len(one) <= WIDTH:
        return [one]
    inner = ", ".join(_flat(a) for a in args)
    if indent + 4 + len(inner) <= WIDTH and not any(_is_list(a) and
                                                    indent + 4 + len(_flat(a)) > WIDTH
                                                    for a in args):
        return [f"{head}(", f"    {inner}", ")"]
    lines = [f"{head}("]
    for arg in args:
        if _is_list(arg) and indent + 4 + len(_flat(arg)) + 1 > WIDTH:
            items = arg.items if isinstance(arg, Keyword) else arg
            lines.append(f"    {arg.name}=[" if isinstance(arg, Keyword) else "    [")
            lines.extend(f"        {item}," for item in items)
            lines.append("    ],")
        else:
            lines.append(f"    {_flat(arg)},")
    lines.append(")")
    return lines


def py_tuple(items: list[str]) -> str:
    """A tuple literal without a magic trailing comma (ruff would explode it)."""
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _safe_doc(text: str) -> str:
    """Text safe inside a triple-quoted docstring (spec file names are user-controlled)."""
    return "".join(ch if ch.isalnum() or ch in " ._-/:+()[]=,<>*" else "_" for ch in text)


class _Builder:
    """Lowers ops to code. `attrs` is shared by every class in the file, so one module name
    always becomes the same attribute (and state_dict key) in the training and inference classes."""

    def __init__(self, graph: Graph, source: SourceFile | None, attrs: Namespace,
                 helpers: set[str]) -> None:
        self.graph = graph
        self.source = source
        self.attrs = attrs
        self.locals = Namespace()
        self.producers = graph.producers()
        self.init: list[Block] = []
        self.forward: list[Block] = []
        self.helpers = helpers
        self.emit_init = True
        self.emit_forward = True
        self.unsplit: set[str] = set()
        """Generators whose output is returned whole (a scenario table's method): no split."""
        self.in_place = False
        """Activations may overwrite their input (the inference class only)."""
        self.rows_emitted: set[str] = set()
        """Locals already holding a domain's grouped rows in the forward being emitted."""
        self.slot_index: dict[str, dict[str, int]] = {}
        """generator SSA -> slot name -> index into its `torch.split` pieces."""
        self.ungroup: str | None = None
        """The local holding the batch order to restore at the end (see group_batch)."""

    def group_batch(self) -> None:
        """Inference forward: reorder the batch by cell once, before everything else, when
        per-cell layers share a cell index computed from the inputs alone (the cheap scenario
        ops); each then reads its cells' rows as slices (`_dwc_group_batch`), and the outputs go
        back to the caller's order at the end. The index's ops run twice: on the caller's batch
        to find the order, then again in the reordered forward. Whether it pays is the cost
        model's decision (`cost.batch_grouping`)."""
        grouping = cost.batch_grouping(self.graph)
        if grouping is None:
            return
        key = grouping.key
        for op in self.graph.ops:
            if op.result in grouping.needed:
                self.lower(op)
        floats = grouping.gathered
        rows, self.ungroup = self.var(f"{key}.rows"), self.var(f"{key}.order")
        self.helpers.add("per_domain")
        self.rows_emitted.add(rows)
        block = Block(f"the batch grouped by {self.var(key)} once: per-cell layers read contiguous rows")
        block.lines = call_lines(f"inputs, {rows}, {self.ungroup} = _dwc_group_batch",
                                 ["inputs", self.var(key), "list(self.INPUTS)", str(floats)])
        self.forward.append(block)

    # -- identifiers
    def attr(self, op: ir.Op) -> str:
        assert op.module is not None, op
        return self.attrs.create(op.module)

    def var(self, ssa: str) -> str:
        return self.locals.create(ssa.replace(".", "_"), key=ssa)

    def table_attr(self, table_ssa: str) -> str:
        return self.attrs.create(self.producers[table_ssa].module)

    # -- blocks
    def comment(self, op: ir.Op) -> str:
        if self.source is None:
            return f"{op.binding}"
        line = self.source.location(op.span.start)[0]
        return f"line {line}: {op.binding}"

    def put(self, blocks: list[Block], op: ir.Op, line: str) -> None:
        text = self.comment(op)
        if not blocks or blocks[-1].comment != text:
            blocks.append(Block(text))
        blocks[-1].lines.append(line)

    def init_line(self, op: ir.Op, line: str) -> None:
        if self.emit_init:
            self.put(self.init, op, line)

    def fwd(self, op: ir.Op, expr: str, args: list[Arg] | None = None) -> None:
        """Emit `var = expr` or, with `args`, `var = expr(args...)` wrapped to the line width."""
        if not self.emit_forward:
            return
        target = f"{self.var(op.result)} = {expr}"
        lines = [target] if args is None else call_lines(target, args)
        for line in lines:
            self.put(self.forward, op, line)

    # -- ops
    def lower(self, op: ir.Op) -> None:
        emit = layers.torch_emitters().get(type(op))  # a layer kind's (dwc/layers/), else core
        if emit is not None:
            emit(self, op)
        else:
            getattr(self, f"op_{op.kind}")(op)

    def op_table(self, op: ir.Table) -> None:
        t = op.type
        assert isinstance(t, TableType)
        attr = self.attr(op)
        self.init_line(op, f"self.{attr} = nn.Embedding({t.vocab}, {t.dim})")
        if op.frozen:
            self.init_line(op, f"self.{attr}.weight.requires_grad_(False)")

    def module_line(self, op: ir.Op, helper: str, cls: str, args: list[Arg]) -> str:
        """Declare `self.<attr> = cls(...)` (a runtime helper's class) and return the attribute
        name. Settings are passed by keyword: a positional `args` item gets the name of the
        matching parameter of the class's `__init__` (read from the helper's source)."""
        attr = self.attr(op)
        self.helpers.add(helper)
        names = init_parameters(helper_module(helper), cls)
        keyed: list[Arg] = []
        for i, arg in enumerate(args):
            if isinstance(arg, Keyword) or isinstance(arg, str) and _KEYWORD.match(arg):
                keyed.append(arg)  # already by keyword
            elif isinstance(arg, list):
                keyed.append(Keyword(names[i], arg))
            else:
                keyed.append(f"{names[i]}={arg}")
        for line in call_lines(f"self.{attr} = {cls}", keyed):
            self.init_line(op, line)
        return attr

    def op_scenario_index(self, op: ir.ScenarioIndex) -> None:
        ids = [self.var(i) for i in op.inputs]
        expr = ids[0]
        for name, radix in zip(ids[1:], op.radices[1:], strict=True):
            expr = f"{expr} * {radix} + {name}" if expr == ids[0] else f"({expr}) * {radix} + {name}"
        self.fwd(op, expr)

    def op_input(self, op: ir.Input) -> None:
        self.fwd(op, f"inputs[{q(op.feature)}]")

    def op_lookup(self, op: ir.Lookup) -> None:
        table, ids = op.inputs
        self.fwd(op, f"self.{self.table_attr(table)}({self.var(ids)})")

    def op_seq_pool(self, op: ir.SeqPool) -> None:
        table, ids, lengths = op.inputs
        if op.mode == "attention":
            attr = self.module_line(op, "attention_pool", "_DwcAttentionPool", [str(op.type.width)])
            self.fwd(op, f"self.{attr}", [f"self.{self.table_attr(table)}({self.var(ids)})",
                                          self.var(lengths)])
            return
        self.helpers.add("seq_pool")
        self.fwd(op, "_dwc_seq_pool", [f"self.{self.table_attr(table)}.weight", self.var(ids),
                                        self.var(lengths), q(op.mode)])

    def op_normalize(self, op: ir.Normalize) -> None:
        x = self.var(op.inputs[0])
        if op.mode == "log1p":
            self.fwd(op, f"torch.sign({x}) * torch.log1p(torch.abs({x}))")
        else:
            attr = self.attr(op)
            self.init_line(op, f"self.{attr} = nn.BatchNorm1d({op.type.width})")
            self.fwd(op, f"self.{attr}({x})")

    def op_concat(self, op: ir.Concat) -> None:
        xs = [self.var(i) for i in op.inputs]
        if len(xs) == 1:
            self.fwd(op, xs[0])
        else:
            self.fwd(op, "torch.cat", [xs, "dim=1"])

    def op_linear(self, op: ir.Linear) -> None:
        attr = self.attr(op)
        bias = "" if op.bias else ", bias=False"
        self.init_line(op, f"self.{attr} = nn.Linear({op.in_features}, {op.out_features}{bias})")
        self.fwd(op, f"self.{attr}({self.var(op.inputs[0])})")

    def op_activation(self, op: ir.Activation) -> None:
        x = op.inputs[0]
        self.activation_helpers(op.fn)
        if self.in_place and op.fn in _ACTIVATION_IN_PLACE and self._private(x):
            self.fwd(op, _ACTIVATION_IN_PLACE[op.fn].format(x=self.var(x)))
        else:
            self.fwd(op, _ACTIVATION[op.fn].format(x=self.var(x)))

    def activation_helpers(self, fn: str) -> None:
        """tanh's inline and module forms call _dwc_tanh, defined with the activation helper."""
        if fn == "tanh":
            self.helpers.add("activation")

    def _private(self, value: str) -> bool:
        """Whether `value` is a fresh tensor (made by a layer, not an input, view or alias) that
        nothing else reads, so an activation may overwrite it (saves a B x width allocation)."""
        uses = sum(i == value for op in self.graph.ops for i in op.inputs)
        uses += sum(value in (out.value, out.logit) for out in self.graph.outputs)
        return uses == 1 and self.producers[value].allocates()

    def op_norm(self, op: ir.Norm) -> None:
        attr = self.attr(op)
        cls = "nn.BatchNorm1d" if op.mode == "batch" else "nn.LayerNorm"
        self.init_line(op, f"self.{attr} = {cls}({op.type.width})")
        self.fwd(op, f"self.{attr}({self.var(op.inputs[0])})")

    def op_dropout(self, op: ir.Dropout) -> None:
        self.fwd(op, f"F.dropout({self.var(op.inputs[0])}, {op.p!r}, self.training)")

    def op_add(self, op: ir.Add) -> None:
        self.fwd(op, " + ".join(self.var(i) for i in op.inputs))

    def op_stop_gradient(self, op: ir.StopGradient) -> None:
        self.fwd(op, f"{self.var(op.inputs[0])}.detach()")

    def split_slots(self, op: ir.Op) -> None:
        """Split a generator's output into one piece per slot with a single `torch.split`.

        Consumers read pieces, not slices: the backward of one split is one concatenation,
        where every slice of the whole output would allocate (and fill) a full-size gradient.
        """
        slots = op.slots
        self.slot_index[op.result] = {slot.name: i for i, slot in enumerate(slots)}
        pieces = self.var(f"{op.result}.slots")
        if self.emit_forward and op.result not in self.unsplit:
            line = call_lines(f"{pieces} = torch.split",
                              [self.var(op.result), [str(s.size) for s in slots], "dim=1"])
            for text in line:
                self.put(self.forward, op, text)

    def slot(self, generator: str, slot: ir.Slot, shape: bool = True) -> str:
        """Expression for one slot of a generator's output, reshaped to the slot's shape."""
        piece = f"{self.var(generator + '.slots')}[{self.slot_index[generator][slot.name]}]"
        if shape and len(slot.shape) > 1:
            return f"{piece}.reshape(-1, {', '.join(map(str, slot.shape))})"
        return piece

    def op_fused_generator(self, op: ir.FusedGenerator) -> None:
        attrs = []
        for part in op.parts:
            attrs.append(self.attrs.create(part.module))
            gen = ir.Generator(result=op.result, inputs=op.inputs, type=ir.VecType(part.out_features),
                               in_features=part.in_features, init=part.init, slots=part.slots,
                               module=part.module, span=op.span, binding=op.binding)
            self.generator_init(gen)
        if not self.emit_forward:
            return
        weight, bias = self.var(f"{op.result}.weight"), self.var(f"{op.result}.bias")
        for name, member in ((weight, "weight"), (bias, "bias")):
            parts = [f"self.{a}[0].{member}" for a in attrs]
            for line in call_lines(f"{name} = torch.cat", [parts]):
                self.put(self.forward, op, line)
        self.fwd(op, "F.linear", [self.var(op.inputs[0]), weight, bias])
        self.split_slots(op)

    def op_scenario_table(self, op: ir.ScenarioTable) -> None:
        attr = self.attr(op)
        self.init_line(op, f"self.{attr} = nn.Embedding({op.cells}, {op.type.width})")
        self.fwd(op, f"self.{attr}({self.var(op.inputs[0])})")
        self.split_slots(op)

    def op_generator(self, op: ir.Generator) -> None:
        attr = self.generator_init(op)
        self.fwd(op, f"self.{attr}({self.var(op.inputs[0])})")
        self.split_slots(op)

    def generator_init(self, op: ir.Generator) -> str:
        attr = self.attr(op)
        widths = op.widths
        layers: list[str] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
            layers.append(f"nn.Linear({a}, {b})")
            if i < len(widths) - 2:
                layers.append(_ACTIVATION_MODULE[op.act])
                self.activation_helpers(op.act)
        for line in call_lines(f"self.{attr} = nn.Sequential", layers):
            self.init_line(op, line)
        helper = _GENERATOR_INITS.get(op.init)
        if helper is not None:
            self.helpers.add(helper)
            fans = []
            for slot in op.slots:
                fan_in = slot.shape[0] if len(slot.shape) == 2 else 0
                fans.append(f"({slot.offset}, {slot.end}, {fan_in})")
            for line in call_lines(f"_dwc_{helper}_", [f"self.{attr}[-1]", fans]):
                self.init_line(op, line)
        return attr

    def op_dynamic_linear(self, op: ir.DynamicLinear) -> None:
        x = self.var(op.inputs[0])
        self.helpers.add("dynamic_linear")
        w = op.weight
        weight = self.slot(op.inputs[1], w)
        if op.bias == "generated":
            assert op.bias_slot is not None
            bias = self.slot(op.inputs[1], op.bias_slot)
        elif op.bias == "static":
            attr = self.attr(op)
            self.init_line(op, f"self.{attr} = nn.Parameter(torch.zeros({op.out_features}))")
            bias = f"self.{attr}"
        else:
            bias = "None"
        self.fwd(op, "_dwc_dynamic_linear", [x, weight, bias])

    def domain_rows(self, op: ir.Op, ids: str) -> str:
        """The variable holding `ids`' rows grouped by domain, computed at its first use and
        shared by every per-domain layer of the forward."""
        self.helpers.add("per_domain")
        name = self.var(f"{ids}.rows")
        if self.emit_forward and name not in self.rows_emitted:
            self.rows_emitted.add(name)
            self.put(self.forward, op, f"{name} = _dwc_domain_rows({self.var(ids)})")
        return name

    def per_domain(self, op: ir.Op, attr: str) -> None:
        x, ids = op.inputs
        self.fwd(op, f"self.{attr}", [self.var(x), self.var(ids), self.domain_rows(op, ids)])

    def op_indexed_linear(self, op: ir.IndexedLinear) -> None:
        attr = self.module_line(op, "indexed_linear", "_DwcIndexedLinear",
                                [str(op.in_features), str(op.out_features), str(op.domains)])
        self.per_domain(op, attr)

    def op_scenario_linear(self, op: ir.ScenarioLinear) -> None:
        args = [str(op.in_features), str(op.out_features), f"cells={op.cells}",
                f"rank={op.rank}", f"bias={op.bias}"]
        if op.v_shared:
            args.append("shared_v=True")
        attr = self.module_line(op, "scenario_linear", "_DwcScenarioLinear", args)
        self.per_domain(op, attr)

    def op_dot(self, op: ir.Dot) -> None:
        a, b = (self.var(i) for i in op.inputs)
        self.fwd(op, f"({a} * {b}).sum(dim=1, keepdim=True)")

    def op_head(self, op: ir.Head) -> None:
        self.fwd(op, _HEAD[op.fn].format(x=self.var(op.inputs[0])))


def _example(spec) -> str:
    if spec.role in ("ids", "sequence"):
        shape = py_tuple(["batch_size", *map(str, spec.shape)])
        return f"torch.randint(0, {spec.vocab}, {shape}, generator=generator)"
    shape = ", ".join(["batch_size", *map(str, spec.shape)])
    if spec.role == "lengths":
        return None  # filled by the template from the sequence it belongs to
    return f"torch.randn({shape}, generator=generator)"


def _target_example(out) -> str:
    if out.loss == "bce":
        return f"torch.randint(0, 2, (batch_size, {out.width}), generator=generator).float()"
    if out.loss == "ce":
        return f"torch.randint(0, {out.width}, (batch_size,), generator=generator)"
    if out.loss == "poisson":
        return (f"torch.poisson(torch.full((batch_size, {out.width}), 2.0), "
                "generator=generator)")
    return f"torch.randn(batch_size, {out.width}, generator=generator)"


def _inputs(graph: Graph) -> list[InputView]:
    inputs = []
    for spec in graph.inputs:
        shape = py_tuple([str(d) for d in spec.shape]) if spec.shape else "()"
        max_len = None
        if spec.role == "lengths":
            seq = next(s for s in graph.inputs if s.name == spec.feature)
            max_len = seq.shape[0]
            example = (f"torch.randint(0, {seq.shape[0] + 1}, (batch_size,), "
                       "generator=generator)")
            doc = f"int64 [B]: number of valid ids in '{spec.feature}' (0 .. {seq.shape[0]})"
        else:
            example = _example(spec)
            dims = ", ".join(["B", *map(str, spec.shape)])
            doc = f"{spec.dtype} [{dims}]"
            if spec.vocab:
                doc += f": ids in [0, {spec.vocab})"
                if spec.role == "sequence":
                    doc += f", padded after '{spec.name}_len' valid ids"
            if spec.scenario:
                doc += " (scenario-sensitive)"
        inputs.append(InputView(q(spec.name), spec.dtype, shape, spec.vocab, spec.role,
                                f"{spec.name}: {doc}", example, max_len))
    return inputs


def _outputs(graph: Graph, b: _Builder) -> tuple[list[OutputView], list[str]]:
    outputs, loss_lines = [], []
    for out in graph.outputs:
        fn, extra = _LOSS[out.loss]
        head = f"total = {'total + ' if loss_lines else ''}{out.weight!r} * {fn}"
        loss_lines += call_lines(head, [f"logits[{q(out.name)}]", f"targets[{q(out.name)}]",
                                        *extra])
        outputs.append(OutputView(
            q(out.name), b.var(out.value), b.var(out.logit),
            f"{out.name}: float32 [B, {out.width}], {out.head} head, loss {out.loss}"
            + (f" (weight {out.weight:g})" if out.weight != 1.0 else ""),
            _target_example(out)))
    return outputs, loss_lines


def build_view(model: Graph, train: Graph, inference: Graph, source: SourceFile | None,
               level: str = "-O2", before_table: Graph | None = None) -> FileView:
    """The view of model.py: the training class (parameters from the model graph, forward from
    the optimised training graph) and the inference class (the folded inference graph)."""
    attrs = attribute_namespace()
    helpers: set[str] = set()
    name = class_name(train.model)

    tb = _Builder(model, source, attrs, helpers)
    tb.emit_forward = False
    for op in model.ops:  # every parameter of the model, whatever the pipeline removed
        tb.lower(op)
    tb.graph, tb.producers, tb.emit_init, tb.emit_forward = train, train.producers(), False, True
    for op in train.ops:
        tb.lower(op)
    t_outputs, loss_lines = _outputs(train, tb)

    ib = _Builder(inference, source, attrs, helpers)
    ib.in_place = True
    ib.group_batch()
    for op in inference.ops:
        ib.lower(op)
    i_outputs, _ = _outputs(inference, ib)

    training = ClassView(name, "training", _summary(model, train), tb.init, tb.forward, t_outputs,
                         _groups(model, attrs), loss_lines,
                         for_inference=_for_inference(name, inference, attrs),
                         scenario_tables=_scenario_tables(before_table or train, inference,
                                                          source, attrs, helpers))
    folded = ClassView(f"{name}Inference", "inference", _summary(inference), ib.init, ib.forward,
                       i_outputs, _groups(inference, attrs), [], ungroup=ib.ungroup)
    return FileView(
        model=train.model,
        base=f"{name}Base",
        spec_name=_safe_doc(str(train.options.get("spec_name", ""))),
        spec_sha256=str(train.options.get("spec_hash", "")),
        version=__version__,
        level=level,
        inputs=_inputs(train),
        output_keys=py_tuple([o.key for o in t_outputs]),
        training=training,
        inference=folded,
        helpers=_helper_views(helpers),
    )


_GENERATOR_INITS = {"hyperfan": "hyperfan", "residual": "residual_init"}
"""A generator's `init` -> the helper that initialises its last layer (none for PyTorch's)."""

def helper_module(name: str) -> str:
    """The module of the runtime helper `name` (the core's, or a layer kind's)."""
    return {**CORE_HELPERS, **layers.helper_modules()}[name]


def _helper_views(helpers: set[str]) -> list[HelperView]:
    """The helpers `helpers` name and every helper they call, in name order (a helper module
    declares what it calls by importing it)."""
    modules = {**CORE_HELPERS, **layers.helper_modules()}
    name_of = {module: name for name, module in modules.items()}
    needed: set[str] = set()
    todo = list(helpers)
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        todo += [name_of[module] for module in helper_source(modules[name])[1]]
    return [HelperView(name, helper_source(modules[name])[0]) for name in sorted(needed)]


def _for_inference(name: str, inference: Graph, attrs: Namespace) -> ForInferenceView:
    """`for_inference()`: the records of every fold in the inference graph, in order."""
    ctx = FoldContext(attrs)
    for op in inference.ops:
        fold = _fold_of(op)
        if fold is not None:
            fold(ctx, op)
    return ForInferenceView(f"{name}Inference", ctx.lines)


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


_FOLDS = {ir.ScenarioTable: _fold_scenario_table, ir.ScenarioLinear: _fold_scenario_linear}
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


def _scenario_tables(train: Graph, inference: Graph, source: SourceFile | None,
                     attrs: Namespace, helpers: set[str]) -> list[ScenarioTableView]:
    """A method per tabulated value computing it for every scenario cell, in order."""
    tables: list[ScenarioTableView] = []
    done: set[str] = set()
    vocab = {s.name: s.vocab for s in train.inputs}
    for op in inference.ops:
        generator = op.tabulated()
        if generator is None or generator in done:
            continue
        done.add(generator)
        needed = train.ancestors(generator)
        sub = _Builder(train, source, attrs, helpers)
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


def _groups(graph: Graph, attrs: Namespace) -> list[str]:
    groups: dict[str, list[str]] = {}
    for op in graph.ops:
        if op.module is None:
            continue
        attr = attrs.create(op.module)
        is_param = isinstance(op, ir.DynamicLinear)  # a static bias: a bare nn.Parameter
        groups.setdefault(op.binding, []).append(
            f"self.{attr}" if is_param else f"*self.{attr}.parameters()")
    lines = []
    for name, params in groups.items():
        one = f'"{name}": [{", ".join(params)}],'
        if 12 + len(one) <= WIDTH:
            lines.append(one)
        else:
            lines += [f'"{name}": [', *(f"    {p}," for p in params), "],"]
    return lines


def _summary(graph: Graph, computed: Graph | None = None) -> list[str]:
    """Resolved hyper-parameters, one line per parameterised op (for the class docstring).

    `computed` is the graph the class's forward runs when it differs from the one that declares
    its parameters (the training form: the model graph declares, the optimised training graph
    computes): each op is described as the forward computes it (e.g. after `decompose`)."""
    lines = []
    runs = computed.producers() if computed is not None else {}
    for declared in graph.ops:
        op = runs.get(declared.result, declared)
        if op.kind in ("input", "lookup", "concat", "head", "add", "activation", "dropout",
                       "stop_gradient", "scenario_index"):
            continue
        attrs = ", ".join(f"{k}={v}" for k, v in op.attrs().items() if k != "slots")
        detail = f"{op.kind}({attrs})" if attrs else op.kind
        if isinstance(op.type, FieldsType | IdsType):
            continue
        entry = (f"{op.result}: {detail} -> {op.type}; params {op.params():,}"
                 + (f", generated/sample {op.generated():,}" if op.generated() else ""))
        lines.extend(textwrap.wrap(entry, WIDTH - INDENT, subsequent_indent="    ",
                                   break_on_hyphens=False))
    return lines
