"""What a Lhuc op adds to the generated torch module: a `_DwcLhuc` (runtime.py) and its call."""

from __future__ import annotations

from dwc.layers.lhuc.op import Lhuc


def emit(b, op: Lhuc) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    attr = b.module_line(op, "lhuc", "_DwcLhuc", [str(op.conditions), str(op.type.width)])
    b.fwd(op, f"self.{attr}", [b.var(i) for i in op.inputs])
