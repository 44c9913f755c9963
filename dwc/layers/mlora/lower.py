"""`mlora(x, widths, by = ...)`: its signature and its checked lowering to a stack of
MloraLinear layers."""

from __future__ import annotations

from dwc.ir.types import VecType
from dwc.layers.mlora.op import MloraLinear
from dwc.parse import ast
from dwc.sema.params import ACTIVATIONS, Signature, param
from dwc.sema.values import Value

MLORA = Signature("mlora", "network", (
    param("input", "value", "the input value", positional=True),
    param("widths", "int_list", "layer widths", positional=True, min=1),
    param("by", "domain", "a categorical scenario feature, or `scenario` for the scenario cell id"),
    param("reduce", "int", "each layer's rank is max(out // reduce, 1) (MLoRA's `lora_reduce`)",
          16, min=1),
    param("rank", "rank", "the rank instead of `reduce`: an integer for every layer, or one per "
          "layer ([16, 8, 4])", None),
    param("dropout", "float", "dropout on the shared path x W + b, in training", 0.5, min=0,
          max=1, max_exclusive=True),
    param("act", "enum", "activation after each layer", "relu", choices=ACTIVATIONS),
    param("last_act", "bool", "apply the activation after the last layer too", True),
), "MLoRA's layers: a shared linear plus a low-rank adapter per domain, "
   "act(Dropout(x W + b) + (x A[d]) B[d] + c[d]); B and c start at 0 (the shared model).",
    "h = mlora(x, [256, 128, 64], by = scenario)")


def lower_mlora(el, call, sig, binding) -> Value:
    """A layer stack whose every linear is an MloraLinear on the domain ids (`el`: the
    elaborator)."""
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    x = el.value_of(args["input"], binding)
    lits = el.literals(args, sig)
    ids, domains = el.domain(args["by"], sig)
    dims = (x.type.width, *lits["widths"])
    if args["rank"] is not None and not isinstance(args["reduce"], int):  # both written
        el.fail("DW334", "'rank' and 'reduce' of 'mlora' are alternatives", args["reduce"].span,
                "ignored when 'rank' is given",
                help="keep 'rank' for fixed ranks, or 'reduce' for ranks out // reduce")
    ranks = _ranks(el, args["rank"], lits["reduce"], dims, sig)

    def make_fc(i, h, n_in, n_out, ssa):
        el.emit(MloraLinear(result=ssa, inputs=(h.ssa, ids), type=VecType(n_out),
                            in_features=n_in, out_features=n_out, domains=domains,
                            rank=ranks[i], dropout=lits["dropout"], layer=i, span=call.span,
                            module=el.module(f"{binding}_fc{i}"), binding=binding))

    out = el.stack(call, binding, x, dims, make_fc, act=lits["act"],
                   last_act=lits["last_act"], norm="none", dropout=0.0)
    return Value(out.ssa, out.type, x.deps | {el.domain_feature(args["by"])}, call.span)


def _ranks(el, node, reduce: int, dims, sig) -> list[int]:
    """Each layer's rank: `rank` as given (one for all, or a list), else MLoRA's rule
    max(out // reduce, 1)."""
    pairs = list(zip(dims, dims[1:], strict=False))
    if node is None:
        return [max(m // reduce, 1) for _, m in pairs]
    if isinstance(node, ast.ListExpr):
        if len(node.items) != len(pairs):
            el.fail("DW333", f"'rank' lists {len(node.items)} ranks for {len(pairs)} layers",
                    node.span, f"{len(pairs)} layers",
                    help="give one rank per layer, or a single rank for all")
        items = list(node.items)
    else:
        items = [node] * len(pairs)
    ranks = []
    for i, (item, (n, m)) in enumerate(zip(items, pairs, strict=True)):
        if not isinstance(item, ast.Number) or not isinstance(item.value, int):
            el.fail("DW301", "'rank' of 'mlora' must be an integer or a list of integers",
                    item.span, help=f"e.g. {sig.name}(x, [64, 32], by = scenario, rank = [8, 4])")
        if not 1 <= item.value <= min(n, m):
            el.fail("DW332", f"rank {item.value} does not fit layer {i} ({n} -> {m})", item.span,
                    f"must be 1 .. {min(n, m)}",
                    help="a rank of at most min(in, out); MLoRA's default is out // 16")
        ranks.append(item.value)
    return ranks
