"""What a SeNet op adds to the generated torch module: a `_DwcSeNet` (runtime.py) and its call."""

from __future__ import annotations

from dwc.layers.senet.op import SeNet


def emit(b, op: SeNet) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    dim = op.type.width // op.fields
    excite = f'"{op.act}"'  # a checked enum (relu | sigmoid), as a string literal
    attr = b.module_line(op, "senet", "_DwcSeNet",
                         [str(op.fields), str(dim), str(op.reduced), excite])
    b.fwd(op, f"self.{attr}", [b.var(op.inputs[0])])
