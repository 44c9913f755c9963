"""What an Hmoe op adds to the generated torch module: a `_DwcHmoe` (runtime.py) and its call,
which reads the shared experts and the scenario ids' rows grouped by domain. No inference fold:
gates and fusion weights depend on the input, so the training and inference forms are the same
module (the stop-gradient is inactive without autograd)."""

from __future__ import annotations

from dwc.layers.hmoe.op import Hmoe


def emit(b, op: Hmoe) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    widths = [list(map(str, w)) for w in (op.gate, op.tower, op.fusion)]
    attr = b.module_line(op, "hmoe", "_DwcHmoe", [
        str(op.in_features), str(op.experts), str(op.expert_dim), str(op.heads), *widths,
        f'"{op.fuse}"', f'"{op.act}"'])  # checked enums, as string literals
    x, ids, experts = op.inputs
    b.fwd(op, f"self.{attr}", [b.var(x), b.var(ids), b.domain_rows(op, ids), b.var(experts)])
