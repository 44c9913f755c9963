"""`m3oe(x, by = ..., tasks = T, widths = [...], experts = E)`: its signature and its checked
lowering to the STAR slot, the shared representation's core ops, the experts, the gates, the
fusion and the towers (op.py has the whole dataflow)."""

from __future__ import annotations

from dwc.ir import ops as ir
from dwc.ir.types import ExpertsType, VecType
from dwc.layers.m3oe.op import M3oEFusion, M3oESlot, M3oETowers, NormExperts
from dwc.sema.params import Signature, param
from dwc.sema.values import Value

SIGNATURE = Signature("m3oe", "network", (
    param("input", "value", "the input (the flattened embeddings)", positional=True),
    param("by", "domain", "the domain: a categorical scenario feature, or `scenario` for the "
          "scenario cell id"),
    param("tasks", "int", "number of tasks T: the value has one logit column per task",
          2, min=1),
    param("widths", "int_list", "the STAR slot's width, the shared representation's, then "
          "each expert layer's (the towers keep the last)", (512, 256, 256, 64), min=1),
    param("experts", "int", "number of shared experts E (besides one expert per domain and "
          "one per task)", 4, min=1),
), "M3oE: a STAR slot and a skip path make the shared representation h; shared, domain and "
   "task experts on h; per (domain, task) a gate over the shared experts reading "
   "stop_gradient(h), a two-level fusion with the domain and task experts, and a tower. The "
   "value holds the sample's own domain's T task logits (take one with slice).",
    "m = m3oe(x, by = scenario, tasks = 2)")


def _norm_layer(el, call, binding: str, tag: str, h: Value, width: int) -> Value:
    """One Linear -> LayerNorm -> ReLU layer on `h`, as core ops named `<binding>.<tag>...`."""
    fc, norm, act = (el.ssa(f"{binding}.{tag}{part}") for part in ("_fc", "_norm", ""))
    t = VecType(width)
    el.emit(ir.Linear(result=fc, inputs=(h.ssa,), type=t, in_features=h.type.width,
                      out_features=width, span=call.span, module=el.module(f"{binding}_{tag}_fc"),
                      binding=binding))
    el.emit(ir.Norm(result=norm, inputs=(fc,), type=t, mode="layer", span=call.span,
                    module=el.module(f"{binding}_{tag}_norm"), binding=binding))
    el.emit(ir.Activation(result=act, inputs=(norm,), type=t, fn="relu", span=call.span,
                          binding=binding))
    return Value(act, t, h.deps, call.span)


def lower(el, call, sig, binding) -> Value:
    """`el` is the elaborator (dwc.sema.elaborate): argument binding, names, diagnostics."""
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    x = el.value_of(args["input"], binding)
    if isinstance(x.type, ExpertsType):
        el.fail("DW341", "'m3oe' reads one flat vector per sample, not experts",
                args["input"].span, f"is {x.type}",
                help="pass the embeddings, e.g. m3oe(concat(user_id, item_id), by = scenario)")
    lits = el.literals(args, sig)
    widths = lits["widths"]
    if len(widths) < 3:
        el.fail("DW340", f"'m3oe' needs at least 3 widths, got {len(widths)}",
                args["widths"].span, "the slot, h, then the expert layers",
                help="e.g. widths = [512, 256, 256, 64]: the STAR slot, the shared "
                "representation, two expert layers")
    ids, domains = el.domain(args["by"], sig)
    tasks, shared = lits["tasks"], lits["experts"]
    slot_width, h_width, *expert_widths = widths
    width = widths[-1]

    slot = el.ssa(f"{binding}.slot")
    el.emit(M3oESlot(result=slot, inputs=(x.ssa, ids), type=VecType(slot_width),
                     in_features=x.type.width, out_features=slot_width, domains=domains,
                     span=call.span, module=el.module(f"{binding}_slot"), binding=binding))
    star = _norm_layer(el, call, binding, "star", Value(slot, VecType(slot_width), x.deps,
                                                        call.span), h_width)
    skip = _norm_layer(el, call, binding, "skip", x, h_width)
    h = el.ssa(f"{binding}.h")
    el.emit(ir.Add(result=h, inputs=(star.ssa, skip.ssa), type=VecType(h_width),
                   span=call.span, binding=binding))
    detached = el.ssa(f"{binding}.h_detached")  # the gates send no gradient into h
    el.emit(ir.StopGradient(result=detached, inputs=(h,), type=VecType(h_width),
                            span=call.span, binding=binding))
    count = shared + domains + tasks
    experts = el.ssa(f"{binding}.experts")
    el.emit(NormExperts(result=experts, inputs=(h,), type=ExpertsType(count, width),
                        in_features=h_width, widths=tuple(expert_widths), span=call.span,
                        module=el.module(f"{binding}_experts"), binding=binding))
    gates = el.ssa(f"{binding}.gates")
    el.emit(ir.IndexedLinear(result=gates, inputs=(detached, ids), type=VecType(tasks * shared),
                             in_features=h_width, out_features=tasks * shared, domains=domains,
                             span=call.span, module=el.module(f"{binding}_gates"),
                             binding=binding))
    fused = el.ssa(f"{binding}.fused")
    el.emit(M3oEFusion(result=fused, inputs=(experts, gates, ids),
                       type=ExpertsType(tasks, width), shared=shared, domains=domains,
                       tasks=tasks, span=call.span, module=el.module(f"{binding}_fusion"),
                       binding=binding))
    ssa = el.final(binding, "m3oe")
    t = VecType(tasks)
    el.emit(M3oETowers(result=ssa, inputs=(fused, ids), type=t, domains=domains, tasks=tasks,
                       width=width, span=call.span, module=el.module(f"{binding}_towers"),
                       binding=binding))
    return Value(ssa, t, x.deps | {el.domain_feature(args["by"])}, call.span)
