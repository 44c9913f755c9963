"""`experts(x, count, widths)` and `mix(experts, by)`: their signatures and checked lowerings."""

from __future__ import annotations

from dwc.ir.types import ExpertsType, VecType
from dwc.layers.experts.op import Experts, Mix
from dwc.sema.params import ACTIVATIONS, Signature, param
from dwc.sema.values import Value

EXPERTS = Signature("experts", "network", (
    param("input", "value", "the shared input", positional=True),
    param("count", "int", "number of experts", positional=True, min=1),
    param("widths", "int_list", "layer widths of every expert MLP", positional=True, min=1),
    param("act", "enum", "activation after each expert layer", "relu", choices=ACTIVATIONS[:-1]),
), "MMoE shared experts: `count` MLPs on the same input (value of kind experts).",
    "e = experts(x, 4, [64, 32])")

MIX = Signature("mix", "network", (
    param("experts", "value", "an experts value", positional=True),
    param("by", "value", "the gate input (MMoE: the shared input)", positional=True),
), "MMoE gate: softmax(linear(by)) mixture of the experts.", "t1 = mix(e, x)")


def lower_experts(el, call, sig, binding) -> Value:
    """`el` is the elaborator (dwc.sema.elaborate)."""
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    x = el.value_of(args["input"], binding)
    lits = el.literals(args, sig)
    t = ExpertsType(lits["count"], lits["widths"][-1])
    ssa = el.final(binding, "experts")
    el.emit(Experts(result=ssa, inputs=(x.ssa,), type=t, in_features=x.type.width,
                    widths=lits["widths"], act=lits["act"], span=call.span,
                    module=el.module(f"{binding}_experts"), binding=binding))
    return Value(ssa, t, x.deps, call.span)


def lower_mix(el, call, sig, binding) -> Value:
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    e = el.experts_arg(args["experts"], binding)
    g = el.value_of(args["by"], binding)
    t = VecType(e.type.dim)
    ssa = el.final(binding, "mix")
    el.emit(Mix(result=ssa, inputs=(e.ssa, g.ssa), type=t, in_features=g.type.width,
                count=e.type.count, span=call.span, module=el.module(f"{binding}_gate"),
                binding=binding))
    return Value(ssa, t, e.deps | g.deps, call.span)
