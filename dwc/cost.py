"""The cost model: static parameters, generated numbers and FLOPs per sample, per spec binding.

Every op reports its own costs (dwc/ir/ops.py); this module groups them by the spec statement they
came from, for the training and the inference graph, totals them, and follows the totals through
the pass pipeline so `dwc explain` shows what each rewrite bought. Activation memory counts the
floats each op materialises per sample (generated weights included), times the batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dwc.ir import ops as ir
from dwc.ir.graph import Graph
from dwc.ir.types import IdsType, TableType

METRICS = ("params", "generated_per_sample", "flops_per_sample", "generator_flops_per_sample",
           "activation_floats_per_sample")


@dataclass
class Cost:
    params: int = 0
    generated_per_sample: int = 0
    flops_per_sample: int = 0
    generator_flops_per_sample: int = 0
    activation_floats_per_sample: int = 0

    def add(self, op: ir.Op) -> None:
        self.params += op.params()
        self.generated_per_sample += op.generated()
        self.flops_per_sample += op.flops()
        if op.generates():  # a generator, fused or a layer kind's (a table costs no FLOPs)
            self.generator_flops_per_sample += op.flops()
        if not isinstance(op.type, TableType | IdsType):
            self.activation_floats_per_sample += op.activations()

    def as_dict(self, batch: int) -> dict[str, int]:
        d = {m: getattr(self, m) for m in METRICS}
        d["activation_bytes"] = 4 * batch * self.activation_floats_per_sample
        return d


@dataclass
class LayerCost:
    """Costs of one spec binding: keyed by its name, with the op kinds it lowered to."""

    name: str
    kinds: list[str] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)


def explain(graph: Graph) -> list[LayerCost]:
    """Costs grouped by spec binding, in graph order."""
    layers: dict[str, LayerCost] = {}
    for op in graph.ops:
        layer = layers.setdefault(op.binding, LayerCost(op.binding))
        if op.kind not in layer.kinds and op.kind != "input":
            layer.kinds.append(op.kind)
        layer.cost.add(op)
    return [c for c in layers.values() if c.kinds]


def total(graph: Graph) -> Cost:
    cost = Cost()
    for op in graph.ops:
        cost.add(op)
    return cost


def as_json(lowered: Graph, model: Graph, train: Graph, inference: Graph, records, batch: int
            ) -> dict[str, object]:
    """The explain report: per layer (training and inference form), totals, and per pass.

    Training parameters are counted on `model` (the graph after the model passes: every parameter
    the training module owns, even one DCE found unused); the rest on the optimised graphs.
    """
    owned = {c.name: c.cost.params for c in explain(model)}
    train_layers = {c.name: c for c in explain(train)}
    inf_layers = {c.name: c for c in explain(inference)}
    names = list(dict.fromkeys([*owned, *train_layers, *inf_layers]))
    layers = []
    for name in names:
        t = train_layers.get(name, LayerCost(name))
        i = inf_layers.get(name, LayerCost(name))
        t.cost.params = owned.get(name, 0)
        layers.append({"name": name, "ops": t.kinds or i.kinds,
                       "training": t.cost.as_dict(batch), "inference": i.cost.as_dict(batch)})
    train_total = total(train)
    train_total.params = total(model).params
    stages = [{"pass": "lowered", "stage": "", "changed": True, "graph": lowered},
              *({"pass": r.name, "stage": r.stage, "changed": r.changed, "graph": r.graph}
                for r in records)]
    passes = []
    for st in stages:
        g = st.pop("graph")
        passes.append({**st, "total": total(g).as_dict(batch),
                       "layers": {c.name: c.cost.as_dict(batch) for c in explain(g)}})
    return {"model": train.model, "batch": batch, "layers": layers,
            "total": {"training": train_total.as_dict(batch),
                      "inference": total(inference).as_dict(batch)},
            "passes": passes}


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], rule_before_last: bool) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    rule = "  ".join("-" * w for w in widths)

    def line(cells: tuple[str, ...]) -> str:  # the first two columns left-aligned, numbers right
        return "  ".join(c.ljust(w) if k < 2 else c.rjust(w)
                         for k, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [line(header), rule]
    for n, r in enumerate(rows):
        if rule_before_last and n == len(rows) - 1:
            out.append(rule)
        out.append(line(r))
    return "\n".join(out) + "\n"


def as_table(lowered: Graph, model: Graph, train: Graph, inference: Graph, records,
             batch: int) -> str:
    report = as_json(lowered, model, train, inference, records, batch)
    rows = []
    for layer in [*report["layers"], {"name": "total", "ops": [], **report["total"]}]:
        t, i = layer["training"], layer["inference"]
        rows.append((layer["name"], ",".join(layer["ops"]), f"{t['params']:,}",
                     f"{i['params']:,}", f"{t['generated_per_sample']:,}",
                     f"{t['flops_per_sample']:,}", f"{t['generator_flops_per_sample']:,}",
                     f"{i['flops_per_sample']:,}", _bytes(t["activation_bytes"])))
    header = ("layer", "ops", "params", "params (inference)", "generated/sample", "FLOPs/sample",
              "of which generator", "FLOPs (inference)", f"activations @B={batch}")
    text = _table(header, rows, rule_before_last=True)
    prows = []
    for p in report["passes"]:
        c = p["total"]
        prows.append((p["pass"], p["stage"] or "-", f"{c['params']:,}",
                      f"{c['generated_per_sample']:,}", f"{c['flops_per_sample']:,}",
                      _bytes(c["activation_bytes"]), "yes" if p["changed"] else "no"))
    text += "\nafter each pass (totals):\n"
    text += _table(("pass", "stage", "params", "generated/sample", "FLOPs/sample",
                    f"activations @B={batch}", "changed"), prows, rule_before_last=False)
    return text


def _bytes(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"


@dataclass(frozen=True)
class BatchGrouping:
    """The inference forward's choice to reorder the batch by cell once (`batch_grouping`)."""

    key: str
    """The cell index the per-cell layers read."""
    needed: set[str]
    """The values that index is computed from (run before the grouping)."""
    gathered: int
    """Floats of one cell's weights the largest layer gathers per sample in a small batch."""


