"""`hamur_hypernet(by = z, rank = K)` and `hamur(h, by = ..., domain = ...)`: their signatures and
checked lowerings to a HamurHyperNetwork and HamurAdapter cells.

A cell's `by` is either a condition, and the cell gets a hyper-network of its own, or the value of
a `hamur_hypernet(...)`, whose core H(z) the cell then shares with every other cell reading it
(HAMUR's model computes one H per sample for all its cells)."""

from __future__ import annotations

from dwc.ir.ops import Slot
from dwc.ir.types import FieldsType, VecType
from dwc.layers.hamur.op import HamurAdapter, HamurHyperNetwork
from dwc.parse import ast
from dwc.sema.params import Signature, param
from dwc.sema.values import Value

_HIDDEN = (64,)

HAMUR_HYPERNET = Signature("hamur_hypernet", "network", (
    param("by", "condition", "the condition z it reads (a `condition` name)"),
    param("rank", "int", "K: the core H(z) is K x K (K² numbers generated per sample)", min=1),
    param("hidden", "int_list", "hidden widths, each Linear -> BatchNorm -> ReLU", _HIDDEN,
          min=1),
), "HAMUR's hyper-network: H(z) = ReLU(BN(...)) reshaped to K x K, per sample; cells whose `by` "
   "names it share it (docs/models.md, 'HAMUR').",
    "core = hamur_hypernet(by = z, rank = 16, hidden = [64])")

HAMUR = Signature("hamur", "network", (
    param("input", "value", "the hidden value h (width N) the cell adapts", positional=True),
    param("by", "condition", "a `hamur_hypernet(...)` value (its core H shared with the other "
          "cells reading it), or a condition z: the cell then has a hyper-network of its own"),
    param("domain", "domain", "the domain norm's domain: a categorical scenario feature, or "
          "`scenario` for the scenario cell id"),
    param("bottleneck", "int", "M: width of the bottleneck s", 32, min=1),
    param("rank", "int", "K of the cell's own hyper-network (with `by = z` only)", None, min=1),
    param("hidden", "int_list", "hidden widths of the cell's own hyper-network (with `by = z` "
          "only; default [64])", None, min=1),
), "HAMUR's adapter cell: h + DN_d(((s U2) H) V2 + b2) with the bottleneck s = sigmoid(((h U1) H) "
   "V1 + b1), H the hyper-network's K x K core, applied factor by factor; DN normalises by "
   "per-domain statistics (docs/models.md, 'HAMUR').",
    "a = hamur(h, by = core, domain = scenario, bottleneck = 32)")


def emit_hypernet(el, ssa: str, module: str, binding: str, z: Value, rank: int,
                  hidden: tuple[int, ...], span) -> HamurHyperNetwork:
    """Emit a hyper-network on the condition `z` whose output is one (rank, rank) core slot."""
    k = rank
    return el.emit(HamurHyperNetwork(
        result=ssa, inputs=(z.ssa,), type=VecType(k * k), in_features=z.type.width,
        hidden=tuple(hidden), rank=k, slots=(Slot("core", 0, (k, k)),), span=span,
        module=el.module(module), binding=binding))


def lower_hamur_hypernet(el, call, sig, binding) -> Value:
    """`el` is the elaborator (dwc.sema.elaborate): argument binding, names, diagnostics."""
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    lits = el.literals(args, sig)
    by = args["by"]
    for node in _refs(by):
        if node.name == "self":
            el.fail("DW328", "'hamur_hypernet' reads a condition, not 'self'", node.span,
                    "no layer input here", help="declare 'condition z = ...' and write 'by = z', "
                    "or give the cell its own: 'hamur(h, by = self, rank = 16, ...)'")
    z = el.condition(by, None, binding)
    op = emit_hypernet(el, el.final(binding, "hamur_hypernet"), f"{binding}_hypernet", binding,
                       z, lits["rank"], lits["hidden"], call.span)
    return Value(op.result, op.type, z.deps, call.span)


def _refs(node):
    """Every name an expression refers to."""
    if isinstance(node, ast.Ref):
        yield node
    elif isinstance(node, ast.Call):
        for arg in node.args:
            yield from _refs(arg)


def _shared(el, node) -> HamurHyperNetwork | None:
    """The hyper-network a cell's `by` names, if it names a value (a condition is None)."""
    if not isinstance(node, ast.Ref) or node.name not in el.s.values \
            or node.name in el.s.conditions:
        return None
    ssa = el.s.values[node.name].ssa
    op = next(op for op in el.s.ops if op.result == ssa)
    if not isinstance(op, HamurHyperNetwork):
        el.fail("DW328", f"'{node.name}' is neither a condition nor a hyper-network", node.span,
                "a network value",
                help=f"make it one: '{node.name} = hamur_hypernet(by = z, rank = 16)' with "
                "'condition z = ...', or write 'by = z' for the cell's own hyper-network")
    return op


def lower_hamur(el, call, sig, binding) -> Value:
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    x = el.value_of(args["input"], binding)
    if not isinstance(x.type, VecType | FieldsType):
        el.fail("DW307", "'hamur' adapts a vector value", args["input"].span, f"is {x.type}",
                help="mix the experts into one vector first, e.g. with mix(e, x)")
    lits = el.literals(args, sig)
    hyper = _shared(el, args["by"])
    if hyper is not None:
        for name in ("rank", "hidden"):
            if args[name] is not sig.param(name).default:
                el.fail("DW329", f"'{name}' belongs to the shared hyper-network "
                        f"'{args['by'].name}'", args[name].span, "set on the cell",
                        help=f"set it in '{args['by'].name} = hamur_hypernet(...)', or remove it "
                        "here")
        deps = el.s.values[args["by"].name].deps
    else:
        z = el.condition(args["by"], x, binding)
        if lits["rank"] is None:
            el.fail("DW302", "'hamur' needs 'rank' for its own hyper-network", call.span,
                    "missing argument", help=f"e.g. 'rank = 16', or share one: {sig.example}")
        hidden = _HIDDEN if lits["hidden"] is None else lits["hidden"]
        hyper = emit_hypernet(el, el.ssa(f"{binding}.hypernet"), f"{binding}_hypernet",
                              binding, z, lits["rank"], hidden, call.span)
        deps = z.deps
    ids, domains = el.domain(args["domain"], sig)
    ssa = el.final(binding, "hamur")
    t = VecType(x.type.width)
    el.emit(HamurAdapter(result=ssa, inputs=(x.ssa, hyper.result, ids), type=t,
                         bottleneck=lits["bottleneck"], rank=hyper.rank, domains=domains,
                         core=hyper.core, span=call.span, module=el.module(f"{binding}_adapter"),
                         binding=binding))
    return Value(ssa, t, x.deps | deps | {el.domain_feature(args["domain"])}, call.span)
