"""What MMoE's ops add to the generated torch module: an `_DwcExperts` (runtime.py) and a
`_DwcMix` (runtime_mix.py) per gate."""

from __future__ import annotations

from dwc.layers.experts.op import Experts, Mix


def emit_experts(b, op: Experts) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    dims = [str(op.in_features), *map(str, op.widths)]
    act = f'"{op.act}"'  # a checked enum, as a string literal
    attr = b.module_line(op, "experts", "_DwcExperts", [str(op.type.count), dims, act])
    b.fwd(op, f"self.{attr}", [b.var(op.inputs[0])])


def emit_mix(b, op: Mix) -> None:
    attr = b.module_line(op, "mix", "_DwcMix", [str(op.in_features), str(op.count)])
    b.fwd(op, f"self.{attr}", [b.var(i) for i in op.inputs])
