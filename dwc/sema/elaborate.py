"""Semantic analysis and lowering: a checked walk over the AST that emits IR.

One pass over the statements, top to bottom, resolves names (definition before use), checks
arguments against `signatures.py`, computes widths, tracks which features every value depends on
(so conditions can be checked to be scenario-sensitive), and emits IR ops with their spans. Errors
are collected as diagnostics: a statement with an error is skipped and analysis continues, so one
run reports every independent problem.

Checking and lowering share one walk because every check needs the widths that lowering computes;
docs/architecture.md records this decision. The walk is one object, `_Elaborator`, in parts: this
module has the driver, naming, the core's expressions and outputs; `dwc.sema.arguments` argument
binding and checking, `dwc.sema.features` features and scenario cells, `dwc.sema.stacks` layer
stacks and dynamic weights, `dwc.sema.state` the walk's state.
"""

from __future__ import annotations

import hashlib

from dwc import layers
from dwc.diagnostics import Diagnostic, DiagnosticError, Fix, Label, did_you_mean
from dwc.ir import ops as ir
from dwc.ir.graph import Graph, OutputSpec
from dwc.ir.types import ExpertsType, FieldsType, VecType
from dwc.parse import ast
from dwc.sema.arguments import Arguments
from dwc.sema.data import DataSpec, data_spec
from dwc.sema.features import Features
from dwc.sema.signatures import LOSSES, SIGNATURES
from dwc.sema.stacks import Layers
from dwc.sema.stacks import generator_init as generator_init  # re-exported
from dwc.sema.state import Skip, State
from dwc.sema.values import Value
from dwc.source import NO_SPAN, SourceFile, Span


def elaborate(spec: ast.Spec, source: SourceFile) -> Graph:
    """Check a parsed spec and lower it to IR.

    Raises:
        DiagnosticError: with every error found (DW2xx, DW3xx).
    """
    return _Elaborator(State(source)).run(spec)


def elaborate_with_data(spec: ast.Spec, source: SourceFile) -> tuple[Graph, DataSpec]:
    """`elaborate`, and the spec's data options (how `dwc data prepare` reads raw logs)."""
    walk = _Elaborator(State(source))
    graph = walk.run(spec)
    return graph, data_spec(walk.s, walk.s.target_columns)


