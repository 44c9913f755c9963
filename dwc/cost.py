"""The cost model: static parameters, generated numbers and FLOPs per sample, per spec binding.

Every op reports its own costs (dwc/ir/ops.py); this module groups them by the spec statement they
came from, for `dwc explain`, and totals them. Activation memory counts the floats each op's output
keeps per sample (generated weights included), times the batch size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from dwc.ir.graph import Graph
from dwc.ir.types import IdsType, TableType


@dataclass
class LayerCost:
    name: str
    kinds: list[str]
    params: int = 0
    generated_per_sample: int = 0
    flops_per_sample: int = 0
    generator_flops_per_sample: int = 0
    activation_floats_per_sample: int = 0


def explain(graph: Graph) -> list[LayerCost]:
    """Costs grouped by spec binding, in graph order."""
    layers: dict[str, LayerCost] = {}
    for op in graph.ops:
        cost = layers.setdefault(op.binding, LayerCost(op.binding, []))
        if op.kind not in cost.kinds and op.kind != "input":
            cost.kinds.append(op.kind)
        cost.params += op.params()
        cost.generated_per_sample += op.generated()
        cost.flops_per_sample += op.flops()
        if op.kind == "generator":
            cost.generator_flops_per_sample += op.flops()
        if not isinstance(op.type, TableType | IdsType):
            cost.activation_floats_per_sample += op.type.width
    return [c for c in layers.values() if c.kinds]


def totals(layers: list[LayerCost]) -> LayerCost:
    total = LayerCost("total", [])
    for c in layers:
        total.params += c.params
        total.generated_per_sample += c.generated_per_sample
        total.flops_per_sample += c.flops_per_sample
        total.generator_flops_per_sample += c.generator_flops_per_sample
        total.activation_floats_per_sample += c.activation_floats_per_sample
    return total


def as_json(graph: Graph, batch: int) -> dict[str, object]:
    layers = explain(graph)
    total = totals(layers)

    def row(c: LayerCost) -> dict[str, object]:
        d = asdict(c)
        d["activation_bytes"] = 4 * batch * c.activation_floats_per_sample
        return d

    return {"model": graph.model, "batch": batch, "layers": [row(c) for c in layers],
            "total": row(total)}


def as_table(graph: Graph, batch: int) -> str:
    layers = explain(graph)
    total = totals(layers)
    header = ("layer", "ops", "params", "generated/sample", "FLOPs/sample", "of which generator",
              f"activations @B={batch}")
    rows = [header]
    for c in [*layers, total]:
        rows.append((c.name, ",".join(c.kinds), f"{c.params:,}", f"{c.generated_per_sample:,}",
                     f"{c.flops_per_sample:,}", f"{c.generator_flops_per_sample:,}",
                     _bytes(4 * batch * c.activation_floats_per_sample)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    out = []
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
        cells += [v.rjust(w) for v, w in zip(r[2:], widths[2:], strict=True)]
        out.append("  ".join(cells).rstrip())
        if n == 0 or n == len(rows) - 2:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out) + "\n"


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
