"""What the gate ops add to the generated torch module: a `_DwcGateNU` (runtime.py) per Gate, an
`nn.Linear` for a GateHidden, a per-cell table for a ScenarioGate; and how `for_inference()`
computes the folded forms' parameters from the training gates."""

from __future__ import annotations

from dwc.layers.gate.op import Gate, GateHidden, ScenarioGate


def emit_gate(b, op: Gate) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    args: list = [str(op.in_features), str(op.hidden), str(op.type.width), repr(op.gamma)]
    if op.granularity == "field":
        args.append(list(map(str, op.fields)))
    x, z = (b.var(i) for i in op.inputs)
    if op.hidden_offset is not None:  # fuse-gates: z holds every gate's hidden units
        args.append("first_layer=False")
        z = f"{z}[:, {op.hidden_offset}:{op.hidden_offset + op.hidden}]"
    attr = b.module_line(op, "gate", "_DwcGateNU", args)
    b.fwd(op, f"self.{attr}", [x, z])


def emit_gate_hidden(b, op: GateHidden) -> None:
    attr = b.attr(op)
    b.init_line(op, f"self.{attr} = nn.Linear({op.in_features}, {op.type.width})")
    b.fwd(op, f"torch.relu_(self.{attr}({b.var(op.inputs[0])}))")


def emit_scenario_gate(b, op: ScenarioGate) -> None:
    attr = b.attr(op)
    b.init_line(op, f"self.{attr} = nn.Embedding({op.cells}, {op.type.width})")
    x, cell = (b.var(i) for i in op.inputs)
    b.fwd(op, f"{x} * self.{attr}({cell})")


def fold_gate_hidden(ctx, op: GateHidden) -> None:
    """The stacked first layer: the training gates' first layers concatenated, in part order.
    `ctx` is the backend's FoldContext (dwc.backends.torch.folds)."""
    ctx.stack_linears(ctx.attr(op.module), [f"self.{ctx.attr(module)}.hidden"
                                            for module, _ in op.parts])


def fold_scenario_gate(ctx, op: ScenarioGate) -> None:
    """Every cell's gate values: the training gate applied to ones, gamma * sigmoid(...) per
    cell and element, on the condition's per-cell table."""
    a, gate, z = ctx.attr(op.module), ctx.attr(op.folded.module), ctx.table(op.generator)
    ctx.copy(f"{a}.weight", f"self.{gate}({z}.new_ones({op.cells}, {op.type.width}), {z})")
