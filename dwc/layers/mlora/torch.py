"""What MLoRA's ops add to the generated torch module: `_DwcMloraLinear` layers (runtime.py), and
the fold that merges a layer's adapters into per-domain weights in `for_inference()`."""

from __future__ import annotations

from dwc.layers.mlora.op import MergedMloraLinear, MloraLinear


def emit_mlora_linear(b, op: MloraLinear) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    attr = b.module_line(op, "mlora", "_DwcMloraLinear",
                         [str(op.in_features), str(op.out_features), str(op.domains),
                          str(op.rank), repr(op.dropout)])
    b.per_domain(op, attr)


def emit_merged_mlora_linear(b, op: MergedMloraLinear) -> None:
    """The merged form runs as the IndexedLinear it is."""
    b.op_indexed_linear(op)


def fold_mlora(ctx, op: MergedMloraLinear) -> None:
    """for_inference(): each domain's W + A[d] B[d] and b + c[d] from the training layer (`ctx`:
    the backend's FoldContext)."""
    a = ctx.attr(op.module)
    ctx.copy(f"{a}.weight", f"self.{a}.weight + self.{a}.domain_a @ self.{a}.domain_b")
    ctx.copy(f"{a}.bias", f"self.{a}.bias + self.{a}.domain_bias")
