"""`senet(fields(...), reduction = r, act = relu | sigmoid)`: its signature and its checked
lowering to a SeNet op."""

from __future__ import annotations

from dwc.ir.types import FieldsType
from dwc.layers.senet.op import SeNet
from dwc.sema.params import Signature, param
from dwc.sema.values import Value

SIGNATURE = Signature("senet", "network", (
    param("input", "value", "fields of equal width (from `fields(...)`)", positional=True),
    param("reduction", "int", "reduction ratio r: the bottleneck has max(1, F // r) units", 3,
          min=1),
    param("act", "enum", "excitation output activation", "relu", choices=("relu", "sigmoid")),
), "FiBiNET's SENet field gating (self-conditioned, no biases).",
    "e = senet(fields(user_id, item_id, category))")


def lower(el, call, sig, binding) -> Value:
    """`el` is the elaborator (dwc.sema.elaborate): argument binding, names, diagnostics."""
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    x = el.value_of(args["input"], binding)
    lits = el.literals(args, sig)
    if not isinstance(x.type, FieldsType) or len(set(x.type.dims)) != 1:
        el.fail("DW306", "'senet' gates fields of equal width", args["input"].span,
                f"{x.type}", help="build the input with fields(...) of features that "
                "share one embedding dim")
    n_fields = len(x.type.dims)
    ssa = el.final(binding, "senet")
    el.emit(SeNet(result=ssa, inputs=(x.ssa,), type=x.type, fields=n_fields,
                  reduced=max(1, n_fields // lits["reduction"]), act=lits["act"],
                  span=call.span, module=el.module(f"{binding}_senet"), binding=binding))
    return Value(ssa, x.type, x.deps, call.span)
