"""`poso(x, [widths], by = pc, ...)` and `poso_experts(x, count, [widths], by = pc, ...)`: their
signatures and checked lowerings. A POSO-MLP is a stack of Linear layers whose every layer's
output, after its activation, is scaled by a Gate NU on the personalisation code (the gate kind's
op); POSO(MMoE)'s experts are MMoE's Experts op followed by an ExpertGates op."""

from __future__ import annotations

from dwc.ir import ops as ir
from dwc.ir.types import ExpertsType, VecType
from dwc.layers.experts.op import Experts
from dwc.layers.gate.lower import add_gate
from dwc.layers.poso.op import ExpertGates
from dwc.parse import ast
from dwc.sema.params import ACTIVATIONS, Signature, param
from dwc.sema.values import Value

_BY = param("by", "condition", "the personalisation code pc: a condition on user-group features "
            "(new or regular user, activity level, registration age)")
_GAMMA = param("gamma", "float", "gate range (0, gamma): C of the paper; 2 lets a gate start at "
               "about 1 and amplify as well as damp", 2.0)
_GATE_HIDDEN = param("gate_hidden", "int", "hidden width of each gate network", 32, min=1)

POSO = Signature("poso", "network", (
    param("input", "value", "the input value", positional=True),
    param("widths", "int_list", "layer widths", positional=True, min=1),
    _BY, _GAMMA, _GATE_HIDDEN,
    param("act", "enum", "activation after each layer", "relu", choices=ACTIVATIONS),
    param("dropout", "float", "dropout after each gated layer", 0.0, min=0.0, max=1.0,
          max_exclusive=True),
), "POSO-MLP: an MLP whose every layer's output is scaled by its own personalised gate, "
   "gamma * sigmoid(W2 relu(W1 pc + b1) + b2).", "h = poso(x, [64, 32], by = pc)")

POSO_EXPERTS = Signature("poso_experts", "network", (
    param("input", "value", "the shared input", positional=True),
    param("count", "int", "number of experts", positional=True, min=1),
    param("widths", "int_list", "layer widths of every expert MLP", positional=True, min=1),
    _BY, _GAMMA, _GATE_HIDDEN,
    param("act", "enum", "activation after each expert layer", "relu", choices=ACTIVATIONS[:-1]),
), "POSO(MMoE)'s experts: MMoE experts (a value of kind experts, for `mix`) whose expert k is "
   "scaled by its own personalised gate g_k(pc).", "e = poso_experts(x, 4, [64, 32], by = pc)")


def _reads_self(node: object) -> bool:
    if isinstance(node, ast.Ref):
        return node.name == "self"
    return isinstance(node, ast.Call) and any(_reads_self(a) for a in node.args)


def _code(el, args, sig, x: Value, binding: str) -> Value:
    """The personalisation code: a declared condition, never the layer's own input."""
    node = args["by"]
    if isinstance(node, ast.Ref) and (node.name == "scenario" or node.name in el.s.features):
        what = "the scenario cell id" if node.name == "scenario" else f"feature '{node.name}'"
        el.fail("DW336", f"'{sig.name}' gates on a personalisation code (a condition), not on "
                f"{what}", node.span, "not a condition",
                help="declare the code from user-group features, e.g. 'condition pc = "
                "concat(user_group, activity)', and write 'by = pc'")
    if _reads_self(node):
        el.fail("DW338", f"'{sig.name}' gates on a personalisation code, not on its own input",
                node.span, "reads the layer input",
                help="declare the code from user-group features, e.g. 'condition pc = "
                "concat(user_group, activity)', and write 'by = pc'")
    return el.condition(node, x, binding)


def _checked(el, call, sig, binding):
    """The arguments, the input (a flat vector) and the literals of a POSO call."""
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    x = el.value_of(args["input"], binding)
    if isinstance(x.type, ExpertsType):
        name = args["input"].name if isinstance(args["input"], ast.Ref) else "e"
        fix = ("gate MMoE's experts with 'poso_experts(x, count, [widths], by = pc)' on their "
               f"input, or mix them first: 'poso(mix({name}, x), ...)'") if sig.name == "poso" \
            else ("'poso_experts' makes its own experts: give it their shared input, or mix "
                  f"these first: 'mix({name}, x)'")
        el.fail("DW339", f"'{sig.name}' reads a vector, and this is an experts value",
                args["input"].span, f"is {x.type}", help=fix)
    lits = el.literals(args, sig)
    if lits["gamma"] <= 0:
        el.fail("DW337", f"'gamma' of '{sig.name}' must be positive: the gates lie in (0, gamma)",
                args["gamma"].span, f"is {lits['gamma']:g}",
                help="write gamma = 2 (POSO's C: the gates start at about 1)")
    return args, x, lits


def lower_poso(el, call, sig, binding) -> Value:
    """Linear -> activation -> Gate NU(pc) -> dropout per layer (`el`: the elaborator)."""
    args, x, lits = _checked(el, call, sig, binding)
    pc = _code(el, args, sig, x, binding)

    def make_fc(i, h, n_in, n_out, ssa):
        el.emit(ir.Linear(result=ssa, inputs=(h.ssa,), type=VecType(n_out), in_features=n_in,
                          out_features=n_out, span=call.span,
                          module=el.module(f"{binding}_fc{i}"), binding=binding))

    def gate(i, h, width):
        return add_gate(el, binding, f"{binding}_gate{i}", h, pc, width, lits["gate_hidden"],
                        lits["gamma"], "element", call.span)

    out = el.stack(call, binding, x, (x.type.width, *lits["widths"]), make_fc, act=lits["act"],
                   last_act=True, norm="none", dropout=lits["dropout"], gate=gate,
                   gate_at="post_activation")
    return Value(out.ssa, out.type, x.deps | pc.deps, call.span)


def lower_poso_experts(el, call, sig, binding) -> Value:
    """MMoE's experts, then every expert times its own gate on pc."""
    args, x, lits = _checked(el, call, sig, binding)
    pc = _code(el, args, sig, x, binding)
    t = ExpertsType(lits["count"], lits["widths"][-1])
    experts = el.ssa(f"{binding}.experts")
    el.emit(Experts(result=experts, inputs=(x.ssa,), type=t, in_features=x.type.width,
                    widths=lits["widths"], act=lits["act"], span=call.span,
                    module=el.module(f"{binding}_experts"), binding=binding))
    ssa = el.final(binding, "gated")
    el.emit(ExpertGates(result=ssa, inputs=(experts, pc.ssa), type=t,
                        in_features=pc.type.width, hidden=lits["gate_hidden"],
                        gamma=lits["gamma"], span=call.span, module=el.module(f"{binding}_gates"),
                        binding=binding))
    return Value(ssa, t, x.deps | pc.deps, call.span)
