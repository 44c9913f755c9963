"""`star(x, widths, by = ...)` and `partitioned_norm(x, by = ...)`: their signatures and checked
lowerings to StarLinear layers and a PartitionedNorm."""

from __future__ import annotations

from dwc.ir.types import VecType
from dwc.layers.star.op import PartitionedNorm, StarLinear
from dwc.sema.params import ACTIVATIONS, Signature, param
from dwc.sema.values import Value

_BY = param("by", "domain", "a categorical scenario feature, or `scenario` for the scenario cell id")

STAR = Signature("star", "network", (
    param("input", "value", "the input value", positional=True),
    param("widths", "int_list", "layer widths", positional=True, min=1),
    _BY,
    param("act", "enum", "activation after each layer", "relu", choices=ACTIVATIONS),
    param("last_act", "bool", "apply the activation after the last layer too", True),
), "STAR's star-topology FCN: W * W_p[domain], b + b_p[domain] per layer; W_p starts at "
   "1 and b_p at 0 (the shared model).", "h = star(x, [64, 32], by = scenario)")

PARTITIONED_NORM = Signature("partitioned_norm", "network", (
    param("input", "value", "the input value", positional=True),
    _BY,
), "STAR's partitioned normalisation with per-domain statistics.",
    "n = partitioned_norm(x, by = scenario)")


def lower_star(el, call, sig, binding) -> Value:
    """A layer stack whose every linear is a StarLinear on the domain ids (`el`: the elaborator)."""
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    x = el.value_of(args["input"], binding)
    lits = el.literals(args, sig)
    ids, domains = el.domain(args["by"], sig)
    dims = (x.type.width, *lits["widths"])

    def make_fc(i, h, n_in, n_out, ssa):
        el.emit(StarLinear(result=ssa, inputs=(h.ssa, ids), type=VecType(n_out),
                           in_features=n_in, out_features=n_out, domains=domains,
                           span=call.span, module=el.module(f"{binding}_fc{i}"), binding=binding))

    out = el.stack(call, binding, x, dims, make_fc, act=lits["act"],
                   last_act=lits["last_act"], norm="none", dropout=0.0)
    return Value(out.ssa, out.type, x.deps | {el.domain_feature(args["by"])}, call.span)


def lower_partitioned_norm(el, call, sig, binding) -> Value:
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    x = el.value_of(args["input"], binding)
    ids, domains = el.domain(args["by"], sig)
    t = VecType(x.type.width)
    ssa = el.final(binding, "partitioned_norm")
    el.emit(PartitionedNorm(result=ssa, inputs=(x.ssa, ids), type=t, domains=domains,
                            span=call.span, module=el.module(f"{binding}_norm"), binding=binding))
    return Value(ssa, t, x.deps | {el.domain_feature(args["by"])}, call.span)
