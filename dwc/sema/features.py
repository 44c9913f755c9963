"""Features and scenario cells in the checked walk: `feature` declarations (their inputs and
embedding tables), a feature's network value (emitted on first use), the `scenarios` declaration
and the `by`/`per` domains layer kinds resolve against it (`el.domain`, `el.domain_feature`).

`Features` is a part of the elaborator (`dwc.sema.elaborate._Elaborator`).
"""

from __future__ import annotations

from dataclasses import replace

from dwc.diagnostics import Edit, Fix, Label
from dwc.ir import ops as ir
from dwc.ir.graph import InputSpec
from dwc.ir.types import IdsType, TableType, VecType
from dwc.parse import ast
from dwc.sema.signatures import Signature
from dwc.sema.state import State
from dwc.sema.values import Feature, Value
from dwc.source import Span


class Features:
    """Feature and scenario declarations, mixed into the elaborator (its state is `self.s`)."""

    s: State

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
        f.column = val["column"] or ""
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
                for key in ("encoding", "min_count"):  # the vocabulary is the table's
                    if isinstance(args[key], ast.Ref | ast.Number) and \
                            val[key] != getattr(shared, key):
                        self.fail("DW343", f"'{key} = {val[key]}' differs from the shared table "
                                  f"'{shared.name}' ({key} = {getattr(shared, key)})",
                                  args[key].span, help=f"remove '{key}'; '{name}' maps its values "
                                  f"through the vocabulary of '{shared.name}'")
                f.encoding, f.min_count = shared.encoding, shared.min_count
            else:
                for key in ("vocab", "dim"):
                    if val[key] is None:
                        self.fail("DW302", f"categorical feature '{name}' needs '{key}'",
                                  stmt.kind.span, help="e.g. categorical(vocab = 1000, dim = 16)")
                f.vocab, f.dim, f.table = val["vocab"], val["dim"], name
                f.encoding, f.min_count = val["encoding"], val["min_count"]
                if f.encoding == "hash" and f.vocab < 2:
                    self.fail("DW344", f"'encoding = hash' needs vocab >= 2 (it is {f.vocab})",
                              args["vocab"].span, help="id 0 is reserved for nulls: values hash "
                              "into 1 .. vocab - 1; raise vocab")
                if f.encoding == "hash" and f.min_count > 1:
                    self.fail("DW345", f"'min_count = {f.min_count}' has no effect with "
                              "'encoding = hash'", args["min_count"].span,
                              help="hashing keeps every value; remove min_count or use "
                              "encoding = vocabulary")
                self.emit(ir.Table(result=self.ssa(f"{name}.table"), type=TableType(f.vocab, f.dim),
                                   span=stmt.span, module=self.module(f"{name}_embedding"),
                                   binding=name, frozen=val["frozen"]))
            self.add_input(InputSpec(name, "int64", (), name, "ids", f.vocab, f.scenario), stmt)
        elif sig.name == "numeric":
            f.width, f.norm, f.fill = val["width"], val["norm"], val["fill"]
            self.add_input(InputSpec(name, "float32", (f.width,), name, "numeric", None,
                                     f.scenario), stmt)
        else:
            of: Feature = val["of"]
            if of.kind != "categorical":
                self.fail("DW313", f"a sequence is made of a categorical feature's ids, and "
                          f"'{of.name}' is {of.kind}", args["of"].span, "not categorical",
                          help="name the categorical feature whose table the ids index")
            f.vocab, f.dim, f.table = of.vocab, of.dim, of.table
            f.max_len, f.pool, f.splitter = val["max_len"], val["pool"], val["splitter"]
            self.add_input(InputSpec(name, "int64", (f.max_len,), name, "sequence", f.vocab,
                                     f.scenario), stmt)
            self.add_input(InputSpec(f"{name}_len", "int64", (), name, "lengths", None,
                                     f.scenario), stmt)
        self.s.features[name] = f

    def target_column(self, stmt: ast.OutputDecl) -> None:
        """Record an output's target column (DW346 when a feature reads the same column)."""
        column = stmt.column.value if stmt.column is not None else stmt.name.text
        span = stmt.column.span if stmt.column is not None else stmt.name.span
        if stmt.column is not None and not column:
            self.fail("DW342", f"'column' of output '{stmt.name.text}' is empty", span,
                      "empty string", help="leave 'column' out to read the column named like "
                      "the output")
        for f in self.s.features.values():
            if (f.column or f.name) == column:
                self.fail("DW346", f"output '{stmt.name.text}' reads its target from column "
                          f"'{column}', which feature '{f.name}' reads too", span,
                          "the target's column", secondary=(Label(f.span, "read here"),),
                          help="the label would be an input of the model; name the target's own "
                          "column with column = \"...\"")
        self.s.target_columns[stmt.name.text] = column

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

    # ------------------------------------------------------------------ scenarios
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
                mark = (Fix(f"mark '{name.text}' scenario", (Edit(Span(f.span.end, f.span.end),
                                                                   " scenario"),)),)
                self.fail("DW308", f"'{name.text}' is not a categorical feature marked 'scenario'",
                          name.span, help=f"declare it as 'feature {name.text} : "
                          "categorical(vocab = N, dim = d) scenario'",
                          fixes=mark if f.kind == "categorical" else ())
            cells *= f.vocab
        self.s.scenario = tuple(n.text for n in stmt.features)
        self.s.scenario_cells = cells
        self.s.scenario_span = stmt.span

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

    def domain_feature(self, node) -> str:
        return self.s.scenario[0] if node.name == "scenario" else node.name
