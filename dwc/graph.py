"""`dwc graph`, stage 1: a checked spec's IR -> the dataflow picture's view model.

The picture has one node per spec binding, the unit `dwc explain` reports: each feature, the
scenario cell index, each condition, each value and each output. A node carries what the spec
says about it (its role, the operation it calls, the `scenario` mark), what the IR computes (its
output type, the op kinds it lowered to) and the cost model's numbers (parameters and FLOPs per
sample, from `dwc.cost.as_json`, the report `dwc explain` prints). Edges are the IR's uses of one
binding's values by another, classified by what the use means: plain data, a condition that
*generates* a dynamic layer's weights (or a gate's scales), an id that *selects* one weight set
per scenario cell or domain, and an embedding table a sequence *shares* with its feature.
`--inference` draws the folded inference graph instead: scenario tables and per-cell layers, with
the bindings the folds removed listed in the caption.

`dwc.graph_render` turns the view model into DOT, SVG and HTML; nothing here formats text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dwc import cost
from dwc.driver import optimize, tabulated_graph
from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.ir.types import IdsType, TableType
from dwc.ir.verify import verify
from dwc.parse import ast, parse
from dwc.passes import PassRecord
from dwc.sema.elaborate import elaborate
from dwc.source import SourceFile

ROLES = ("feature", "scenario", "condition", "layer", "output")
EDGE_KINDS = ("data", "generates", "selects", "shares")
SCENARIO_BINDING = "scenario"
"""The binding of the scenario cell index (`scenario` is a reserved word: no spec name is it)."""


@dataclass(frozen=True)
class Node:
    """One spec binding in the picture."""

    id: str
    """`node_K`, K its place in graph order: an identifier no spec text reaches."""
    name: str
    role: str
    """One of ROLES."""
    kind: str
    """What the spec calls: a feature's kind, a value's outermost operation, an output's head."""
    shape: str
    """The IR type of the binding's value (`vec[64]`, `experts[4; 16]`, `ids[24]`)."""
    ops: tuple[str, ...]
    """The op kinds it lowered to, in graph order (`dwc explain`'s ops column)."""
    params: int
    flops: int
    """Per sample, of the drawn form (training or inference)."""
    scenario: bool = False
    """A feature marked `scenario` (or the cell index built from such features)."""
    dynamic: bool = False
    """Its weights (or scales) are generated per sample from a condition."""
    notes: tuple[str, ...] = ()
    """Facts of the folded form: per-cell weight sets, tables, generated numbers."""
    line: int = 0
    """The spec line it is declared on (0 for bindings a pass made)."""


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    """Node ids."""
    kind: str
    """One of EDGE_KINDS."""


@dataclass(frozen=True)
class ModelGraph:
    """The view model of one picture."""

    model: str
    form: str
    """"training" or "inference"."""
    level: str
    """`-O2`, or `--passes ...`."""
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    folded_away: tuple[str, ...]
    """Bindings of the training graph that the inference folds removed (inference form only)."""
    report: dict
    """`dwc.cost.as_json`'s report (batch 1): the `dwc explain` table beside an HTML picture."""

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)


def build(source: SourceFile, level: int = 2, passes: str | None = None,
          inference: bool = False, verify_each: bool = False,
          on_pass: Callable[[PassRecord], None] | None = None) -> ModelGraph:
    """The picture of a spec: its training graph after the `-O` pipeline, or the folded
    inference graph. Raises DiagnosticError on spec errors and PassError for a bad pipeline."""
    spec = parse(source)
    lowered = elaborate(spec, source)
    verify(lowered)
    model, train, inference_graph, records = optimize(lowered, level, passes, verify_each, on_pass)
    report = cost.as_json(lowered, model, train, inference_graph, records, 1)
    drawn = inference_graph if inference else train
    form = "inference" if inference else "training"
    sources = _tabulated_sources(tabulated_graph(train, records))
    nodes, edges = _nodes_and_edges(drawn, spec, source, report, form, sources)
    folded = ()
    if inference:
        kept = {n.name for n in nodes}
        folded = tuple(dict.fromkeys(op.binding for op in train.ops if op.binding not in kept))
    level_name = f"--passes {passes}" if passes is not None else f"-O{level}"
    return ModelGraph(train.model, form, level_name, nodes, edges, folded, report)


def _declarations(spec: ast.Spec) -> dict[str, ast.Statement]:
    return {stmt.name.text: stmt for stmt in spec.statements
            if isinstance(stmt, ast.FeatureDecl | ast.ConditionDecl | ast.LetDecl | ast.OutputDecl)}


