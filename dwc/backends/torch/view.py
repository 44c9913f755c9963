"""The view model of a generated torch module: plain data the template only loops over.

`build_view` lowers the model, training and inference graphs through the builder (builder.py)
into the two classes' constructor and forward blocks, adds the fold records of `for_inference()`
and the scenario tables (folds.py), the inputs and outputs, and the runtime helpers to inline.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from dwc import __version__, cost, layers
from dwc.backends.torch.builder import Block, Builder
from dwc.backends.torch.folds import (
    ForInferenceView,
    ScenarioTableView,
    for_inference_view,
    scenario_table_views,
)
from dwc.backends.torch.helpers import CORE as CORE_HELPERS
from dwc.backends.torch.inline import helper_source
from dwc.backends.torch.layout import INDENT, WIDTH, call_lines, py_tuple, q, safe_doc
from dwc.backends.torch.naming import Namespace, attribute_namespace, class_name
from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.ir.types import FieldsType, IdsType
from dwc.source import SourceFile

__all__ = ["Block", "Builder", "ClassView", "FileView", "ForInferenceView", "HelperView",
           "ScenarioTableView", "build_view", "call_lines", "q"]

_LOSS = {
    "bce": ("F.binary_cross_entropy_with_logits", ()),
    "ce": ("F.cross_entropy", ()),
    "mse": ("F.mse_loss", ()),
    "poisson": ("F.poisson_nll_loss", ("log_input=True",)),
}


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
    chunk_rows: int | None = None
    """Rows per chunk a large batch runs in (the inference class; `dwc.cost.chunk_rows`)."""
    floats_per_sample: str = ""
    """What the form materialises per sample, as the chunking's docstring states it."""
    auxiliary_losses: bool = False
    """`loss()` also adds layers' auxiliary training losses (regularisers)."""


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
    def ranged(self) -> bool:
        """Whether any input has a range to check (ids, sequence lengths)."""
        return any(i.vocab or i.max_len is not None for i in self.inputs)

    @property
    def numeric(self) -> bool:
        """Whether any input is floats (checked against the module's float dtype)."""
        return any(i.role == "numeric" for i in self.inputs)


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


def _outputs(graph: Graph, b: Builder) -> tuple[list[OutputView], list[str]]:
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

    tb = Builder(model, source, attrs, helpers)
    tb.emit_forward = False
    for op in model.ops:  # every parameter of the model, whatever the pipeline removed
        tb.lower(op)
    tb.graph, tb.producers, tb.emit_init, tb.emit_forward = train, train.producers(), False, True
    for op in train.ops:
        tb.lower(op)
    t_outputs, loss_lines = _outputs(train, tb)
    for attr, comment in tb.loss_terms.items():
        loss_lines += [f"# {comment}: its auxiliary training loss",
                       f"total = total + self.{attr}.dwc_auxiliary_loss()"]

    ib = Builder(inference, source, attrs, helpers)
    ib.in_place = ib.inference = True
    ib.group_batch()
    for op in inference.ops:
        ib.lower(op)
    i_outputs, _ = _outputs(inference, ib)

    folds = for_inference_view(name, inference, attrs)
    training = ClassView(name, "training", _summary(model, train), tb.init, tb.forward, t_outputs,
                         _groups(model, attrs), loss_lines,
                         for_inference=folds,
                         scenario_tables=scenario_table_views(before_table or train, folds.tables,
                                                              source, attrs, helpers),
                         auxiliary_losses=bool(tb.loss_terms))
    folded = ClassView(f"{name}Inference", "inference", _summary(inference), ib.init, ib.forward,
                       i_outputs, _groups(inference, attrs), [], ungroup=ib.ungroup,
                       chunk_rows=cost.chunk_rows(inference),
                       floats_per_sample=f"{cost.total(inference).activation_floats_per_sample:,}")
    return FileView(
        model=train.model,
        base=f"{name}Base",
        spec_name=safe_doc(str(train.options.get("spec_name", ""))),
        spec_sha256=str(train.options.get("spec_hash", "")),
        version=__version__,
        level=level,
        inputs=_inputs(train),
        output_keys=py_tuple([o.key for o in t_outputs]),
        training=training,
        inference=folded,
        helpers=_helper_views(helpers),
    )


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
        # a count stays with its label ("params 408"): joined by a no-break space while wrapping
        entry = (f"{op.result}: {detail} -> {op.type}; params\xa0{op.params():,}"
                 + (f", generated/sample\xa0{op.generated():,}" if op.generated() else ""))
        lines.extend(line.replace("\xa0", " ") for line in textwrap.wrap(
            entry, WIDTH - INDENT, subsequent_indent="    ", break_on_hyphens=False))
    return lines
