"""What APG's low-rank layers add to the generated torch module: a `_DwcLowRankFactors`
(runtime.py) holding the static factors and bias, a `_dwc_lowrank_linear` call, and for the
folded form (fold-overparam) the factors multiplied out by `for_inference()`."""

from __future__ import annotations

from dwc.ir.ops import Slot
from dwc.layers.apg.op import FoldedLowRankDynamicLinear, LowRankDynamicLinear


def emit(b, op: LowRankDynamicLinear) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    x = b.var(op.inputs[0])
    b.helpers.add("lowrank")
    attr = None
    if op.module is not None:
        attr = b.module_line(op, "lowrank", "_DwcLowRankFactors", [
            str(op.in_features), str(op.out_features), f"rank={op.rank}",
            f"overparam={op.overparam}", f"share={op.share}", f"bias={op.bias == 'static'}"])

    def piece(slot: Slot) -> str:
        return b.slot(op.inputs[1], slot)

    u = f"self.{attr}.u()" if op.share else piece(op.u)
    v = f"self.{attr}.v()" if op.share else piece(op.v)
    if op.bias == "generated":
        bias = b.slot(op.inputs[1], op.bias_slot)
    elif op.bias == "static":
        bias = f"self.{attr}.bias"
    else:
        bias = "None"
    b.fwd(op, "_dwc_lowrank_linear", [x, u, piece(op.core), v, bias, f"decompose={op.decompose}"])


def fold_overparam(ctx, op: FoldedLowRankDynamicLinear) -> None:
    """`for_inference()`: U = U_l U_r and V = V_l V_r, multiplied out once (`ctx` is the torch
    backend's FoldContext)."""
    a = ctx.attr(op.module)
    ctx.copy(f"{a}.u_weight", f"self.{a}.u()")
    ctx.copy(f"{a}.v_weight", f"self.{a}.v()")
