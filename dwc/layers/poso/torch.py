"""What POSO's ops add to the generated torch module: an `_DwcExpertGates` (runtime.py) per
`poso_experts`, a per-cell table for its folded form, the per-cell linear a gate table folded
into; and how `for_inference()` computes the folded forms from the training module."""

from __future__ import annotations

from dwc import layers
from dwc.layers.poso.op import ExpertGates, GatedIndexedLinear, ScenarioExpertGates


def emit_expert_gates(b, op: ExpertGates) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    args = [str(op.in_features), str(op.hidden), str(op.count), str(op.dim), repr(op.gamma)]
    attr = b.module_line(op, "poso", "_DwcExpertGates", args)
    b.fwd(op, f"self.{attr}", [b.var(i) for i in op.inputs])


def emit_scenario_expert_gates(b, op: ScenarioExpertGates) -> None:
    attr = b.attr(op)
    count, dim = op.type.count, op.type.dim
    b.init_line(op, f"self.{attr} = nn.Embedding({op.cells}, {count * dim})")
    experts, cell = (b.var(i) for i in op.inputs)
    b.fwd(op, f"{experts} * self.{attr}({cell}).view(-1, {count}, {dim})")


def fold_scenario_expert_gates(ctx, op: ScenarioExpertGates) -> None:
    """Every cell's gate values, gamma * sigmoid(...) per expert and element, from the training
    gates on the condition's per-cell table (`ctx`: the backend's FoldContext)."""
    a, gates, z = ctx.attr(op.module), ctx.attr(op.folded.module), ctx.table(op.generator)
    ctx.copy(f"{a}.weight", f"self.{gates}.gates({z}).reshape({op.cells}, -1)")


def emit_gated_indexed_linear(b, op: GatedIndexedLinear) -> None:
    """The folded form runs as the IndexedLinear it is."""
    b.op_indexed_linear(op)


def fold_gated_indexed_linear(ctx, op: GatedIndexedLinear) -> None:
    """Each cell's weight rows times that cell's gate values, diag(G[c]) W_c: the replaced
    layer's weights (after its own fold, e.g. STAR's merge), then the training gate on every
    cell of its condition's table."""
    inner = layers.torch_folds().get(type(op.layer))
    if inner is not None:
        inner(ctx, op.layer)
    a, gate = ctx.attr(op.module), ctx.attr(op.gate.folded.module)
    z, cells, width = ctx.table(op.gate.generator), op.domains, op.in_features
    ctx.call("gates = self." + gate, [f"{z}.new_ones({cells}, {width})", z])
    ctx.copy(f"{a}.weight", f"model.{a}.weight * gates.unsqueeze(2)")
