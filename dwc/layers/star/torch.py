"""What STAR's ops add to the generated torch module: `_DwcStarLinear` (runtime.py) and
`_DwcPartitionedNorm` (runtime_partitioned_norm.py) layers, and the folds `for_inference()`
makes: a star layer's weights merged per domain, a partitioned norm as one scale and shift per
domain (`_DwcDomainAffine`)."""

from __future__ import annotations

from dwc.layers.star.op import FoldedPartitionedNorm, FoldedStarLinear, PartitionedNorm, StarLinear


def emit_star_linear(b, op: StarLinear) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    attr = b.module_line(op, "star", "_DwcStarLinear",
                         [str(op.in_features), str(op.out_features), str(op.domains)])
    b.per_domain(op, attr)


def emit_partitioned_norm(b, op: PartitionedNorm) -> None:
    """A folded norm (inference) runs as the per-domain scale and shift it is."""
    cls = "_DwcDomainAffine" if isinstance(op, FoldedPartitionedNorm) else "_DwcPartitionedNorm"
    attr = b.module_line(op, "partitioned_norm", cls, [str(op.type.width), str(op.domains)])
    b.fwd(op, f"self.{attr}", [b.var(i) for i in op.inputs])


def emit_folded_star_linear(b, op: FoldedStarLinear) -> None:
    """The inference form runs the merged weights as the IndexedLinear it is."""
    b.op_indexed_linear(op)


def fold_star(ctx, op: FoldedStarLinear) -> None:
    """for_inference(): each domain's W * W_p[d] and b + b_p[d] from the training star layer
    (`ctx`: the backend's FoldContext)."""
    a = ctx.attr(op.module)
    ctx.copy(f"{a}.weight", f"self.{a}.weight * self.{a}.domain_weight")
    ctx.copy(f"{a}.bias", f"self.{a}.bias + self.{a}.domain_bias")


def fold_partitioned_norm(ctx, op: FoldedPartitionedNorm) -> None:
    """for_inference(): each domain's scale and shift from the training norm's running
    statistics and affines."""
    a = ctx.attr(op.module)
    ctx.lines.append(f"scale, shift = self.{a}.scale_shift()")
    ctx.copy(f"{a}.scale", "scale")
    ctx.copy(f"{a}.shift", "shift")