def batch_grouping(graph: Graph) -> BatchGrouping | None:
    """Whether the inference forward should group the batch by scenario cell once, before
    everything else, instead of each per-cell layer grouping its own rows.

    It applies when per-cell layers (`Op.cell_weights`) share a cell index computed from the
    inputs alone, and pays when what the layers would copy each time exceeds what grouping the
    batch copies. Per sample, in 4-byte words: each layer's own grouping copies its input once and
    its output twice (concatenation, scatter back); grouping the batch copies every input once and
    every output and logit once (int64 inputs count twice).
    """
    per_cell = [op for op in graph.ops if op.cell_weights() is not None]
    if not per_cell:
        return None
    keys = [op.inputs[1] for op in per_cell]
    key = max(dict.fromkeys(keys), key=keys.count)  # the index most layers read (first on ties)
    needed = graph.ancestors(key)
    producers = graph.producers()
    if not all(isinstance(producers[v], ir.Input | ir.ScenarioIndex) for v in needed):
        return None
    keyed = [op for op in per_cell if op.inputs[1] == key]
    saved = sum(op.cell_weights().copied for op in keyed)
    cost = sum(math.prod(spec.shape) * (2 if spec.dtype == "int64" else 1)
               for spec in graph.inputs)
    cost += 2 * sum(out.width for out in graph.outputs)
    if saved <= cost:
        return None
    return BatchGrouping(key, needed, max(op.cell_weights().gathered for op in keyed))


CHUNK_MIN_FLOATS = 2048
"""Per-sample floats (all the ops' activations, generated weights included) from which the
inference forward runs large batches in chunks (`chunk_rows`)."""
CHUNK_BUDGET_FLOATS = 1 << 23
"""What one chunk may materialise in all (32 MiB of float32: glibc's largest mmap threshold, so
a chunk's temporaries come from memory the allocator keeps)."""


def chunk_rows(graph: Graph) -> int | None:
    """Rows per chunk when the inference forward should run a large batch in chunks, else None.

    A form that materialises thousands of floats per sample (APG's per-sample generated cores,
    CAN's per-step micro-MLP activations) writes hundreds of MiB for a batch of 8192: every
    intermediate leaves the cache and, past glibc's 32 MiB mmap threshold, is fresh pages on
    every call. Chunks measured 2.0x faster at B = 8192 on an APG whose condition reads a user
    id (1,792 generated floats per sample, 2,048 rows) and 1.3x on CAN (512 rows); forms that
    group the batch by cell (`batch_grouping`) measured slower chunked (each chunk groups
    again), and so do light forms, whose per-call overhead dominates. The rows: the largest
    power of two whose chunk materialises at most `CHUNK_BUDGET_FLOATS`, and never fewer than
    256 (below that, the calls' own overhead grows).
    """
    per_sample = total(graph).activation_floats_per_sample
    if per_sample < CHUNK_MIN_FLOATS or batch_grouping(graph) is not None:
        return None
    rows = 256
    while rows * 2 * per_sample <= CHUNK_BUDGET_FLOATS:
        rows *= 2
    return rows
