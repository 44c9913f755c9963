"""What an Lhuc op adds to the generated torch module: a `_DwcLhuc` (runtime.py) and its call;
and how `for_inference()` computes a folded one's gates."""

from __future__ import annotations

from dwc.layers.lhuc.op import FoldedLhuc, Lhuc


def emit(b, op: Lhuc) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    args = [str(op.conditions), str(op.type.width)]
    if isinstance(op, FoldedLhuc):
        args.append("folded=True")
    attr = b.module_line(op, "lhuc", "_DwcLhuc", args)
    b.fwd(op, f"self.{attr}", [b.var(i) for i in op.inputs])


def fold(ctx, op: FoldedLhuc) -> None:
    """for_inference(): every condition id's gates from the training layer's r (`ctx` is the
    backend's FoldContext)."""
    a = ctx.attr(op.module)
    ctx.copy(f"{a}.gate", f"self.{a}.gates()")
