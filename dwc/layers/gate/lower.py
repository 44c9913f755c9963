"""`gate(x, by = z, ...)` and `ppnet(x, [widths], by = z, ...)`: their signatures and their checked
lowerings to Gate ops (a ppnet tower: linear layers, each scaled by a Gate NU on the prior)."""

from __future__ import annotations

from dwc.ir import ops as ir
from dwc.ir.types import FieldsType, VecType
from dwc.layers.gate.op import Gate
from dwc.sema.params import ACTIVATIONS, Signature, param
from dwc.sema.values import Value

GATE = Signature("gate", "network", (
    param("input", "value", "the value to gate", positional=True),
    param("by", "condition", "the gate's condition"),
    param("gamma", "float", "gate range (0, gamma)", 2.0, min=0.0, max_exclusive=False),
    param("hidden", "int", "hidden width of the gate network (default: the gated width)",
          None, min=1),
    param("per", "enum", "one gate per element, or per field (fields input)", "element",
          choices=("element", "field")),
), "PEPNet's Gate NU: x * gamma * sigmoid(W2 relu(W1 z + b1) + b2); with an EPNet "
   "condition (domain features + stop_gradient(x)) it is EPNet.",
    "ep = gate(e, by = domain_z)")

PPNET = Signature("ppnet", "network", (
    param("input", "value", "the tower input", positional=True),
    param("widths", "int_list", "layer widths of the tower", positional=True, min=1),
    param("by", "condition", "the personalised prior condition (e.g. user/item ids and "
          "stop_gradient of the tower input)"),
    param("gamma", "float", "gate range (0, gamma)", 2.0, min=0.0),
    param("gate_hidden", "int", "hidden width of each gate (default: the gated width)",
          None, min=1),
    param("placement", "enum", "where each gate multiplies: pre_linear (paper, EasyRec "
          "eager), post_linear, post_norm, post_activation (TorchEasyRec), post_dropout "
          "(FuxiCTR, EasyRec lazy)", "pre_linear",
          choices=("pre_linear", "post_linear", "post_norm", "post_activation",
                   "post_dropout")),
    param("act", "enum", "activation after each layer", "relu", choices=ACTIVATIONS),
    param("norm", "enum", "normalisation after each linear", "none",
          choices=("none", "batch", "layer")),
    param("dropout", "float", "dropout after each activation", 0.0, min=0.0, max=1.0,
          max_exclusive=True),
), "A PPNet tower: an MLP whose every layer is scaled by a Gate NU on the prior "
   "condition.", "t = ppnet(ep, [128, 64], by = prior)")


def add_gate(el, binding, module_hint, h: Value, z: Value, width, hidden, gamma, per,
              span) -> Value:
    """Emit one Gate NU on `h` (of width `width`) conditioned on `z`; the gated value."""
    fields = h.type.dims if isinstance(h.type, FieldsType) else ()
    ssa = el.ssa(f"{binding}.gated")
    t = h.type if per == "field" else VecType(width)
    el.emit(Gate(result=ssa, inputs=(h.ssa, z.ssa), type=t, in_features=z.type.width,
                 hidden=hidden or width, gamma=gamma, granularity=per, fields=tuple(fields),
                 span=span, module=el.module(module_hint), binding=binding))
    return Value(ssa, t, h.deps | z.deps, span)


def lower_gate(el, call, sig, binding) -> Value:
    """`el` is the elaborator (dwc.sema.elaborate): argument binding, names, diagnostics."""
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    x = el.value_of(args["input"], binding)
    lits = el.literals(args, sig)
    z = el.condition(args["by"], x, binding)
    if lits["per"] == "field" and not isinstance(x.type, FieldsType):
        el.fail("DW307", "'per = field' gates a fields value", args["input"].span,
                f"is {x.type}", help="build the input with fields(...)")
    out = add_gate(el, binding, f"{binding}_gate", x, z, x.type.width, lits["hidden"],
                    lits["gamma"], lits["per"], call.span)
    return el.rename_last(binding, call, out)


def lower_ppnet(el, call, sig, binding) -> Value:
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    x = el.value_of(args["input"], binding)
    lits = el.literals(args, sig)
    z = el.condition(args["by"], x, binding)
    dims = (x.type.width, *lits["widths"])

    def make_fc(i, h, n_in, n_out, ssa):
        el.emit(ir.Linear(result=ssa, inputs=(h.ssa,), type=VecType(n_out), in_features=n_in,
                          out_features=n_out, span=call.span,
                          module=el.module(f"{binding}_fc{i}"), binding=binding))

    def gate(i, h, width):
        return add_gate(el, binding, f"{binding}_gate{i}", h, z, width, lits["gate_hidden"],
                         lits["gamma"], "element", call.span)

    out = el.stack(call, binding, x, dims, make_fc, act=lits["act"], last_act=True,
                   norm=lits["norm"], dropout=lits["dropout"], gate=gate,
                   gate_at=lits["placement"])
    return Value(out.ssa, out.type, x.deps | z.deps, call.span)
