"""`lhuc(h, by = feature | scenario)`: its signature and its checked lowering to a Lhuc op."""

from __future__ import annotations

from dwc.ir.types import VecType
from dwc.layers.lhuc.op import Lhuc
from dwc.sema.params import Signature, param
from dwc.sema.values import Value

SIGNATURE = Signature("lhuc", "network", (
    param("input", "value", "the hidden layer to scale", positional=True),
    param("by", "domain", "a categorical scenario feature, or `scenario` for the scenario cell id"),
), "LHUC: multiply by 2*sigmoid(r[id]), a free vector per condition id, initialised so the "
   "gate starts at 1.", "h2 = lhuc(h, by = country)")


def lower(el, call, sig, binding) -> Value:
    """`el` is the elaborator (dwc.sema.elaborate): argument binding, names, diagnostics."""
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    x = el.value_of(args["input"], binding)
    ids, domains = el.domain(args["by"], sig)
    ssa = el.final(binding, "lhuc")
    t = VecType(x.type.width)
    el.emit(Lhuc(result=ssa, inputs=(x.ssa, ids), type=t, conditions=domains, span=call.span,
                 module=el.module(f"{binding}_lhuc"), binding=binding))
    return Value(ssa, t, x.deps | {el.domain_feature(args["by"])}, call.span)
