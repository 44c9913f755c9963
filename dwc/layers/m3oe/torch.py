"""What M3oE's ops add to the generated torch module: the STAR slot (STAR's `_DwcStarLinear`
with M3oE's init, runtime.py), `_DwcNormExperts` (runtime_experts.py), `_DwcM3oEFusion` or its
folded `_DwcM3oEFoldedFusion` (runtime_fusion.py) and `_DwcM3oETowers` (runtime_towers.py); and
how `for_inference()` computes the folded fusion's constants."""

from __future__ import annotations

from dwc.layers.m3oe.op import FoldedM3oEFusion, M3oEFusion, M3oESlot, M3oETowers, NormExperts


def emit_slot(b, op: M3oESlot) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    attr = b.module_line(op, "star", "_DwcStarLinear",
                         [str(op.in_features), str(op.out_features), str(op.domains)])
    b.helpers.add("m3oe")
    b.init_line(op, f"_dwc_m3oe_slot_init_(self.{attr})")
    b.per_domain(op, attr)


def emit_experts(b, op: NormExperts) -> None:
    dims = [str(op.in_features), *map(str, op.widths)]
    attr = b.module_line(op, "norm_experts", "_DwcNormExperts", [str(op.count), dims])
    b.fwd(op, f"self.{attr}", [b.var(op.inputs[0])])


def _fusion(b, op: M3oEFusion, cls: str) -> None:
    attr = b.module_line(op, "m3oe_fusion", cls,
                         [str(op.shared), str(op.domains), str(op.tasks)])
    b.fwd(op, f"self.{attr}", [b.var(i) for i in op.inputs])


def emit_fusion(b, op: M3oEFusion) -> None:
    _fusion(b, op, "_DwcM3oEFusion")


def emit_folded_fusion(b, op: FoldedM3oEFusion) -> None:
    _fusion(b, op, "_DwcM3oEFoldedFusion")


def emit_towers(b, op: M3oETowers) -> None:
    attr = b.module_line(op, "m3oe_towers", "_DwcM3oETowers",
                         [str(op.domains), str(op.tasks), str(op.width)])
    b.per_domain(op, attr)


def fold_fusion(ctx, op: FoldedM3oEFusion) -> None:
    """for_inference(): the fusion's four factors from the training scalars, once (`ctx`: the
    backend's FoldContext)."""
    a = ctx.attr(op.module)
    ctx.copy(f"{a}.coefficients", f"self.{a}.coefficients()")
