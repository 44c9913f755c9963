"""`hmoe(x, by = ...)`: its signature and its checked lowering to MMoE's shared experts (an
Experts op, dwc/layers/experts/) and the Hmoe op over them."""

from __future__ import annotations

from dwc.ir.types import ExpertsType, VecType
from dwc.layers.experts.op import Experts
from dwc.layers.hmoe.op import FUSIONS, Hmoe
from dwc.parse import ast
from dwc.sema.params import ACTIVATIONS, Signature, param
from dwc.sema.values import Value

SIGNATURE = Signature("hmoe", "network", (
    param("input", "value", "the shared input, read by the experts, the gates and the fusion "
          "nets", positional=True),
    param("by", "domain", "the scenario: a categorical scenario feature, or `scenario` for the "
          "scenario cell id; one gate, tower and head per id"),
    param("experts", "int", "number of shared experts", 4, min=1),
    param("expert", "int_list", "layer widths of every expert MLP", (256, 128), min=1),
    param("gate", "int_list", "hidden widths of each scenario's gate (a bias-free linear to the "
          "experts follows)", (64,), min=1),
    param("tower", "int_list", "layer widths of each scenario's tower", (64,), min=1),
    param("fusion", "int_list", "hidden widths of each scenario's fusion net (a bias-free "
          "linear to one weight per scenario follows)", (64,), min=1),
    param("fuse", "enum", "what the fusion mixes: `label` the heads' logits (the paper's label "
          "space), `tower` the towers' outputs before the head (the public ports)", "label",
          choices=FUSIONS),
    param("act", "enum", "activation after every hidden layer", "relu", choices=ACTIVATIONS[:-1]),
), "HMoE: MMoE experts with a gate, tower and head per scenario, the heads fused by weights "
   "read from the input, the other scenarios' paths behind a stop-gradient; the logit of the "
   "sample's own scenario head (width 1).",
    "y = hmoe(x, by = scenario, experts = 4, fuse = label)")


def lower(el, call, sig, binding) -> Value:
    """`el` is the elaborator (dwc.sema.elaborate)."""
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    x = el.value_of(args["input"], binding)
    if isinstance(x.type, ExpertsType):
        el.fail("DW321", "'hmoe' builds its own experts from its input", args["input"].span,
                f"is {x.type}", help="pass the shared input instead, e.g. 'hmoe(x, by = "
                "scenario, experts = 4, expert = [256, 128])'")
    lits = el.literals(args, sig)
    by = args["by"]
    if isinstance(by, ast.Call) or isinstance(by, ast.Ref) and by.name in el.s.values:
        what = "a condition" if isinstance(by, ast.Ref) and by.name in el.s.conditions \
            else "a value"
        el.fail("DW322", f"'by' of 'hmoe' is {what}, not a scenario id", by.span,
                "not discrete ids", help="write 'by = scenario' or 'by = <a categorical "
                "feature marked scenario>': it picks each sample's head, and the gates and "
                "fusion weights already read the input")
    ids, heads = el.domain(by, sig)
    if heads < 2:
        el.fail("DW320", f"'hmoe' needs at least two scenarios; 'by' has {heads} id",
                by.span, "one scenario", help="use a domain with two or more ids, or "
                "'mix(experts(x, 4, [256, 128]), x)' for a single task")
    width = x.type.width
    e = ExpertsType(lits["experts"], lits["expert"][-1])
    experts = el.ssa(f"{binding}.experts")
    el.emit(Experts(result=experts, inputs=(x.ssa,), type=e, in_features=width,
                    widths=lits["expert"], act=lits["act"], span=call.span,
                    module=el.module(f"{binding}_experts"), binding=binding))
    ssa = el.final(binding, "hmoe")
    el.emit(Hmoe(result=ssa, inputs=(x.ssa, ids, experts), type=VecType(1), in_features=width,
                 experts=e.count, expert_dim=e.dim, heads=heads, gate=lits["gate"],
                 tower=lits["tower"], fusion=lits["fusion"], fuse=lits["fuse"], act=lits["act"],
                 span=call.span, module=el.module(f"{binding}_hmoe"), binding=binding))
    return Value(ssa, VecType(1), x.deps | {el.domain_feature(by)}, call.span)
