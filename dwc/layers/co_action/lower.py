"""`co_action(induction, feed, widths = [...], ...)`: its signature and its checked lowering to a
CoAction op."""

from __future__ import annotations

from dwc.ir.types import VecType
from dwc.layers.co_action.op import CoAction
from dwc.sema.params import ACTIVATIONS, Signature, param
from dwc.sema.values import Value

SIGNATURE = Signature("co_action", "network", (
    param("induction", "feature", "the induction-side categorical feature (target item)",
          positional=True),
    param("feed", "feature", "the feed-side feature (categorical or sequence)",
          positional=True),
    param("widths", "int_list", "micro-MLP widths, starting with the feed embedding width",
          (16, 8, 4), min=1),
    param("orders", "int", "multi-order enhancement: feed powers 1..orders", 3, min=1),
    param("act", "enum", "activation between micro-MLP layers", "tanh",
          choices=ACTIVATIONS[:-1]),
    param("bias", "bool", "micro-MLP layers have biases", False),
    param("collect", "enum", "output every layer (official code, later paper) or the last "
          "(first paper version)", "all", choices=("all", "last")),
    param("order_independent", "bool", "a separate micro-MLP per order", False),
), "CAN's co-action unit: the induction id's embedding row is a micro-MLP applied to the "
   "feed side.", "ca = co_action(item_id, history)")


def lower(el, call, sig, binding) -> Value:
    """`el` is the elaborator (dwc.sema.elaborate): argument binding, names, diagnostics."""
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    lits = el.literals(args, sig)
    ind, feed = lits["induction"], lits["feed"]
    if ind.kind != "categorical":
        el.fail("DW307", f"the induction side must be a categorical feature, '{ind.name}' "
                f"is {ind.kind}", args["induction"].span, help="e.g. the target item id")
    if feed.kind == "numeric":
        el.fail("DW307", f"the feed side must be categorical or a sequence, '{feed.name}' "
                "is numeric", args["feed"].span, help="e.g. the behaviour history")
    widths = lits["widths"]
    if len(widths) < 2:
        el.fail("DW304", "the micro-MLP needs at least two widths (input and output)",
                args["widths"].span, help="e.g. widths = [16, 8, 4]")
    ids = [el.ids_of(ind), el.ids_of(feed)]
    if feed.kind == "sequence":
        ids.append(el.s.feature_ids[f"{feed.name}_len"])
    per_order = widths[-1] if lits["collect"] == "last" else sum(widths[1:])
    t = VecType(per_order * lits["orders"])
    ssa = el.final(binding, "co_action")
    el.emit(CoAction(result=ssa, inputs=tuple(ids), type=t, widths=widths,
                     induction_vocab=ind.vocab, feed_vocab=feed.vocab, orders=lits["orders"],
                     bias=lits["bias"], collect=lits["collect"],
                     order_independent=lits["order_independent"], act=lits["act"],
                     max_len=feed.max_len or None, span=call.span,
                     module=el.module(f"{binding}_co_action"), binding=binding))
    return Value(ssa, t, frozenset({ind.name, feed.name}), call.span)
