"""The lint rules. Each rule has a code (registered in dwc/diagnostics/codes.py), docs in four
parts (What / Why / Example / Use instead; docs/lint.md is generated from them) and a `check`
that yields diagnostics for one spec.

Rules see the parsed AST, the lowered IR and the IR after the model passes (so the cost model
knows APG ranks), and the settings (`[tool.dwc]` in pyproject.toml, CLI flags).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from dwc.cost import Cost, total
from dwc.diagnostics import Diagnostic, DiagnosticError, Label
from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.parse import ast, parse
from dwc.sema.elaborate import elaborate
from dwc.sema.signatures import LOSSES
from dwc.source import SourceFile, Span


@dataclass
class LintContext:
    source: SourceFile
    spec: ast.Spec
    graph: Graph
    """After lowering."""
    model: Graph
    """After the model passes (APG knobs carried out)."""
    batch: int
    memory_budget_mib: int
    huge_vocab: int
    scenario_max_vocab: int

    def feature_decl(self, name: str) -> ast.FeatureDecl | None:
        return next((s for s in self.spec.statements
                     if isinstance(s, ast.FeatureDecl) and s.name.text == name), None)

    def scenario_features(self) -> set[str]:
        return {s.feature for s in self.graph.inputs if s.scenario}

    def vocab(self, feature: str) -> int | None:
        return next((s.vocab for s in self.graph.inputs if s.name == feature), None)

    @cached_property
    def inference_cost(self) -> Cost:
        """Costs of the -O2 inference graph (what `dwc explain` reports as inference)."""
        return _inference_cost(self.graph)

    def recheck(self, text: str) -> tuple[ast.Spec, Graph] | Diagnostic:
        """Parse and check an edited copy of the spec: its AST and graph, or its first error."""
        source = SourceFile(self.source.name, text)
        try:
            spec = parse(source)
            return spec, elaborate(spec, source)
        except DiagnosticError as error:
            return error.diagnostics[0]


def _inference_cost(graph: Graph) -> Cost:
    from dwc.driver import optimize

    return total(optimize(graph, level=2)[2])


def _edit(text: str, span: Span, replacement: str) -> str:
    return text[:span.start] + replacement + text[span.end:]


def _without_mark(text: str, decl: ast.FeatureDecl) -> str:
    """The spec text with the `scenario` mark of a feature (and the blank before it) removed."""
    start = decl.scenario.start
    while start > decl.kind.span.end and text[start - 1] in " \t":
        start -= 1
    return _edit(text, Span(start, decl.scenario.end), "")


@dataclass(frozen=True)
class Rule:
    code: str
    what: str
    why: str
    example: str
    use_instead: str

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:  # pragma: no cover - abstract
        raise NotImplementedError

    def diag(self, message: str, label: Label, help: str, *secondary: Label) -> Diagnostic:
        return Diagnostic(self.code, message, label, help, tuple(secondary))


class UnusedFeature(Rule):
    def check(self, ctx):
        referenced = {ref for stmt in ctx.spec.statements for ref in _refs(stmt)}
        for stmt in ctx.spec.statements:
            if isinstance(stmt, ast.ScenarioDecl):
                referenced.update(n.text for n in stmt.features)
        for stmt in ctx.spec.statements:
            if isinstance(stmt, ast.FeatureDecl) and stmt.name.text not in referenced:
                yield self.diag(f"feature '{stmt.name.text}' is never used", Label(stmt.name.span,
                                "declared here, read nowhere"),
                                "use it in a value or condition, or remove the declaration")


def _condition_features(g: Graph) -> dict[str, ir.Op]:
    """Features read by anything that adapts weights: generators, gates, domains."""
    found: dict[str, ir.Op] = {}
    for op in g.ops:
        for root in op.conditioning_inputs():
            for feature in g.source_features(root):
                found.setdefault(feature, op)
    return found


class ScenarioFeatureWithoutCondition(Rule):
    def check(self, ctx):
        used = set(_condition_features(ctx.model)) | set(ctx.graph.scenario)
        for name in sorted(ctx.scenario_features()):
            decl = ctx.feature_decl(name)
            if name not in used and decl is not None and decl.scenario is not None:
                yield self.diag(
                    f"scenario-sensitive feature '{name}' conditions nothing",
                    Label(decl.scenario, "marked scenario here"), _mark_advice(ctx, decl))


def _mark_advice(ctx: LintContext, decl: ast.FeatureDecl) -> str:
    """How to resolve DW502: each edit offered verbatim is checked on an edited copy of the spec,
    so following it cannot produce an error (dropping the mark fails, e.g., when a condition reads
    no other scenario feature: DW314)."""
    from dwc.driver import optimize

    name = decl.name.text
    text = ctx.source.text
    options = []
    for stmt in ctx.spec.statements:
        value = getattr(stmt, "value", None)
        if not isinstance(stmt, ast.ConditionDecl) or not isinstance(value, ast.Call) \
                or value.func.text not in ("concat", "fields") or value.modifiers \
                or name in {r.name for r in _ref_nodes(value)} \
                or text[value.span.end - 1] != ")":
            continue
        edited = _edit(text, Span(value.span.end - 1, value.span.end), f", {name})")
        checked = ctx.recheck(edited)
        if not isinstance(checked, Diagnostic) \
                and name in _condition_features(optimize(checked[1], level=0)[0]):
            new = edited[stmt.span.start:stmt.span.end + len(name) + 2]
            options.append(f"read it in condition '{stmt.name.text}': '{new}'")
            break
    else:
        options.append("read it in a condition that a dynamic layer or gate uses")
    dropped = ctx.recheck(_without_mark(text, decl))
    if isinstance(dropped, Diagnostic):
        options.append(f"(dropping the 'scenario' mark alone would give {dropped.code}: "
                       f"{dropped.message})")
        return " ".join(options)
    options.append("drop the 'scenario' mark if it is an ordinary input")
    return ", or ".join(options)


class ConditionWithoutScenario(Rule):
    def check(self, ctx):
        scenario = ctx.scenario_features()
        for op in ctx.model.ops:
            if isinstance(op, ir.Generator) and not ctx.model.source_features(op.inputs[0]) \
                    & scenario:
                yield self.diag(f"the dynamic weights of '{op.binding}' depend on no scenario "
                                "feature", Label(op.span, "conditioned on its own input"),
                                "intended for APG self-wise; for scenario adaptation write "
                                "'by = z' with a scenario condition (or 'concat(self, z)')")


class ConditionOnHugeVocabulary(Rule):
    def check(self, ctx):
        for op in ctx.model.ops:
            if not isinstance(op, ir.Generator):
                continue
            for feature in sorted(ctx.model.source_features(op.inputs[0])):
                vocab = ctx.vocab(feature)
                if vocab and vocab > ctx.huge_vocab:
                    yield self.diag(
                        f"the generator of '{op.binding}' reads '{feature}' ({vocab:,} ids)",
                        Label(op.span, "generation runs for every sample"),
                        f"condition on low-cardinality scenario features (<= {ctx.huge_vocab:,} "
                        "ids) so the generator folds into a per-scenario table, or use a gate "
                        "for id priors")
                    break


class HighCardinalityScenario(Rule):
    def check(self, ctx):
        for spec in ctx.graph.inputs:
            if spec.scenario and spec.vocab and spec.vocab > ctx.scenario_max_vocab \
                    and spec.role == "ids":
                decl = ctx.feature_decl(spec.feature)
                yield self.diag(
                    f"'{spec.feature}' has {spec.vocab:,} ids but is marked scenario-sensitive",
                    Label(decl.scenario or decl.name.span, "scenario mark"),
                    f"scenario features define cells (keep them under "
                    f"{ctx.scenario_max_vocab:,} ids); for id priors (PEPNet) suppress this "
                    "with '# dwc: ignore[DW505]'")


def _apg_layers(ctx):
    for op in ctx.model.ops:
        if isinstance(op, ir.LowRankDynamicLinear) and op.apg is not None:
            yield op


class RankSavesNothing(Rule):
    def check(self, ctx):
        for op in _apg_layers(ctx):
            n, m, k = op.in_features, op.out_features, op.rank
            if k * (n + m) >= n * m:
                best = max(1, (n * m) // (2 * (n + m)))
                yield self.diag(
                    f"rank {k} of a {n} -> {m} layer saves nothing: factors hold {k * (n + m):,} "
                    f"numbers, the full matrix {n * m:,}", Label(op.span, f"layer {op.layer or 0}"),
                    f"use a rank below {n * m // (n + m)} (e.g. {best}), or a static layer")


class OverparamBelowRank(Rule):
    def check(self, ctx):
        for op in _apg_layers(ctx):
            if op.overparam and op.overparam < op.rank:
                yield self.diag(f"overparam width {op.overparam} is below rank {op.rank}",
                                Label(op.span, f"layer {op.layer or 0}"),
                                f"use overparam >= {op.rank} (e.g. {2 * op.rank} or '2x'), or none")


class GeneratedTensorTooLarge(Rule):
    def check(self, ctx):
        budget = ctx.memory_budget_mib * 2**20
        for op in ctx.model.ops:
            if not isinstance(op, ir.DynamicLinear):
                continue
            n, m = op.in_features, op.out_features
            size = 4 * ctx.batch * n * m
            if size > budget:
                k = max(1, min(n, m) // 8)
                apg = 4 * ctx.batch * k * k
                yield self.diag(
                    f"the generated {n} x {m} weights of '{op.binding}' take "
                    f"{size / 2**20:,.0f} MiB at batch {ctx.batch} (budget "
                    f"{ctx.memory_budget_mib:,} MiB)", Label(op.span, "full-rank dynamic layer"),
                    f"add 'apg(rank = {k})': only the {k} x {k} core is generated "
                    f"({apg / 2**20:,.1f} MiB at batch {ctx.batch})")


class SelfWiseTooCostly(Rule):
    def check(self, ctx):
        producers = ctx.model.producers()
        for op in ctx.model.ops:
            if not isinstance(op, ir.DynamicLinear | ir.LowRankDynamicLinear):
                continue
            gen = producers[op.inputs[1]]
            if not isinstance(gen, ir.Generator) or gen.inputs[0] != op.inputs[0]:
                continue  # not self-wise
            dense = 2 * op.in_features * op.out_features
            if gen.flops() > dense:
                yield self.diag(
                    f"self-wise generation of '{op.binding}' costs {gen.flops():,} FLOPs per "
                    f"sample, more than a dense {op.in_features} -> {op.out_features} layer "
                    f"({dense:,})", Label(gen.span, "self-wise generator"),
                    "lower the rank, condition on a narrow scenario condition (group-wise), or "
                    "use a static layer")


class GatePlacementDiffersFromPaper(Rule):
    def check(self, ctx):
        for stmt in ctx.spec.statements:
            value = getattr(stmt, "value", None)
            for call in _calls(value):
                if call.func.text != "ppnet":
                    continue
                for kw in call.kwargs:
                    if kw.name.text == "placement" and isinstance(kw.value, ast.Ref) \
                            and kw.value.name != "pre_linear":
                        yield self.diag(
                            f"PPNet gates at '{kw.value.name}'; the PEPNet paper gates each "
                            "layer's input (pre_linear)", Label(kw.span, "implementation variant"),
                            "keep it to match that implementation (docs/models.md lists them), "
                            "or use placement = pre_linear for the paper's form")


def _calls(node):
    if isinstance(node, ast.Call):
        yield node
        for child in (*node.args, *(k.value for k in node.kwargs)):
            yield from _calls(child)


class GateWithoutStopGradient(Rule):
    def check(self, ctx):
        g = ctx.model
        for op in g.ops:
            if not isinstance(op, ir.Gate):
                continue
            gated, condition = op.inputs
            if gated in g.ancestors(condition, stop=ir.StopGradient):
                yield self.diag(
                    f"the gate of '{op.binding}' reads the value it gates without "
                    "stop_gradient", Label(op.span, "gate"),
                    "wrap it: concat(..., stop_gradient(x)) as PEPNet does")


class HeadLossMismatch(Rule):
    def check(self, ctx):
        for out, stmt in zip(ctx.graph.outputs, (s for s in ctx.spec.statements
                                                  if isinstance(s, ast.OutputDecl)), strict=True):
            expected = LOSSES[out.loss]
            if out.head != expected:
                label = Label(stmt.loss.span if stmt.loss else stmt.span, f"loss {out.loss}")
                yield self.diag(
                    f"output '{out.name}' uses the {out.head} head, but loss {out.loss} expects "
                    f"{expected}", label,
                    f"write '{expected}(...)' for loss {out.loss}, or the loss that fits "
                    f"{out.head}: " + next(k for k, v in LOSSES.items() if v == out.head),
                    Label(stmt.value.span, f"{out.head} head"))


class UnusedValue(Rule):
    def check(self, ctx):
        referenced = {ref for stmt in ctx.spec.statements for ref in _refs(stmt)}
        live: set[str] = set()
        for out in ctx.graph.outputs:
            live |= ctx.graph.ancestors(out.value)
        bound = {op.binding for op in ctx.graph.ops}
        bindings_live = {op.binding for op in ctx.graph.ops if op.result in live}
        for stmt in ctx.spec.statements:
            if not isinstance(stmt, ast.LetDecl | ast.ConditionDecl):
                continue
            name = stmt.name.text
            dead_ops = name in bound and name not in bindings_live
            if name not in referenced or dead_ops:
                yield self.diag(f"'{name}' is computed but no output depends on it",
                                Label(stmt.name.span, "never reaches an output"),
                                "use it, or remove the statement")


class ConditionOutsideScenarioCells(Rule):
    def check(self, ctx):
        cells = ctx.graph.scenario
        decls = {s.name.text: s for s in ctx.spec.statements if isinstance(s, ast.FeatureDecl)}
        foldable = {s.feature for s in ctx.graph.inputs if s.scenario and s.role == "ids"
                    and decls[s.feature].kind.func.text == "categorical"}
        cells_decl = next((s for s in ctx.spec.statements if isinstance(s, ast.ScenarioDecl)),
                          None)
        reads = _feature_reads(ctx.spec, set(decls))
        for stmt in ctx.spec.statements:
            if not isinstance(stmt, ast.ConditionDecl):
                continue
            missing = [f for f in decls if f in reads[stmt.name.text] & foldable
                       and f not in cells]
            if not missing:
                continue
            line = "scenarios " + " * ".join((*cells, *missing))
            last = max((decls[f] for f in missing), key=lambda d: d.span.start)
            moved = cells_decl is not None and last.span.start > cells_decl.span.start
            edited = ctx.source.text
            if cells_decl is not None and not moved:
                edited = _edit(edited, cells_decl.span, line)
            else:  # a new declaration above the condition (and below the features it names)
                edited = _edit(edited, Span(stmt.span.start, stmt.span.start), line + "\n")
                if moved:  # the old one goes (it lies above the condition: offsets hold)
                    end = cells_decl.span.end
                    end += edited[end:end + 1] == "\n"
                    edited = _edit(edited, Span(cells_decl.span.start, end), "")
            where = f" below the declaration of '{last.name.text}'" if moved else ""
            checked = ctx.recheck(edited)
            if isinstance(checked, Diagnostic):
                continue  # adding them is not a valid fix: nothing to advise
            before, after = ctx.inference_cost, _inference_cost(checked[1])
            if after.flops_per_sample >= before.flops_per_sample:
                continue  # the fold still does not apply (other inputs, too many cells)
            names = ", ".join(f"'{f}'" for f in missing)
            first = next((r for r in _ref_nodes(stmt.value) if r.name in missing), stmt.name)
            secondary = (Label(cells_decl.span, "the scenario cells") if cells_decl else
                         Label(decls[missing[0]].scenario, "marked scenario here"))
            dropped = ctx.recheck(
                _edits_without_marks(ctx.source.text, [decls[f] for f in missing]))
            alternative = (f"drop the 'scenario' mark of {names}" if not isinstance(
                dropped, Diagnostic) else f"suppress this with '# dwc: ignore[{self.code}]'")
            plural = len(missing) > 1
            yield self.diag(
                f"condition '{stmt.name.text}' reads scenario feature{'s' * plural} {names}, "
                + ("which 'scenarios' omits" if cells else "and no 'scenarios' declares cells")
                + ": its generators and gates cannot fold into per-cell tables "
                f"({before.flops_per_sample:,} FLOPs/sample at inference instead of "
                f"{after.flops_per_sample:,})",
                Label(first.span, "not in 'scenarios'"),
                f"add {'them' if plural else 'it'} to the cells: '{line}'{where} "
                f"({checked[1].scenario_cells:,} cells; inference params "
                f"{before.params:,} -> {after.params:,}); or, if '{stmt.name.text}' is meant to "
                f"vary per sample, {alternative}", secondary)


def _edits_without_marks(text: str, decls: list[ast.FeatureDecl]) -> str:
    for decl in sorted(decls, key=lambda d: -d.span.start):  # back to front: spans stay valid
        text = _without_mark(text, decl)
    return text


def _feature_reads(spec: ast.Spec, features: set[str]) -> dict[str, set[str]]:
    """For every value and condition, the features it reads directly or through other values."""
    reads: dict[str, set[str]] = {f: {f} for f in features}
    for stmt in spec.statements:
        if isinstance(stmt, ast.LetDecl | ast.ConditionDecl):
            reads[stmt.name.text] = set().union(*(reads.get(r, set()) for r in _refs(stmt)))
    return reads


def _refs(node) -> Iterator[str]:
    """Every name an AST node refers to (including `by = name` in modifiers)."""
    return (ref.name for ref in _ref_nodes(node))


def _ref_nodes(node) -> Iterator[ast.Ref]:
    """Every reference in an AST node, in source order."""
    if isinstance(node, ast.Ref):
        yield node
    elif isinstance(node, ast.Call):
        for child in (*node.args, *(k.value for k in node.kwargs), *node.modifiers):
            yield from _ref_nodes(child)
    elif isinstance(node, ast.Modifier):
        for child in (*node.args, *(k.value for k in node.kwargs)):
            yield from _ref_nodes(child)
    elif isinstance(node, ast.ListExpr):
        for child in node.items:
            yield from _ref_nodes(child)
    elif isinstance(node, ast.LetDecl | ast.ConditionDecl | ast.OutputDecl):
        yield from _ref_nodes(node.value)
    elif isinstance(node, ast.FeatureDecl):
        yield from _ref_nodes(node.kind)


RULES: dict[str, Rule] = {r.code: r for r in [
    UnusedFeature("DW501",
          "Flags a declared feature that no value, condition, sequence or output reads.",
          "Every feature is an input of every artifact (and often a table): an unused one costs "
          "memory and serving bandwidth, and usually means a typo elsewhere.",
          "feature price : numeric\nx = concat(user_id, item_id)", "x = concat(user_id, item_id, price)"),
    ScenarioFeatureWithoutCondition("DW502",
          "Flags a feature marked `scenario` that no condition, gate or domain reads and that "
          "does not define the scenario cells (`scenarios`).",
          "The mark promises that the model adapts to it; if nothing reads it, the model does not. "
          "(A feature named in `scenarios` is used: it numbers the cells of per-scenario tables "
          "and metrics, as in a shared-MLP baseline.)",
          "feature page : categorical(vocab = 3, dim = 4) scenario\ncondition z = concat(country)",
          "condition z = concat(country, page)"),
    ConditionWithoutScenario("DW503",
          "Notes a dynamic layer conditioned only on its own input (self-wise).",
          "Self-wise weights follow each sample, not the scenario; right for APG self-wise, "
          "wrong when per-scenario adaptation was the goal.",
          "h = mlp(x, [64]) dynamic(by = self)", "h = mlp(x, [64]) dynamic(by = concat(self, z))"),
    ConditionOnHugeVocabulary("DW504",
          "Flags a generator whose condition reads an id with a very large vocabulary.",
          "Generated weights are then different for almost every sample: generation runs per "
          "sample and cannot be precomputed per scenario cell.",
          "condition z = concat(user_id)\nh = mlp(x, [64]) dynamic(by = z)",
          "condition z = concat(country, page)  # or gate(x, by = user-side priors)"),
    HighCardinalityScenario("DW505",
          "Flags a categorical feature with a huge vocabulary marked `scenario`.",
          "Scenarios are few (countries, surfaces, user types); an id marked scenario makes every "
          "per-scenario table and metric explode. PEPNet's priors are the deliberate exception.",
          "feature user_id : categorical(vocab = 1_000_000, dim = 16) scenario",
          "feature user_id : categorical(vocab = 1_000_000, dim = 16)"),
    RankSavesNothing("DW506",
          "Flags an APG rank K with K (N + M) >= N M.",
          "The factors U (N x K) and V (K x M) then hold more numbers than W itself.",
          "h = linear(x, 32) dynamic(by = z) apg(rank = 32)",
          "h = linear(x, 32) dynamic(by = z) apg(rank = 8)"),
    OverparamBelowRank("DW507",
          "Flags over-parameterisation P smaller than the rank K.",
          "U = U_l U_r through P < K has rank at most P: it shrinks the factors' capacity, the "
          "opposite of over-parameterisation.",
          "apg(rank = 16, overparam = 8)", "apg(rank = 16, overparam = 4x)"),
    GeneratedTensorTooLarge("DW508",
          "Flags a full-rank dynamic layer whose generated weights at the reference batch exceed "
          "the memory budget (`--batch`, `memory-budget-mib`).",
          "B x N x M floats are generated per step and kept for backward (docs/models.md, "
          "'Generic dynamic-weight MLP').",
          "h = linear(x, 1024) dynamic(by = z)", "h = linear(x, 1024) dynamic(by = z) apg(rank = 32)"),
    SelfWiseTooCostly("DW509",
          "Flags a self-wise generator that costs more FLOPs than a dense layer of the same shape.",
          "With d_z = N a linear generator costs N K^2 MACs per sample (N M at full rank): the "
          "dynamic layer is then slower than the static one it adapts (docs/models.md, 'APG').",
          "h = linear(x, 256) dynamic(by = self) apg(rank = 64)",
          "h = linear(x, 256) dynamic(by = self) apg(rank = 8)"),
    GatePlacementDiffersFromPaper("DW510",
          "Notes a PPNet tower whose gates sit elsewhere than the paper's (pre-linear).",
          "Public implementations disagree on placement (docs/models.md); results are not "
          "comparable with the paper's unless the placement is.",
          "t = ppnet(e, [64], by = prior, placement = post_dropout)",
          "t = ppnet(e, [64], by = prior)"),
    GateWithoutStopGradient("DW511",
          "Notes a gate whose condition reads the gated value without stop_gradient.",
          "PEPNet stops gradients from the gate network into the embeddings it gates, so the "
          "gate cannot pull the shared representation towards itself (anti-seesaw).",
          "condition g = concat(domain, e)\nep = gate(e, by = g)",
          "condition g = concat(domain, stop_gradient(e))"),
    HeadLossMismatch("DW512",
          "Flags an output whose head does not fit its loss (sigmoid with ce, Poisson without exp).",
          "The loss is computed from the head's logit: a mismatched pair trains the wrong "
          "objective (e.g. Poisson on an unconstrained rate).",
          "output clicks = identity(linear(h, 1)) loss = poisson",
          "output clicks = exp(linear(h, 1)) loss = poisson"),
    UnusedValue("DW513",
          "Flags a value or condition no output depends on.",
          "Its parameters are created and trained for nothing, and it is usually a wiring mistake.",
          "h2 = mlp(h, [32])\noutput ctr = sigmoid(linear(h, 1))",
          "output ctr = sigmoid(linear(h2, 1))"),
    ConditionOutsideScenarioCells("DW514",
          "Flags a condition that reads a categorical scenario feature missing from `scenarios`, "
          "when adding it there would let the -O2 scenario folds (fold-scenario-table, "
          "fold-scenario-layers) apply; the message gives the inference FLOPs per sample of both "
          "forms, from the cost model.",
          "Only a condition that is a function of the scenario cell is precomputed per cell: "
          "otherwise every generator or gate it drives runs for every sample at serving time, "
          "often several times the FLOPs of the folded model.",
          "feature page : categorical(vocab = 3, dim = 4) scenario\nscenarios country\n"
          "condition z = concat(country, page)",
          "scenarios country * page\ncondition z = concat(country, page)"),
]}
