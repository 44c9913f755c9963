"""What a CoAction op adds to the generated torch module: a `_DwcCoAction` (runtime.py, which
calls the activation helper's `_dwc_activation_`) and its call."""

from __future__ import annotations

from dwc.layers.co_action.op import CoAction


def emit(b, op: CoAction) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    attr = b.module_line(op, "co_action", "_DwcCoAction", [
        str(op.induction_vocab), str(op.feed_vocab), list(map(str, op.widths)),
        f"orders={op.orders}", f'act="{op.act}"', f"bias={op.bias}",
        f'collect="{op.collect}"', f"order_independent={op.order_independent}"])
    b.fwd(op, f"self.{attr}", [b.var(i) for i in op.inputs])
