"""The builder that lowers IR ops to the generated module's code: constructor lines (parameters,
named by the op's stable `module` name) and forward lines (locals named after SSA values), each
block headed by a comment pointing back to the spec line it came from. Layer kinds emit through
its API (`module_line`, `fwd`, `var`, `attr`, `slot`, `per_domain` ...); the core ops' emitters
are its `op_<kind>` methods. All identifiers come from `naming.Namespace`; the only spec-derived
text placed in code is validated names and numbers, and strings go through `q()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dwc import cost, layers
from dwc.backends.torch.helpers import CORE as CORE_HELPERS
from dwc.backends.torch.inline import init_parameters
from dwc.backends.torch.layout import _KEYWORD, Arg, Keyword, call_lines, q
from dwc.backends.torch.naming import Namespace
from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.ir.types import TableType
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
@dataclass
class Block:
    """Lines of code lowered from one spec statement, with the comment that names it."""

    comment: str
    lines: list[str] = field(default_factory=list)


class Builder:
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
        self.inference = False
        """Lowering the inference class: ops that for_inference() fills read their folded
        parameters (a fused generator's stacked layer) instead of the training ones, and
        linear layers and lookups are called in functional form (F.linear, F.embedding): at
        B = 1 nn.Module's call machinery is a measurable share of a served forward."""
        self.rows_emitted: set[str] = set()
        """Locals already holding a domain's grouped rows in the forward being emitted."""
        self.slot_index: dict[str, dict[str, int]] = {}
        """generator SSA -> slot name -> index into its `torch.split` pieces."""
        self.loss_terms: dict[str, str] = {}
        """Auxiliary training losses `loss()` adds: attribute -> the spec line's comment."""
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

    def auxiliary_loss(self, op: ir.Op, attr: str) -> None:
        """`loss()` adds `self.<attr>.dwc_auxiliary_loss()`: the extra training loss (a
        regulariser, already weighted) that the module computed in its last forward."""
        self.loss_terms.setdefault(attr, self.comment(op))

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
        attr = self.table_attr(table)
        if self.inference:  # the functional form skips nn.Module's call machinery (B = 1 costs)
            self.fwd(op, "F.embedding", [self.var(ids), f"self.{attr}.weight"])
        else:
            self.fwd(op, f"self.{attr}({self.var(ids)})")

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

    def op_slice(self, op: ir.Slice) -> None:
        self.fwd(op, f"{self.var(op.inputs[0])}[:, {op.start}:{op.start + op.type.width}]")

    def op_linear(self, op: ir.Linear) -> None:
        attr = self.attr(op)
        bias = "" if op.bias else ", bias=False"
        self.init_line(op, f"self.{attr} = nn.Linear({op.in_features}, {op.out_features}{bias})")
        if self.inference:
            self.functional_linear(op, attr, op.bias)
        else:
            self.fwd(op, f"self.{attr}({self.var(op.inputs[0])})")

    def op_norm_folded_linear(self, op: ir.NormFoldedLinear) -> None:
        """A linear layer with a batch norm folded in: an nn.Linear whose weights
        for_inference() computes (inference only)."""
        assert self.inference, op
        self.op_linear(op)

    def functional_linear(self, op: ir.Op, attr: str, bias: bool) -> None:
        """`F.linear` of the op's first input with the nn.Linear `self.<attr>`'s parameters: the
        inference class's form, which skips nn.Module's call machinery (a measurable share of a
        served forward at B = 1)."""
        self.fwd(op, "F.linear", [self.var(op.inputs[0]), f"self.{attr}.weight",
                                  f"self.{attr}.bias" if bias else "None"])

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
        if self.inference:  # one stacked layer, filled by for_inference()
            attr = self.attr(op)
            self.init_line(op, f"self.{attr} = nn.Linear({op.parts[0].in_features}, "
                               f"{op.type.width})")
            self.functional_linear(op, attr, bias=True)
            self.split_slots(op)
            return
        attrs = []
        for part in op.parts:
            attrs.append(self.attrs.create(part.module))
            gen = ir.Generator(result=op.result, inputs=op.inputs, type=ir.VecType(part.out_features),
                               in_features=part.in_features, init=part.init, slots=part.slots,
                               module=part.module, span=op.span, binding=op.binding)
            self.generator_init(gen)
        if not self.emit_forward:
            return
        # the training class (a scenario table's method, run once by for_inference()): the
        # parts' weights side by side
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


_GENERATOR_INITS = {"hyperfan": "hyperfan", "residual": "residual_init"}
"""A generator's `init` -> the helper that initialises its last layer (none for PyTorch's)."""

def helper_module(name: str) -> str:
    """The module of the runtime helper `name` (the core's, or a layer kind's)."""
    return {**CORE_HELPERS, **layers.helper_modules()}[name]


