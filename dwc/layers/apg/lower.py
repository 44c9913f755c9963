"""`dynamic(by = z) apg(...)`: APG's modifier signature and its checked lowering. Each layer of
the dynamic `linear`/`mlp` gets its own generator and a full-rank dynamic linear carrying the
layer's `ApgKnobs`; the model passes (passes.py) carry the knobs out at every level, so the
parameters never depend on `-O`."""

from __future__ import annotations

from dwc.layers.apg.op import ApgKnobs
from dwc.parse import ast
from dwc.sema.params import Signature, param
from dwc.sema.values import DynamicLayer

SIGNATURE = Signature("apg", "modifier", (
    param("rank", "rank", "rank K: an integer, one per layer ([32, 16, 8]) or a fraction "
          "of min(in, out) (1/4 -> ceil(min/4))", 32),
    param("share", "bool", "U and V static and shared, only the K x K core generated", True),
    param("overparam", "overparam", "train U = U_l U_r and V = V_l V_r through width P "
          "(an integer, or a multiple of the rank like 4x); none to disable", None),
    param("decompose", "bool", "apply ((x U) S) V in turn instead of forming W = U S V", True),
), "APG's re-parameterisation of a dynamic layer (docs/models.md, 'APG'): W = U S(z) V per "
   "layer, each layer with its own generator.",
    "h = mlp(x, [256, 128]) dynamic(by = z) apg(rank = [32, 16], overparam = 4x)")


def make_fc(el, mod, sig, layer: DynamicLayer):
    """APG (docs/models.md, "APG"): per layer, its own generator of S (and U, V unless shared).

    `el` is the elaborator (dwc.sema.elaborate); returns the `make_fc(i, h, n_in, n_out, ssa)`
    that emits layer i of the stack."""
    args = el.modifier_args(mod, sig)
    share = el.literal(args["share"], sig.param("share"), sig)
    decompose = el.literal(args["decompose"], sig.param("decompose"), sig)
    dims, binding, bias_mode = layer.dims, layer.binding, layer.bias
    ranks = _ranks(el, args["rank"], dims, sig)
    overparam = args["overparam"]
    if overparam is not None and not share:
        el.fail("DW311", "over-parameterisation applies to shared static factors",
                overparam.span, help="remove 'overparam', or keep 'share = true'")
    single = len(dims) == 2

    def fc(i, h, n_in, n_out, ssa):
        k = ranks[i]
        knobs = ApgKnobs(rank=k, share=share, overparam=_overparam(el, overparam, k, sig),
                         decompose=decompose)
        tag = "" if single else str(i)
        # The full-rank layer the spec's apg(...) re-parameterises; the lowrank, share and
        # overparam passes (passes.py) carry the knobs out. A static bias lives in the
        # layer's module, which the share pass fills with U and V: it is named after the layer.
        bias_module = f"{binding}_fc{tag}" if bias_mode == "static" else None
        el.own_generator_layer(layer, tag, h, n_in, n_out, ssa, mod.span, bias_module, apg=knobs)
    return fc


def _ranks(el, node, dims, sig) -> list[int]:
    pairs = list(zip(dims, dims[1:], strict=False))
    if isinstance(node, ast.ListExpr):
        if len(node.items) != len(pairs):
            el.fail("DW304", f"'rank' lists {len(node.items)} ranks for {len(pairs)} layers",
                    node.span, help="give one rank per layer, or a single rank for all")
        items = list(node.items)
    else:
        items = [node] * len(pairs)
    ranks = []
    for item, (n, m) in zip(items, pairs, strict=True):
        if isinstance(item, int):  # the default
            k = min(item, n, m)
        elif isinstance(item, ast.Number) and isinstance(item.value, int):
            k = item.value
        elif isinstance(item, ast.Fraction):
            if item.numerator < 1 or item.denominator < item.numerator:
                el.fail("DW304", "a rank fraction must lie in (0, 1]", item.span,
                        help="e.g. rank = 1/4 for a quarter of min(in, out)")
            k = -(-min(n, m) * item.numerator // item.denominator)
        else:
            el.fail("DW301", "'rank' of 'apg' must be an integer, a list of integers or a "
                    "fraction like 1/4", item.span, help=f"e.g. {sig.example}")
        if not 1 <= k <= min(n, m):
            el.fail("DW304", f"rank {k} does not fit a {n} -> {m} layer", item.span,
                    f"must be 1 .. {min(n, m)}",
                    help="a rank of at most min(in, out); smaller saves more")
        ranks.append(k)
    return ranks


def _overparam(el, node, k: int, sig) -> int | None:
    if node is None or (isinstance(node, ast.Ref) and node.name == "none"):
        return None
    if isinstance(node, ast.Factor):
        p = node.value * k
    elif isinstance(node, ast.Number) and isinstance(node.value, int):
        p = node.value
    else:
        el.fail("DW301", "'overparam' of 'apg' must be an integer, a multiple like 4x, or "
                "none", node.span, help=f"e.g. {sig.example}")
    if p < 1:
        el.fail("DW304", "'overparam' must be at least 1", node.span,
                help="e.g. overparam = 4x")
    return p
