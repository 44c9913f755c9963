"""Semantic analysis and lowering: a checked walk over the AST that emits IR.

One pass over the statements, top to bottom, resolves names (definition before use), checks
arguments against `signatures.py`, computes widths, tracks which features every value depends on
(so conditions can be checked to be scenario-sensitive), and emits IR ops with their spans. Errors
are collected as diagnostics: a statement with an error is skipped and analysis continues, so one
run reports every independent problem.

Checking and lowering share one walk because every check needs the widths that lowering computes;
docs/architecture.md records this decision.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from dwc import layers
from dwc.diagnostics import Diagnostic, DiagnosticError, Label, did_you_mean
from dwc.ir import ops as ir
from dwc.ir.graph import Graph, InputSpec, OutputSpec
from dwc.ir.types import ExpertsType, FieldsType, IdsType, TableType, VecType
from dwc.parse import ast
from dwc.sema.signatures import LOSSES, SIGNATURES, Param, Signature
from dwc.sema.values import DynamicLayer, Feature, Value
from dwc.source import NO_SPAN, SourceFile, Span


def _reads_self(node: object) -> bool:
    """Whether a `by` reads the layer's own input: `self`, or `self` inside concat(...)."""
    if isinstance(node, ast.Ref):
        return node.name == "self"
    return isinstance(node, ast.Call) and any(_reads_self(a) for a in node.args)


def generator_init(init: str | None, by: object) -> str:
    """A generator's init: the spec's, else `residual` for a condition that reads `self` (the
    generated weights are then a polynomial in the layer's input: a stack of such layers with
    PyTorch's default init overflows) and PyTorch's `default` otherwise."""
    if init is not None:
        return init
    return "residual" if _reads_self(by) else "default"


class _Skip(Exception):
    """Abandons the current statement after its diagnostic has been recorded."""


@dataclass
class _State:
    source: SourceFile
    diagnostics: list[Diagnostic] = field(default_factory=list)
    model: str | None = None
    model_span: Span | None = None
    features: dict[str, Feature] = field(default_factory=dict)
    values: dict[str, Value] = field(default_factory=dict)
    conditions: set[str] = field(default_factory=set)
    defined: dict[str, Span] = field(default_factory=dict)
    ops: list[ir.Op] = field(default_factory=list)
    ssa_names: set[str] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)
    inputs: list[InputSpec] = field(default_factory=list)
    outputs: list[OutputSpec] = field(default_factory=list)
    scenario: tuple[str, ...] = ()
    scenario_cells: int = 0
    scenario_span: Span | None = None
    defaults: dict[str, dict[str, ast.Kwarg]] = field(default_factory=dict)
    feature_values: dict[str, Value] = field(default_factory=dict)
    feature_ids: dict[str, str] = field(default_factory=dict)
    scenario_index: str | None = None
    poisoned: set[str] = field(default_factory=set)
    """Names whose statement had an error: later uses are not reported again."""
    forward_names: dict[str, Span] = field(default_factory=dict)


def elaborate(spec: ast.Spec, source: SourceFile) -> Graph:
    """Check a parsed spec and lower it to IR.

    Raises:
        DiagnosticError: with every error found (DW2xx, DW3xx).
    """
    return _Elaborator(_State(source)).run(spec)


