"""`meta_attention(experts, by = s)`: its signature and its checked lowering to a Generator (the
meta unit's weights, made from S) and a MetaAttention reading them."""

from __future__ import annotations

from dwc.ir.ops import Generator, Slot
from dwc.ir.types import VecType
from dwc.layers.meta_attention.op import MetaAttention
from dwc.sema.params import ACTIVATIONS, Signature, param
from dwc.sema.values import Value

SIGNATURE = Signature("meta_attention", "network", (
    param("experts", "value", "an experts value", positional=True),
    param("by", "condition", "the scenario knowledge representation S"),
    param("widths", "int_list", "layer widths of the meta unit (default: one square layer "
          "of width expert + task_dim)", None, min=1),
    param("task_dim", "int", "width of the task's learned representation T_t "
          "(default: the expert width)", None, min=1),
    param("act", "enum", "meta unit activation", "leaky_relu", choices=ACTIVATIONS[:-1]),
), "M2M meta attention for one task: experts scored by a meta unit whose weights are "
   "generated linearly from S.", "r1 = meta_attention(e, by = s)")


def lower(el, call, sig, binding) -> Value:
    """`el` is the elaborator (dwc.sema.elaborate)."""
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    e = el.experts_arg(args["experts"], binding)
    lits = el.literals(args, sig)
    s = el.condition(args["by"], e, binding)
    task_dim = lits["task_dim"] or e.type.dim
    widths = lits["widths"] or (e.type.dim + task_dim,)
    dims = (e.type.dim + task_dim, *widths)
    slots, offset = [], 0
    for i, (a, b) in enumerate(zip(dims, dims[1:], strict=False)):
        w = Slot(f"w{i}", offset, (a, b))
        bias = Slot(f"b{i}", w.end, (b,))
        slots += [w, bias]
        offset = bias.end
    gen = el.ssa(f"{binding}.generated")
    el.emit(Generator(result=gen, inputs=(s.ssa,), type=VecType(offset),
                      in_features=s.type.width, slots=tuple(slots), span=call.span,
                      module=el.module(f"{binding}_generator"), binding=binding))
    t = VecType(e.type.dim)
    ssa = el.final(binding, "meta_attention")
    el.emit(MetaAttention(result=ssa, inputs=(e.ssa, gen), type=t, experts=e.type.count,
                          task_dim=task_dim, widths=tuple(widths), slots=tuple(slots),
                          act=lits["act"], span=call.span,
                          module=el.module(f"{binding}_attention"), binding=binding))
    return Value(ssa, t, e.deps | s.deps, call.span)
