"""What HAMUR's ops add to the generated torch module: a `_DwcHamurHyperNetwork` and its core
slot, a `_DwcHamurAdapter` per cell (runtime.py), the per-cell `_DwcScenarioHamurAdapter`
(runtime_scenario.py); and how `for_inference()` computes the folded forms from the training
module: batch norms merged into the hyper-network's linears, each cell's maps U H[c] V."""

from __future__ import annotations

from dwc.layers.hamur.op import (
    FoldedHamurAdapter,
    FoldedHamurHyperNetwork,
    HamurAdapter,
    HamurHyperNetwork,
    ScenarioHamurAdapter,
)


def emit_hypernet(b, op: HamurHyperNetwork) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    args: list = [str(op.in_features), [str(w) for w in op.hidden], f"rank={op.rank}"]
    if isinstance(op, FoldedHamurHyperNetwork):
        args.append("norm=False")
    attr = b.module_line(op, "hamur", "_DwcHamurHyperNetwork", args)
    b.fwd(op, f"self.{attr}({b.var(op.inputs[0])})")
    b.split_slots(op)


def emit_adapter(b, op: HamurAdapter) -> None:
    h, generated, domain = op.inputs
    args = [str(op.type.width), str(op.bottleneck), f"rank={op.rank}", f"domains={op.domains}"]
    if isinstance(op, FoldedHamurAdapter):
        args.append("folded=True")
    attr = b.module_line(op, "hamur", "_DwcHamurAdapter", args)
    b.fwd(op, f"self.{attr}", [b.var(h), b.slot(generated, op.core), b.var(domain)])


def emit_scenario_adapter(b, op: ScenarioHamurAdapter) -> None:
    args = [str(op.type.width), str(op.bottleneck), f"cells={op.cells}"]
    if not op.folds_norm:
        args.append(f"domains={op.folded.domains}")
    attr = b.module_line(op, "scenario_hamur", "_DwcScenarioHamurAdapter", args)
    h, cell = op.inputs[:2]
    call = [b.var(h), b.var(cell), b.domain_rows(op, cell)]
    b.fwd(op, f"self.{attr}", call + [b.var(d) for d in op.inputs[2:]])


def fold_hypernet(ctx, op: FoldedHamurHyperNetwork) -> None:
    """for_inference(): each layer's batch norm (running statistics, affine) merged into its
    linear (`ctx` is the backend's FoldContext)."""
    a = ctx.attr(op.module)
    for i in range(len(op.widths) - 1):
        ctx.lines.append(f"weight, bias = self.{a}.folded({i})")
        ctx.copy(f"{a}.linears[{i}].weight", "weight")
        ctx.copy(f"{a}.linears[{i}].bias", "bias")


def fold_adapter(ctx, op: FoldedHamurAdapter) -> None:
    """for_inference(): the domain norm's scale and shift per domain from its running statistics
    and affine."""
    a = ctx.attr(op.module)
    ctx.lines.append(f"scale, shift = self.{a}.norm_scale_shift()")
    ctx.copy(f"{a}.norm_scale", "scale")
    ctx.copy(f"{a}.norm_shift", "shift")


def fold_scenario_adapter(ctx, op: ScenarioHamurAdapter) -> None:
    """for_inference(): each cell's W_down[c] = U1 H[c] V1 and W_up[c] = U2 H[c] V2 from the
    hyper-network's per-cell table; the domain norm's scale and shift folded into W_up[c] and
    its bias when its domain is the cell."""
    a, trained = ctx.attr(op.module), ctx.attr(op.folded.module)
    cells, width = op.cells, op.type.width
    ctx.lines.append(f"core = {ctx.cell_slot(ctx.table(op.generator), op.folded.core, cells)}")
    ctx.copy(f"{a}.weight_down", f"self.{trained}.u_down @ core @ self.{trained}.v_down")
    ctx.copy(f"{a}.bias_down", f"self.{trained}.bias_down.expand({cells}, {op.bottleneck})")
    ctx.lines.append(f"scale, shift = self.{trained}.norm_scale_shift()")
    up = f"self.{trained}.u_up @ core @ self.{trained}.v_up"
    bias = f"self.{trained}.bias_up.expand({cells}, {width})"
    if op.folds_norm:  # y = (s W_up + b2) * scale + shift, per cell
        ctx.copy(f"{a}.weight_up", f"({up}) * scale.unsqueeze(1)")
        ctx.copy(f"{a}.bias_up", f"self.{trained}.bias_up * scale + shift")
    else:
        ctx.copy(f"{a}.weight_up", up)
        ctx.copy(f"{a}.bias_up", bias)
        ctx.copy(f"{a}.norm_scale", "scale")
        ctx.copy(f"{a}.norm_shift", "shift")