class _Elaborator:
    def __init__(self, state: _State) -> None:
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
            except _Skip:
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
            self.error("DW209", f"model '{s.model}' has no parameters to train",
                       s.outputs[0].span, "computes a fixed function of its inputs",
                       help="put a layer before the head, e.g. 'output o = sigmoid(linear(x, 1))'")
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
              secondary: tuple[Label, ...] = ()) -> None:
        self.s.diagnostics.append(Diagnostic(code, message, Label(span, label), help, secondary))

    def fail(self, *args, **kwargs) -> None:
        self.error(*args, **kwargs)
        raise _Skip

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

    # ------------------------------------------------------------------ arguments
    def bind_args(self, call: ast.Call | ast.Modifier, sig: Signature,
                  defaults: dict[str, ast.Kwarg] | None = None) -> dict[str, object]:
        """Match a call's arguments to its signature; returns name -> AST node (or default)."""
        bound: dict[str, object] = {}
        positional = sig.positional
        args = list(call.args)
        if positional and positional[-1].kind == "values":
            if not args:
                self.fail("DW302", f"'{sig.name}' needs at least one input", call.span,
                          help=f"e.g. {sig.example}")
            bound[positional[-1].name] = tuple(args)
            args = []
        for param, arg in zip(positional, args, strict=False):
            bound[param.name] = arg
        if len(args) > len(positional):
            extra = args[len(positional)]
            self.fail("DW303", f"'{sig.name}' takes {len(positional)} positional "
                      f"argument{'s' if len(positional) != 1 else ''}", extra.span,
                      "unexpected argument", help=f"e.g. {sig.example}")
        seen: dict[str, Span] = {}
        for kw in call.kwargs:
            key = kw.name.text
            param = sig.param(key)
            if param is None:
                names = [p.name for p in sig.params if p.kind != "values"]
                self.fail("DW206", f"'{sig.name}' has no option '{key}'", kw.name.span,
                          "unknown option",
                          help=did_you_mean(key, names) or f"options: {', '.join(names)}")
            if key in seen or key in bound:
                self.fail("DW312", f"option '{key}' is given twice", kw.span, "again here",
                          help="keep one of them")
            seen[key] = kw.span
            bound[key] = kw.value
        for key, kw in (defaults or {}).items():
            bound.setdefault(key, kw.value)
        for param in sig.params:
            if param.name not in bound:
                if param.required:
                    self.fail("DW302", f"'{sig.name}' needs '{param.name}' ({param.doc})",
                              call.span, "missing argument", help=f"e.g. {sig.example}")
                bound[param.name] = param.default
        return bound

    def literal(self, node: object, param: Param, sig: Signature) -> object:
        """Check and convert a literal option value; defaults pass through unchanged."""
        if not isinstance(node, ast.Ref | ast.Number | ast.Factor | ast.Fraction | ast.ListExpr
                          | ast.Call):
            return node
        want = {"int": "an integer", "float": "a number", "bool": "true or false",
                "enum": "one of " + ", ".join(param.choices), "int_list": "a list of integers",
                "feature": "a feature name"}[param.kind]
        bad = f"'{param.name}' of '{sig.name}' must be {want}"
        if param.kind == "int":
            if not isinstance(node, ast.Number) or not isinstance(node.value, int):
                self.fail("DW301", bad, node.span, help=f"e.g. {sig.example}")
            return self.ranged(node.value, node, param, sig)
        if param.kind == "float":
            if not isinstance(node, ast.Number):
                self.fail("DW301", bad, node.span, help=f"e.g. {sig.example}")
            return self.ranged(float(node.value), node, param, sig)
        if param.kind == "bool":
            if not isinstance(node, ast.Ref) or node.name not in ("true", "false"):
                self.fail("DW301", bad, node.span, help=f"e.g. {sig.example}")
            return node.name == "true"
        if param.kind == "enum":
            if not isinstance(node, ast.Ref):
                self.fail("DW301", bad, node.span, help=f"e.g. {sig.example}")
            if node.name not in param.choices:
                self.fail("DW305", f"'{node.name}' is not a valid '{param.name}' for "
                          f"'{sig.name}'", node.span, "not a choice",
                          help=did_you_mean(node.name, param.choices)
                          or f"choose one of: {', '.join(param.choices)}")
            return node.name
        if param.kind == "int_list":
            if not isinstance(node, ast.ListExpr):
                self.fail("DW301", bad, node.span, help=f"e.g. {sig.example}")
            if not node.items and param.default != ():  # only a generator may be linear ([])
                self.fail("DW304", f"'{param.name}' of '{sig.name}' needs at least one width",
                          node.span, "empty list", help=f"e.g. {sig.example}")
            items = []
            for item in node.items:
                if not isinstance(item, ast.Number) or not isinstance(item.value, int):
                    self.fail("DW301", bad, item.span, help=f"e.g. {sig.example}")
                items.append(self.ranged(item.value, item, param, sig))
            return tuple(items)
        if param.kind == "feature":
            if not isinstance(node, ast.Ref):
                self.fail("DW301", bad, node.span, help=f"e.g. {sig.example}")
            feature = self.s.features.get(node.name)
            if feature is None:
                self.unknown(node.name, node.span, self.s.features)
            return feature
        raise AssertionError(param.kind)

    def ranged(self, value, node, param: Param, sig: Signature):
        low_ok = param.min is None or value >= param.min
        high_ok = param.max is None or (value < param.max if param.max_exclusive
                                        else value <= param.max)
        if not (low_ok and high_ok):
            lo = "" if param.min is None else f">= {param.min:g}"
            hi = "" if param.max is None else f"{'<' if param.max_exclusive else '<='} {param.max:g}"
            self.fail("DW304", f"'{param.name}' of '{sig.name}' must be "
                      f"{' and '.join(x for x in (lo, hi) if x)}", node.span,
                      f"is {value}", help=f"e.g. {sig.example}")
        return value

    def unknown(self, name: str, span: Span, candidates) -> None:
        if name in self.s.poisoned:
            raise _Skip  # its own statement was already reported
        later = self.s.forward_names.get(name)
        if later is not None and later.start > span.start:
            line = self.s.source.location(later.start)[0]
            self.fail("DW203", f"'{name}' is used before it is defined", span, "used here",
                      help=f"move the definition on line {line} above this use",
                      secondary=(Label(later, "defined here"),))
        self.fail("DW201", f"unknown name '{name}'", span, "not defined",
                  help=did_you_mean(name, candidates)
                  or f"declare it above this line ('feature {name} : ...' or '{name} = ...')")

    def signature(self, call: ast.Call, context: str) -> Signature:
        sig = SIGNATURES.get(call.func.text)
        if sig is None or sig.context != context:
            options = [s.name for s in SIGNATURES.values() if s.context == context]
            what, article = {"feature": ("feature kind", "a"), "network": ("operation", "an"),
                             "head": ("output head", "an")}[context]
            hint = did_you_mean(call.func.text, options) or f"valid: {', '.join(options)}"
            if sig is not None and sig.context == "head":
                hint = "heads are only valid in 'output' statements"
            self.fail("DW205", f"unknown {what} '{call.func.text}'", call.func.span,
                      f"not {article} {what}", help=hint)
        return sig

    # ------------------------------------------------------------------ features
    def feature(self, stmt: ast.FeatureDecl) -> None:
        self.declare(stmt.name)
        name = stmt.name.text
        sig = self.signature(stmt.kind, "feature")
        if stmt.kind.modifiers:
            mod = stmt.kind.modifiers[0]
            self.fail("DW311", f"'{mod.name.text}' cannot modify a feature", mod.span,
                      help="modifiers follow a linear or mlp call in a value")
        args = self.bind_args(stmt.kind, sig)
        val = {p.name: self.literal(args[p.name], p, sig) for p in sig.params}
        f = Feature(name, sig.name, stmt.span, stmt.scenario is not None)
        if sig.name == "categorical":
            shared: Feature | None = val["share"]
            if shared is not None:
                if val["frozen"]:
                    self.fail("DW313", "'frozen' belongs to the table's own feature",
                              args["frozen"].span, help=f"write 'frozen = true' on '{shared.name}'")
                if shared.kind != "categorical" or shared.table != shared.name:
                    self.fail("DW313", f"'{shared.name}' has no table of its own to share",
                              args["share"].span, help="share the table of a categorical feature "
                              "declared without 'share'")
                for key in ("vocab", "dim"):
                    if val[key] is not None and val[key] != getattr(shared, key):
                        self.fail("DW313", f"'{key} = {val[key]}' differs from the shared table "
                                  f"'{shared.name}' ({key} = {getattr(shared, key)})",
                                  args[key].span, help=f"remove '{key}'; it comes from the table")
                f.vocab, f.dim, f.table = shared.vocab, shared.dim, shared.name
            else:
                for key in ("vocab", "dim"):
                    if val[key] is None:
                        self.fail("DW302", f"categorical feature '{name}' needs '{key}'",
                                  stmt.kind.span, help="e.g. categorical(vocab = 1000, dim = 16)")
                f.vocab, f.dim, f.table = val["vocab"], val["dim"], name
                self.emit(ir.Table(result=self.ssa(f"{name}.table"), type=TableType(f.vocab, f.dim),
                                   span=stmt.span, module=self.module(f"{name}_embedding"),
                                   binding=name, frozen=val["frozen"]))
            self.add_input(InputSpec(name, "int64", (), name, "ids", f.vocab, f.scenario), stmt)
        elif sig.name == "numeric":
            f.width, f.norm = val["width"], val["norm"]
            self.add_input(InputSpec(name, "float32", (f.width,), name, "numeric", None,
                                     f.scenario), stmt)
        else:
            of: Feature = val["of"]
            if of.kind != "categorical":
                self.fail("DW313", f"a sequence is made of a categorical feature's ids, and "
                          f"'{of.name}' is {of.kind}", args["of"].span, "not categorical",
                          help="name the categorical feature whose table the ids index")
            f.vocab, f.dim, f.table = of.vocab, of.dim, of.table
            f.max_len, f.pool = val["max_len"], val["pool"]
            self.add_input(InputSpec(name, "int64", (f.max_len,), name, "sequence", f.vocab,
                                     f.scenario), stmt)
            self.add_input(InputSpec(f"{name}_len", "int64", (), name, "lengths", None,
                                     f.scenario), stmt)
        self.s.features[name] = f

    def add_input(self, spec: InputSpec, stmt: ast.FeatureDecl) -> None:
        for other in self.s.inputs:
            if other.name == spec.name:
                self.fail("DW208", f"input '{spec.name}' of feature '{spec.feature}' collides with "
                          f"input '{other.name}' of feature '{other.feature}'", stmt.name.span,
                          help="rename one of the features")
        self.s.inputs.append(replace(spec, span=stmt.span))

    def feature_value(self, f: Feature, span: Span) -> Value:
        """The network value of a feature (emitted on first use)."""
        cached = self.s.feature_values.get(f.name)
        if cached is not None:
            return cached
        deps = frozenset({f.name})
        if f.kind == "numeric":
            ssa = self.ssa(f"{f.name}.raw" if f.norm != "none" else f.name)
            self.emit(ir.Input(result=ssa, type=VecType(f.width), feature=f.name, span=f.span,
                               binding=f.name))
            if f.norm != "none":
                module = self.module(f"{f.name}_norm") if f.norm == "batch" else None
                raw, ssa = ssa, self.ssa(f.name)
                self.emit(ir.Normalize(result=ssa, inputs=(raw,), type=VecType(f.width),
                                       mode=f.norm, span=f.span, module=module, binding=f.name))
        else:
            table = f"{f.table}.table"
            if f.kind == "categorical":
                ids = self.ids_of(f)
                ssa = self.ssa(f.name)
                self.emit(ir.Lookup(result=ssa, inputs=(table, ids), type=VecType(f.dim),
                                    span=f.span, binding=f.name))
            else:
                ids, lengths = self.ids_of(f), self.s.feature_ids[f"{f.name}_len"]
                ssa = self.ssa(f.name)
                module = self.module(f"{f.name}_attention") if f.pool == "attention" else None
                self.emit(ir.SeqPool(result=ssa, inputs=(table, ids, lengths),
                                     type=VecType(f.dim), mode=f.pool, max_len=f.max_len,
                                     span=f.span, binding=f.name, module=module))
        value = Value(ssa, self.s.ops[-1].type, deps, f.span)  # type: ignore[arg-type]
        self.s.feature_values[f.name] = value
        return value

    def ids_of(self, f: Feature) -> str:
        """The SSA name of a categorical or sequence feature's id input (emitted once)."""
        cached = self.s.feature_ids.get(f.name)
        if cached is not None:
            return cached
        ids = self.ssa(f"{f.name}.ids")
        t = IdsType(f.vocab, f.max_len or None)
        self.emit(ir.Input(result=ids, type=t, feature=f.name, span=f.span, binding=f.name))
        self.s.feature_ids[f.name] = ids
        if f.kind == "sequence":
            lengths = self.ssa(f"{f.name}.len")
            self.emit(ir.Input(result=lengths, type=IdsType(f.max_len + 1),
                               feature=f"{f.name}_len", span=f.span, binding=f.name))
            self.s.feature_ids[f"{f.name}_len"] = lengths
        return ids

    def domain(self, node: object, sig: Signature) -> tuple[str, int]:
        """Resolve a `by`/`per` domain: `scenario` (the cell id) or a categorical scenario feature."""
        if isinstance(node, ast.Ref) and node.name == "scenario":
            if not self.s.scenario:
                self.fail("DW308", "'scenario' is used but no scenario cells are declared",
                          node.span, help="declare them with 'scenarios a * b' above this line")
            if self.s.scenario_index is None:
                feats = [self.s.features[n] for n in self.s.scenario]
                index = self.ssa("scenario")
                self.emit(ir.ScenarioIndex(result=index, inputs=tuple(self.ids_of(f) for f in feats),
                                           type=IdsType(self.s.scenario_cells),
                                           radices=tuple(f.vocab for f in feats),
                                           span=self.s.scenario_span or node.span,
                                           binding="scenario"))
                self.s.scenario_index = index
            return self.s.scenario_index, self.s.scenario_cells
        f = self.s.features.get(node.name) if isinstance(node, ast.Ref) else None
        if f is None and isinstance(node, ast.Ref) and node.name not in self.s.values:
            self.unknown(node.name, node.span, [*self.s.features, "scenario"])
        if f is None or f.kind != "categorical" or not f.scenario:
            self.fail("DW307", f"'{sig.name}' needs a categorical scenario feature or 'scenario' "
                      "as its domain", node.span, "not a scenario id",
                      help="mark an id feature 'scenario', or declare 'scenarios ...' and write "
                      "'by = scenario'")
        return self.ids_of(f), f.vocab

    def scenarios(self, stmt: ast.ScenarioDecl) -> None:
        if self.s.scenario_span is not None:
            self.fail("DW308", "the scenario cells are declared twice", stmt.span,
                      secondary=(Label(self.s.scenario_span, "first declared here"),),
                      help="declare all scenario features on one 'scenarios a * b' line")
        cells = 1
        for name in stmt.features:
            f = self.s.features.get(name.text)
            if f is None:
                self.unknown(name.text, name.span, self.s.features)
            if f.kind != "categorical" or not f.scenario:
                self.fail("DW308", f"'{name.text}' is not a categorical feature marked 'scenario'",
                          name.span, help=f"declare it as 'feature {name.text} : "
                          "categorical(vocab = N, dim = d) scenario'")
            cells *= f.vocab
        self.s.scenario = tuple(n.text for n in stmt.features)
        self.s.scenario_cells = cells
        self.s.scenario_span = stmt.span

    def defaults_decl(self, stmt: ast.DefaultsDecl) -> None:
        for mod in stmt.modifiers:
            sig = SIGNATURES[mod.name.text]
            if mod.args:
                self.fail("DW303", f"'defaults {sig.name}(...)' takes only named options",
                          mod.args[0].span, help=f"e.g. defaults {sig.name}(hidden = [64])"
                          if sig.name == "dynamic" else "e.g. defaults apg(rank = 8)")
            for kw in mod.kwargs:
                param = sig.param(kw.name.text)
                if param is None or param.name == "by":
                    names = [p.name for p in sig.params if p.name != "by"]
                    self.fail("DW206", f"'{sig.name}' has no default option '{kw.name.text}'",
                              kw.name.span, help=did_you_mean(kw.name.text, names)
                              or f"options: {', '.join(names)}")
                if param.kind not in ("rank", "overparam"):  # those are checked per layer
                    self.literal(kw.value, param, sig)
                self.s.defaults.setdefault(sig.name, {})[kw.name.text] = kw

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

    def final(self, binding: str, what: str) -> str:
        """SSA name of a call's result: the binding's own name for the outermost call."""
        return self.ssa(binding if self.depth <= 1 else f"{binding}.{what}")

    def inputs(self, args: dict[str, object], key: str, binding: str) -> list[Value]:
        return [self.value_of(node, binding) for node in args[key]]  # type: ignore[union-attr]

    def no_modifiers(self, call: ast.Call, sig: Signature) -> None:
        if call.modifiers:
            mod = call.modifiers[0]
            self.fail("DW311", f"'{mod.name.text}' cannot modify '{sig.name}'", mod.span,
                      help="'dynamic(...)' applies to linear and mlp")

    def simple(self, call, sig, binding):
        """Bind a one-input op's arguments; returns (literals, the input value)."""
        self.no_modifiers(call, sig)
        args = self.bind_args(call, sig)
        x = self.value_of(args["input"], binding)
        lits = {p.name: self.literal(args[p.name], p, sig) for p in sig.params
                if p.kind not in ("value", "values")}
        return lits, x

    def op_concat(self, call, sig, binding):
        self.no_modifiers(call, sig)
        xs = self.inputs(self.bind_args(call, sig), "inputs", binding)
        width = sum(x.type.width for x in xs)
        ssa = self.final(binding, "concat")
        self.emit(ir.Concat(result=ssa, inputs=tuple(x.ssa for x in xs), type=VecType(width),
                            span=call.span, binding=binding))
        return Value(ssa, VecType(width), frozenset().union(*(x.deps for x in xs)), call.span)

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

    # ------------------------------------------------------------------ layers
    def op_linear(self, call, sig, binding):
        return self.layers(call, sig, binding, single=True)

    def op_mlp(self, call, sig, binding):
        return self.layers(call, sig, binding, single=False)

    def literals(self, args: dict[str, object], sig: Signature) -> dict[str, object]:
        return {p.name: self.literal(args[p.name], p, sig) for p in sig.params
                if p.kind in ("int", "float", "bool", "enum", "int_list", "feature")}

    def modifiers(self, call: ast.Call, sig: Signature) -> dict[str, ast.Modifier]:
        found: dict[str, ast.Modifier] = {}
        for mod in call.modifiers:
            name = mod.name.text
            if name in found:
                self.fail("DW312", f"'{name}' is given twice", mod.span, "again here",
                          help="merge the options into one modifier")
            if not sig.dynamic:
                self.fail("DW311", f"'{name}' cannot modify '{sig.name}'", mod.span,
                          help="'dynamic(...)' applies to linear and mlp")
            if name != "dynamic" and "dynamic" not in found:
                self.fail("DW311", f"'{name}(...)' re-parameterises a dynamic layer", mod.span,
                          "no dynamic(...) before it",
                          help=f"write 'dynamic(by = z) {name}(...)'")
            found[name] = mod
        return found

    def modifier_args(self, mod: ast.Modifier, sig: Signature) -> dict[str, object]:
        """A modifier's arguments bound to its signature, the spec's `defaults` filling in."""
        return self.bind_args(mod, sig, self.s.defaults.get(sig.name))

    def layers(self, call: ast.Call, sig: Signature, binding: str, single: bool) -> Value:
        args = self.bind_args(call, sig)
        x = self.value_of(args["input"], binding)
        lits = self.literals(args, sig)
        if single:
            widths, act, last_act, norm, dropout = (lits["out"],), "none", False, "none", 0.0
        else:
            widths, act = lits["widths"], lits["act"]
            last_act, norm, dropout = lits["last_act"], lits["norm"], lits["dropout"]
            if not widths:
                self.fail("DW304", "'mlp' needs at least one layer width", args["widths"].span,
                          "empty list", help=f"e.g. {sig.example}")
        mods = self.modifiers(call, sig)
        dims = (x.type.width, *widths)
        deps = set(x.deps)
        bias = lits["bias"] if single else True

        if single and args["per"] is not None:
            if mods:
                self.fail("DW311", "per-domain weights and dynamic weights are alternatives",
                          next(iter(mods.values())).span, help="remove 'per' or the modifier")
            ids, domains = self.domain(args["per"], sig)

            def make_fc(i, h, n_in, n_out, ssa):
                self.emit(ir.IndexedLinear(result=ssa, inputs=(h.ssa, ids), type=VecType(n_out),
                                           in_features=n_in, out_features=n_out, domains=domains,
                                           span=call.span, module=self.module(binding),
                                           binding=binding))
        elif "dynamic" not in mods:
            def make_fc(i, h, n_in, n_out, ssa):
                module = self.module(binding if single else f"{binding}_fc{i}")
                self.emit(ir.Linear(result=ssa, inputs=(h.ssa,), type=VecType(n_out),
                                    in_features=n_in, out_features=n_out, bias=bias,
                                    span=call.span, module=module, binding=binding))
        else:
            dyn = mods["dynamic"]
            dsig = SIGNATURES["dynamic"]
            dargs = self.modifier_args(dyn, dsig)
            dl = self.literals(dargs, dsig)
            bias_mode = dl["bias"] if bias else "none"
            # a modifier after dynamic(...) re-parameterises it: its layer kind makes the layers
            reparam = [name for name in mods if name != "dynamic"]
            if reparam:
                layer = DynamicLayer(call, binding, dims, dargs["by"], dl, bias_mode,
                                     generator_init(dl["init"], dargs["by"]), deps)
                name = reparam[0]
                make_fc = layers.layer_modifiers()[name](self, mods[name], SIGNATURES[name],
                                                         layer)
            else:
                make_fc = self.generic_dynamic(dargs["by"], dl, bias_mode, dims, x, binding, dyn,
                                               call, deps)
        h = self.stack(call, binding, x, dims, make_fc, act=act, last_act=last_act, norm=norm,
                       dropout=dropout, single=single)
        return Value(h.ssa, h.type, frozenset(deps), call.span)

    def generic_dynamic(self, by, dl, bias_mode, dims, x, binding, dyn, call, deps):
        """The generic dynamic-weight MLP (docs/models.md): one generator emits every layer's weight
        (then bias), in order. A condition that reads `self` (self-wise, or mix-wise with
        `concat(self, z)`) is each layer's own input, so every layer of an mlp gets its own
        generator reading that layer's input (FuxiCTR's self-wise mode)."""
        if len(dims) > 2 and _reads_self(by):
            return self.self_wise_layers(by, dl, bias_mode, binding, dyn, call, deps)
        z = self.condition(by, x, binding)
        deps |= z.deps
        offset = 0
        slots: list[tuple[ir.Slot, ir.Slot | None]] = []
        for i, (n_in, n_out) in enumerate(zip(dims, dims[1:], strict=False)):
            w = ir.Slot(f"w{i}", offset, (n_in, n_out))
            b = ir.Slot(f"b{i}", w.end, (n_out,)) if bias_mode == "generated" else None
            offset = (b or w).end
            slots.append((w, b))
        gen = self.ssa(f"{binding}.generated")
        self.emit(ir.Generator(result=gen, inputs=(z.ssa,), type=VecType(offset),
                               in_features=z.type.width, hidden=dl["hidden"], act=dl["act"],
                               init=generator_init(dl["init"], by),
                               slots=tuple(t for pair in slots for t in pair if t is not None),
                               span=dyn.span, module=self.module(f"{binding}_generator"),
                               binding=binding))
        single = len(dims) == 2

        def make_fc(i, h, n_in, n_out, ssa):
            w, b = slots[i]
            module = None
            if bias_mode == "static":
                module = self.module(f"{binding}_bias" if single else f"{binding}_bias{i}")
            self.emit(ir.DynamicLinear(result=ssa, inputs=(h.ssa, gen), type=VecType(n_out),
                                       in_features=n_in, out_features=n_out, weight=w,
                                       bias=bias_mode, bias_slot=b, span=call.span, module=module,
                                       binding=binding, layer="" if single else str(i)))
        return make_fc

    def self_wise_layers(self, by, dl, bias_mode, binding, dyn, call, deps):
        """Self-wise layers of an mlp: layer i's generator reads layer i's input (its condition
        built from it) and emits that layer's weight (then bias)."""

        def make_fc(i, h, n_in, n_out, ssa):
            z = self.condition(by, h, binding, tag=str(i))
            deps.update(z.deps)
            w = ir.Slot("w", 0, (n_in, n_out))
            b = ir.Slot("b", w.end, (n_out,)) if bias_mode == "generated" else None
            gen = self.ssa(f"{binding}.generated{i}")
            self.emit(ir.Generator(result=gen, inputs=(z.ssa,), type=VecType((b or w).end),
                                   in_features=z.type.width, hidden=dl["hidden"], act=dl["act"],
                                   init=generator_init(dl["init"], by),
                                   slots=(w, b) if b else (w,), span=dyn.span,
                                   module=self.module(f"{binding}_generator{i}"),
                                   binding=binding))
            module = self.module(f"{binding}_bias{i}") if bias_mode == "static" else None
            self.emit(ir.DynamicLinear(result=ssa, inputs=(h.ssa, gen), type=VecType(n_out),
                                       in_features=n_in, out_features=n_out, weight=w,
                                       bias=bias_mode, bias_slot=b, span=call.span, module=module,
                                       binding=binding, layer=str(i)))
        return make_fc

    def stack(self, call, binding, x: Value, dims, make_fc, *, act, last_act, norm, dropout,
              single=False, gate=None, gate_at="pre_linear") -> Value:
        """Emit a layer stack: fc -> norm -> act -> dropout per layer, gates where placed.

        `make_fc(i, h, n_in, n_out, ssa)` emits layer i's linear op (static, dynamic, star ...);
        `gate(i, h, width)` emits a gate and returns the gated value. The last op gets the
        binding's name.
        """
        h = x
        n_layers = len(dims) - 1
        tag_of = (lambda i: "") if single else str

        def then(op_cls, what, i, width, **attrs):
            nonlocal h
            ssa = self.ssa(f"{binding}.{what}{tag_of(i)}")
            self.emit(op_cls(result=ssa, inputs=(h.ssa,), type=VecType(width), span=call.span,
                             binding=binding, **attrs))
            h = Value(ssa, VecType(width), h.deps, call.span)

        def gated(place, i, width):
            nonlocal h
            if gate is not None and gate_at == place:
                h = gate(i, h, width)

        for i, (n_in, n_out) in enumerate(zip(dims, dims[1:], strict=False)):
            last = i == n_layers - 1
            gated("pre_linear", i, n_in)
            ssa = self.ssa(f"{binding}.fc{tag_of(i)}")
            make_fc(i, h, n_in, n_out, ssa)
            h = Value(ssa, VecType(n_out), h.deps, call.span)
            gated("post_linear", i, n_out)
            if norm != "none":
                then(ir.Norm, "norm", i, n_out, mode=norm,
                     module=self.module(f"{binding}_norm{tag_of(i)}"))
            gated("post_norm", i, n_out)
            if act != "none" and (last_act or not last):
                then(ir.Activation, "act", i, n_out, fn=act)
            gated("post_activation", i, n_out)
            if dropout > 0:
                then(ir.Dropout, "drop", i, n_out, p=dropout)
            gated("post_dropout", i, n_out)
        return self.rename_last(binding, call, h)

    def rename_last(self, binding: str, call: ast.Call, h: Value) -> Value:
        """Give the value a statement computes the statement's own name (for readable code)."""
        last = self.s.ops[-1]
        assert last.result == h.ssa
        final = self.final(binding, call.func.text)
        self.s.ops[-1] = replace(last, result=final)
        self.s.ssa_names.discard(h.ssa)
        return Value(final, h.type, h.deps, h.span)

    def condition(self, node: object, x: Value, binding: str, tag: str = "") -> Value:
        """Resolve `by`: a condition, `self` (the layer's input) or concat(...) of them (mix-wise).

        `tag` is the layer index for a per-layer condition (its SSA name `binding.condition<i>`)."""
        if isinstance(node, ast.Ref) and node.name == "self":
            return x
        if isinstance(node, ast.Call) and node.func.text == "concat" and node.args \
                and not node.kwargs and not node.modifiers:
            parts = [self.condition(a, x, binding, tag) for a in node.args]
            ssa = self.ssa(f"{binding}.condition{tag}")
            width = sum(p.type.width for p in parts)
            self.emit(ir.Concat(result=ssa, inputs=tuple(p.ssa for p in parts),
                                type=VecType(width), span=node.span, binding=binding))
            return Value(ssa, VecType(width), frozenset().union(*(p.deps for p in parts)),
                         node.span)
        if not isinstance(node, ast.Ref):
            self.fail("DW309", "'by' must name a condition, 'self', or concat(...) of them",
                      node.span,  # type: ignore[attr-defined]
                      help="declare 'condition z = ...' and write 'by = z' (or "
                      "'by = concat(self, z)' for mix-wise)")
        if node.name not in self.s.conditions:
            if node.name in self.s.values or node.name in self.s.features:
                self.fail("DW309", f"'{node.name}' is not a condition", node.span,
                          "declared as a value" if node.name in self.s.values else "a feature",
                          help=f"declare it with 'condition {node.name}_z = ...'")
            self.unknown(node.name, node.span, self.s.conditions)
        v = self.s.values[node.name]
        return Value(v.ssa, v.type, v.deps, node.span)

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

    def domain_feature(self, node) -> str:
        return self.s.scenario[0] if node.name == "scenario" else node.name

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
        ssa = self.ssa(name)
        self.emit(ir.Head(result=ssa, inputs=(x.ssa,), type=VecType(x.type.width), fn=sig.name,
                          span=stmt.span, binding=name))
        self.s.outputs.append(OutputSpec(name, ssa, x.ssa, sig.name, loss, weight,
                                         x.type.width, stmt.span))
        self.s.values[name] = Value(ssa, VecType(x.type.width), x.deps, stmt.span)