def _kind(name: str, stmt: ast.Statement | None, graph: Graph) -> tuple[str, str]:
    """(role, kind) of a binding, from its declaration."""
    if stmt is None:  # the cell index, or a binding a pass made
        if name == SCENARIO_BINDING and graph.scenario:
            return "scenario", "scenarios " + " * ".join(graph.scenario)
        return "layer", ""
    if isinstance(stmt, ast.FeatureDecl):
        return "feature", stmt.kind.func.text
    if isinstance(stmt, ast.OutputDecl):
        return "output", stmt.value.func.text if isinstance(stmt.value, ast.Call) else ""
    if isinstance(stmt, ast.ConditionDecl | ast.LetDecl):
        role = "condition" if isinstance(stmt, ast.ConditionDecl) else "layer"
        return role, stmt.value.func.text if isinstance(stmt.value, ast.Call) else "alias"
    return "layer", ""


def _tabulated_sources(tabulated: Graph) -> dict[str, str]:
    """For each value an inference fold tabulated per cell (`Op.tabulated`): the binding it was
    computed from, the condition a generator read (or the tabulated value's own binding)."""
    producers = tabulated.producers()
    sources = {}
    for op in tabulated.ops:
        reads = op.inputs[:1] if op.generates() else ()
        sources[op.result] = producers[reads[0]].binding if reads else op.binding
    return sources


def _nodes_and_edges(graph: Graph, spec: ast.Spec, source: SourceFile, report: dict, form: str,
                     sources: dict[str, str]) -> tuple[tuple[Node, ...], tuple[Edge, ...]]:
    declared = _declarations(spec)
    groups: dict[str, list[ir.Op]] = {}
    for op in graph.ops:
        groups.setdefault(op.binding, []).append(op)
    costs = {layer["name"]: layer[form] for layer in report["layers"]}
    scenario_inputs = {spec_.name for spec_ in graph.inputs if spec_.scenario}
    producers = graph.producers()
    ids = {name: f"node_{k}" for k, name in enumerate(groups)}
    nodes = []
    for name, ops in groups.items():
        stmt = declared.get(name)
        role, kind = _kind(name, stmt, graph)
        value = next((op for op in ops if op.result == name), None) or next(
            (op for op in reversed(ops) if not isinstance(op.type, TableType)), ops[-1])
        numbers = costs.get(name, {})
        # reads generated numbers, or is adapted by a vector (a gate's scales); a generator
        # itself is not: its own weights are trained
        dynamic = any(op.slots_read() or op.dynamic_weights() is not None or (
            not op.generates() and any(not isinstance(producers[c].type, IdsType)
                                       for c in op.conditioning_inputs())) for op in ops)
        line = source.location(stmt.span.start)[0] if stmt is not None else 0
        nodes.append(Node(
            id=ids[name], name=name, role=role, kind=kind, shape=str(value.type),
            ops=tuple(dict.fromkeys(op.kind for op in ops if op.kind != "input")),
            params=numbers.get("params", 0), flops=numbers.get("flops_per_sample", 0),
            scenario=name in scenario_inputs or role == "scenario", dynamic=dynamic,
            notes=_notes(ops, numbers, sources, stmt), line=line))
    edges: dict[tuple[str, str, str], None] = {}
    for op in graph.ops:
        for position, name in enumerate(op.inputs):
            producer = producers[name]
            if producer.binding == op.binding:
                continue
            kind = _edge_kind(op, position, producer)
            edges[(ids[producer.binding], ids[op.binding], kind)] = None
    return tuple(nodes), tuple(Edge(*key) for key in edges)


def _edge_kind(op: ir.Op, position: int, producer: ir.Op) -> str:
    """What `op`'s input number `position`, made by `producer` in another binding, means."""
    name = op.inputs[position]
    if isinstance(producer.type, TableType):
        return "shares"
    conditioning = name in op.conditioning_inputs() or (
        position >= 1 and (op.tabulated() is not None or op.cell_weights() is not None))
    if producer.generates() and position >= 1:
        return "generates"  # numbers another binding's generator made (HAMUR's adapter)
    if not conditioning:
        return "data"
    return "selects" if isinstance(producer.type, IdsType) else "generates"


def _notes(ops: list[ir.Op], numbers: dict, sources: dict[str, str],
           stmt: ast.Statement | None) -> tuple[str, ...]:
    notes = []
    if isinstance(stmt, ast.OutputDecl) and stmt.loss is not None:
        notes.append(f"loss {stmt.loss.text}")
    generated = numbers.get("generated_per_sample", 0)
    if generated:
        notes.append(f"generates {generated:,} numbers/sample")
    for op in ops:
        if isinstance(op, ir.ScenarioTable):
            notes.append(f"table: {op.cells:,} cells x {op.type.width:,}")
    sets = sorted({n for op in ops if op.tabulated() is not None or op.cell_weights() is not None
                   for n in (op.attrs().get("cells") or op.attrs().get("domains"),) if n})
    if sets:
        notes.append(f"{' / '.join(f'{n:,}' for n in sets)} weight sets, one per cell")
    folded = sorted({sources.get(op.tabulated(), op.tabulated()) for op in ops
                     if op.tabulated() is not None})
    if folded:
        notes.append(f"tabulated from {', '.join(folded)}")
    return tuple(notes)