class _Elaborator(Arguments, Features, Layers):
    """The checked walk over one spec. Its parts: arguments (dwc/sema/arguments.py), features and
    scenarios (dwc/sema/features.py), layer stacks (dwc/sema/stacks.py); here the driver, naming,
    the core's expressions and outputs. Layer kinds' lowerings receive it as `el`."""

    def __init__(self, state: State) -> None:
        self.s = state
        self.depth = 0

    # ------------------------------------------------------------------ driver
    def run(self, spec: ast.Spec) -> Graph:
        s = self.s
        # Names defined anywhere, so a use above its definition gets DW203 instead of DW201.
        for stmt in spec.statements:
            name = getattr(stmt, "name", None)
            if isinstance(name, ast.Name) and not isinstance(stmt, ast.ModelDecl):
                s.forward_names.setdefault(name.text, name.span)
        for stmt in spec.statements:
            try:
                self.statement(stmt)
            except Skip:
                name = getattr(stmt, "name", None)
                if isinstance(name, ast.Name):
                    s.poisoned.add(name.text)
        if s.model is None:
            self.error("DW204", "the spec has no 'model' declaration", Span(0, 0),
                       help="start the spec with 'model NAME'")
        if not s.outputs and s.model_span and not any(d.level.value == "error"
                                                      for d in s.diagnostics):
            self.error("DW207", f"model '{s.model}' declares no output", s.model_span,
                       "has no output",
                       help="add e.g. 'output ctr = sigmoid(linear(h, 1)) loss = bce'")
        if s.outputs and not any(op.params() for op in s.ops) and not any(
                d.level.value == "error" for d in s.diagnostics):
            out = s.outputs[0]
            inner = s.source.text[out.span.start:out.span.end].split("(", 1)[-1].rsplit(")", 1)[0]
            layer = f"linear({inner}, {out.width})" if inner.isidentifier() else \
                f"linear(..., {out.width})"
            self.error("DW209", f"model '{s.model}' has no parameters to train",
                       out.span, "computes a fixed function of its inputs",
                       help=f"put a layer before the head, e.g. 'output {out.name} = "
                            f"{out.head}({layer})'")
        errors = [d for d in s.diagnostics if d.level.value == "error"]
        if errors:
            raise DiagnosticError(s.diagnostics)
        spec_hash = hashlib.sha256(s.source.text.encode()).hexdigest()
        return Graph(
            model=s.model or "model",
            ops=tuple(s.ops),
            inputs=tuple(s.inputs),
            outputs=tuple(s.outputs),
            scenario=s.scenario,
            scenario_cells=s.scenario_cells,
            scenario_span=s.scenario_span or NO_SPAN,
            options={"spec_hash": spec_hash, "spec_name": s.source.name},
        )

    def error(self, code: str, message: str, span: Span, label: str = "", help: str = "",
              secondary: tuple[Label, ...] = (), fixes: tuple[Fix, ...] = ()) -> None:
        self.s.diagnostics.append(Diagnostic(code, message, Label(span, label), help, secondary,
                                             fixes=fixes))

    def fail(self, *args, **kwargs) -> None:
        self.error(*args, **kwargs)
        raise Skip

    def statement(self, stmt: ast.Statement) -> None:
        match stmt:
            case ast.ModelDecl():
                if self.s.model is not None:
                    self.fail("DW204", "a spec declares exactly one model", stmt.span,
                              "second model declaration", help="remove this line",
                              secondary=(Label(self.s.model_span, "first declared here"),))
                self.s.model, self.s.model_span = stmt.name.text, stmt.name.span
            case ast.FeatureDecl():
                self.feature(stmt)
            case ast.ScenarioDecl():
                self.scenarios(stmt)
            case ast.DefaultsDecl():
                self.defaults_decl(stmt)
            case ast.ConditionDecl():
                self.declare(stmt.name)
                value = self.value_of(stmt.value, stmt.name.text)
                scenario_deps = {d for d in value.deps if self.s.features[d].scenario}
                if not scenario_deps:
                    self.fail("DW314", f"condition '{stmt.name.text}' reads no scenario-sensitive "
                              "feature", stmt.value.span, "depends only on ordinary features",
                              help="mark a feature with 'scenario' "
                              "(e.g. 'feature country : categorical(vocab = 32, dim = 8) scenario') "
                              "and use it here")
                self.bind(stmt.name, value)
                self.s.conditions.add(stmt.name.text)
            case ast.LetDecl():
                self.declare(stmt.name)
                self.bind(stmt.name, self.value_of(stmt.value, stmt.name.text))
            case ast.OutputDecl():
                self.output(stmt)

    def declare(self, name: ast.Name) -> None:
        first = self.s.defined.get(name.text)
        if first is not None:
            self.fail("DW202", f"'{name.text}' is already defined", name.span, "defined again here",
                      help="choose a new name; values are bound once",
                      secondary=(Label(first, "first defined here"),))
        self.s.defined[name.text] = name.span

    def bind(self, name: ast.Name, value: Value) -> None:
        self.s.values[name.text] = value

    # ------------------------------------------------------------------ naming
    def ssa(self, hint: str) -> str:
        name, n = hint, 1
        while name in self.s.ssa_names:
            n += 1
            name = f"{hint}.{n}"
        self.s.ssa_names.add(name)
        return name

    def module(self, hint: str) -> str:
        name, n = hint, 1
        while name in self.s.modules:
            n += 1
            name = f"{hint}{n}"
        self.s.modules.add(name)
        return name

    def emit(self, op: ir.Op) -> ir.Op:
        self.s.ops.append(op)
        return op

    def final(self, binding: str, what: str) -> str:
        """SSA name of a call's result: the binding's own name for the outermost call."""
        return self.ssa(binding if self.depth <= 1 else f"{binding}.{what}")

    # ------------------------------------------------------------------ expressions
    def value_of(self, expr: ast.Expr, binding: str, want_head: bool = False) -> Value:
        if isinstance(expr, ast.Ref):
            if expr.name in self.s.values:
                v = self.s.values[expr.name]
                return Value(v.ssa, v.type, v.deps, expr.span)
            f = self.s.features.get(expr.name)
            if f is not None:
                return self.feature_value(f, expr.span)
            self.unknown(expr.name, expr.span, [*self.s.values, *self.s.features])
        if not isinstance(expr, ast.Call):
            self.fail("DW307", "expected a network value (a feature, a value or a call)",
                      expr.span, "not a value",
                      help="write a feature or value name, or an operation like linear(x, 8)")
        sig = self.signature(expr, "network")
        lower = layers.lowerings().get(sig.name)  # a layer kind's (dwc/layers/), else the core's
        self.depth += 1
        try:
            if lower is not None:
                return lower(self, expr, sig, binding)
            return getattr(self, f"op_{sig.name}")(expr, sig, binding)
        finally:
            self.depth -= 1

    def op_concat(self, call, sig, binding):
        self.no_modifiers(call, sig)
        xs = self.inputs(self.bind_args(call, sig), "inputs", binding)
        width = sum(x.type.width for x in xs)
        ssa = self.final(binding, "concat")
        self.emit(ir.Concat(result=ssa, inputs=tuple(x.ssa for x in xs), type=VecType(width),
                            span=call.span, binding=binding))
        return Value(ssa, VecType(width), frozenset().union(*(x.deps for x in xs)), call.span)

    def op_slice(self, call, sig, binding):
        self.no_modifiers(call, sig)
        args = self.bind_args(call, sig)
        x = self.value_of(args["input"], binding)
        lits = self.literals(args, sig)
        start, width = lits["start"], lits["width"]
        if isinstance(x.type, ExpertsType):
            self.fail("DW307", "'slice' takes columns of a flat value", args["input"].span,
                      f"is {x.type}", help="mix the experts first, e.g. mix(e, x)")
        if start + width > x.type.width:
            node = args["start"] if start >= x.type.width else args["width"]
            self.fail("DW304", f"'slice' of a width-{x.type.width} value ends at column "
                      f"{x.type.width - 1}", node.span,  # type: ignore[attr-defined]
                      f"columns {start}..{start + width - 1}",
                      help=f"take columns within 0..{x.type.width - 1}")
        return self.unary(ir.Slice, call, x, binding, type_=VecType(width), start=start)

    def op_fields(self, call, sig, binding):
        self.no_modifiers(call, sig)
        xs = self.inputs(self.bind_args(call, sig), "inputs", binding)
        dims: list[int] = []
        for x in xs:
            dims.extend(x.type.dims if isinstance(x.type, FieldsType) else (x.type.width,))
        ssa = self.final(binding, "fields")
        t = FieldsType(tuple(dims))
        self.emit(ir.Concat(result=ssa, inputs=tuple(x.ssa for x in xs), type=t, span=call.span,
                            binding=binding))
        return Value(ssa, t, frozenset().union(*(x.deps for x in xs)), call.span)

    def op_add(self, call, sig, binding):
        self.no_modifiers(call, sig)
        xs = self.inputs(self.bind_args(call, sig), "inputs", binding)
        first = xs[0]
        for x, node in zip(xs[1:], call.args[1:], strict=False):
            if x.type.width != first.type.width:
                self.fail("DW306", f"cannot add width {x.type.width} to width {first.type.width}",
                          node.span, f"width {x.type.width}",
                          secondary=(Label(call.args[0].span, f"width {first.type.width}"),),
                          help="project one side with linear(..., "
                          f"{first.type.width}) so the widths meet")
        ssa = self.final(binding, "add")
        t = VecType(first.type.width)
        self.emit(ir.Add(result=ssa, inputs=tuple(x.ssa for x in xs), type=t, span=call.span,
                         binding=binding))
        return Value(ssa, t, frozenset().union(*(x.deps for x in xs)), call.span)

    def unary(self, op_cls, call, x: Value, binding: str, type_=None, **attrs) -> Value:
        t = type_ or (x.type if isinstance(x.type, VecType) else VecType(x.type.width))
        ssa = self.final(binding, call.func.text)
        self.emit(op_cls(result=ssa, inputs=(x.ssa,), type=t, span=call.span, binding=binding,
                         **attrs))
        return Value(ssa, t, x.deps, call.span)

    def op_activation(self, call, sig, binding):
        lits, x = self.simple(call, sig, binding)
        return self.unary(ir.Activation, call, x, binding, fn=lits["fn"])

    def op_layer_norm(self, call, sig, binding):
        _, x = self.simple(call, sig, binding)
        return self.unary(ir.Norm, call, x, binding, mode="layer",
                          module=self.module(f"{binding}_norm"))

    def op_batch_norm(self, call, sig, binding):
        _, x = self.simple(call, sig, binding)
        return self.unary(ir.Norm, call, x, binding, mode="batch",
                          module=self.module(f"{binding}_norm"))

    def op_dropout(self, call, sig, binding):
        lits, x = self.simple(call, sig, binding)
        return self.unary(ir.Dropout, call, x, binding, p=lits["p"])

    def op_stop_gradient(self, call, sig, binding):
        _, x = self.simple(call, sig, binding)
        return self.unary(ir.StopGradient, call, x, binding, type_=x.type)

    # ------------------------------------------------------------------ seed-model layers
    def op_dot(self, call, sig, binding):
        self.no_modifiers(call, sig)
        xs = self.inputs(self.bind_args(call, sig), "inputs", binding)
        if len(xs) != 2 or xs[0].type.width != xs[1].type.width:
            self.fail("DW306", "'dot' takes two values of equal width", call.span,
                      f"widths {', '.join(str(x.type.width) for x in xs)}",
                      help="e.g. dot(user_vector, item_vector)")
        ssa = self.final(binding, "dot")
        self.emit(ir.Dot(result=ssa, inputs=(xs[0].ssa, xs[1].ssa), type=VecType(1),
                         in_features=xs[0].type.width, span=call.span, binding=binding))
        return Value(ssa, VecType(1), xs[0].deps | xs[1].deps, call.span)

    def experts_arg(self, node, binding) -> Value:
        """The value `node` names, which must be of kind experts (layer kinds that read one)."""
        e = self.value_of(node, binding)
        if not isinstance(e.type, ExpertsType):
            self.fail("DW307", "expected an experts value", node.span, f"is {e.type}",
                      help="create one with experts(x, count, [widths])")
        return e

    # ------------------------------------------------------------------ outputs
    def output(self, stmt: ast.OutputDecl) -> None:
        self.declare(stmt.name)
        name = stmt.name.text
        call = stmt.value
        if not isinstance(call, ast.Call) or SIGNATURES.get(call.func.text, None) is None \
                or SIGNATURES[call.func.text].context != "head":
            heads = [s.name for s in SIGNATURES.values() if s.context == "head"]
            self.fail("DW310", f"output '{name}' must be a head over a value", stmt.value.span,
                      "not a head", help=f"wrap it in one of {', '.join(heads)}, e.g. "
                      "'sigmoid(linear(h, 1))'")
        sig = SIGNATURES[call.func.text]
        self.no_modifiers(call, sig)
        args = self.bind_args(call, sig)
        self.depth += 1  # the head is the outermost call; what it wraps gets derived names
        try:
            x = self.value_of(args["input"], name)
        finally:
            self.depth -= 1
        loss = stmt.loss.text if stmt.loss else next(k for k, v in LOSSES.items() if v == sig.name)
        if loss not in LOSSES:
            self.fail("DW310", f"unknown loss '{loss}'", stmt.loss.span, "not a loss",
                      help=did_you_mean(loss, LOSSES) or f"losses: {', '.join(LOSSES)}")
        if sig.name == "softmax" and x.type.width < 2:
            self.fail("DW306", "softmax over a single logit is always 1", args["input"].span,
                      "width 1", help="use sigmoid for binary targets, or more classes")
        weight = float(stmt.weight.value) if stmt.weight else 1.0
        self.target_column(stmt)
        ssa = self.ssa(name)
        self.emit(ir.Head(result=ssa, inputs=(x.ssa,), type=VecType(x.type.width), fn=sig.name,
                          span=stmt.span, binding=name))
        self.s.outputs.append(OutputSpec(name, ssa, x.ssa, sig.name, loss, weight,
                                         x.type.width, stmt.span))
        self.s.values[name] = Value(ssa, VecType(x.type.width), x.deps, stmt.span)
