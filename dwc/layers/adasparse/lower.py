"""`adasparse(x, widths, by = e, ...)`: its signature and its checked lowering to AdaSparse's
network, an input pruner and one pruner per layer (AdaSparsePruner ops) around a plain stack."""

from __future__ import annotations

from dwc.ir import ops as ir
from dwc.ir.types import VecType
from dwc.layers.adasparse.op import PRUNERS, AdaSparsePruner
from dwc.parse import ast
from dwc.sema.params import ACTIVATIONS, Signature, param
from dwc.sema.values import Value

SIGNATURE = Signature("adasparse", "network", (
    param("input", "value", "the domain-agnostic input x", positional=True),
    param("widths", "int_list", "layer widths", positional=True, min=1),
    param("by", "condition", "the domain condition e (e.g. `condition e = concat(domain)`): "
          "every pruner reads it, and the first layer reads [e ; pruned x]"),
    param("pruner", "enum", "binarization: pi = 1[sigmoid(alpha s) > eps]; scaling: "
          "q = beta sigmoid(s); fusion: q = beta sigmoid(alpha s); pi = q 1[q > eps]",
          "fusion", choices=PRUNERS),
    param("eps", "float", "pruning threshold: a unit whose factor is at most eps is zeroed",
          0.01, min=0.0),
    param("beta", "float", "factor range (0, beta) of scaling and fusion", 2.0, min=0.0),
    param("alpha", "float", "initial slope alpha of binarization and fusion", 1.0, min=0.0),
    param("alpha_step", "float", "alpha's growth per training forward (the annealing)", 1e-4,
          min=0.0),
    param("reads", "enum", "what each pruner scores: domain (e alone, a per-domain sparse "
          "structure that serving tabulates) or domain_and_hidden ([e ; activations], the "
          "public port)", "domain", choices=("domain", "domain_and_hidden")),
    param("sparsity", "float", "target pruned fraction of the sparsity regulariser", 0.0,
          min=0.0, max=1.0, max_exclusive=True),
    param("sparsity_weight", "float", "weight w of the sparsity regulariser, the training loss "
          "term w abs(soft pruned fraction - sparsity) per pruner (0: off)", 0.0, min=0.0),
    param("act", "enum", "activation after each layer", "relu", choices=ACTIVATIONS),
    param("norm", "enum", "normalisation after each linear (before the activation)", "batch",
          choices=("none", "batch", "layer")),
    param("dropout", "float", "dropout after each activation", 0.0, min=0.0, max=1.0,
          max_exclusive=True),
), "AdaSparse's FCN: h_0 = [e ; P_0 x], then Linear -> norm -> act -> dropout -> P_l per "
   "layer; each pruner P_l multiplies its units by domain-aware factors, exactly 0 for a "
   "pruned unit.", "h = adasparse(x, [64, 32], by = e)")

_USES = {"beta": ("scaling", "fusion"), "alpha": ("binarization", "fusion"),
         "alpha_step": ("binarization", "fusion")}
"""The options only some pruner forms read."""


def _reads_self(node: object) -> bool:
    if isinstance(node, ast.Ref):
        return node.name == "self"
    return isinstance(node, ast.Call) and any(_reads_self(a) for a in node.args)


def _check(el, call, sig, args, lits) -> None:
    """Options that contradict each other or the chosen pruner form."""
    form = lits["pruner"]
    for name, forms in _USES.items():
        if form not in forms and args[name] is not sig.param(name).default:
            el.fail("DW326", f"'{name}' has no effect with pruner = {form}", args[name].span,
                    f"{form} does not read it", help=f"remove '{name}', or choose pruner = "
                    f"{' or '.join(forms)}")
    if lits["sparsity_weight"] == 0 and args["sparsity"] is not sig.param("sparsity").default:
        el.fail("DW326", "'sparsity' has no effect without 'sparsity_weight'",
                args["sparsity"].span, "the regulariser is off",
                help="add e.g. 'sparsity_weight = 0.1' to train towards this pruned fraction")
    if form != "binarization" and lits["beta"] == 0:
        el.fail("DW324", f"'beta' of {form} must be > 0", args["beta"].span,
                "every factor would be 0", help="the public code uses beta = 2.0")
    top = 1.0 if form == "binarization" else lits["beta"]
    if not 0 < lits["eps"] < top:
        where = args["eps"] if args["eps"] is not sig.param("eps").default else call
        bound = "1 (sigmoid's range)" if form == "binarization" else f"beta = {top:g}"
        el.fail("DW324", f"the threshold eps = {lits['eps']:g} must lie in (0, {bound}) for "
                f"pruner = {form}", where.span,
                "prunes every unit" if lits["eps"] >= top else "prunes nothing",
                help="the public code uses eps = 0.01")


def lower(el, call, sig, binding) -> Value:
    """`el` is the elaborator (dwc.sema.elaborate): argument binding, names, diagnostics."""
    el.no_modifiers(call, sig)
    args = el.bind_args(call, sig)
    x = el.value_of(args["input"], binding)
    lits = el.literals(args, sig)
    _check(el, call, sig, args, lits)
    if _reads_self(args["by"]):
        el.fail("DW325", "'by' of adasparse names the domain condition, not 'self'",
                args["by"].span, "reads the layer's input",
                help="write 'by = e' with 'condition e = concat(domain)'; pruners that also "
                     "read the activations are 'reads = domain_and_hidden'")
    z = el.condition(args["by"], x, binding)
    hidden = lits["reads"] == "domain_and_hidden"
    knobs = {k: lits[k] for k in ("pruner", "eps", "beta", "alpha", "alpha_step", "sparsity",
                                  "sparsity_weight")}

    def prune(i: int, h: Value, width: int) -> Value:
        """Pruner i on h, scoring z (and h itself: the activations before dropout)."""
        ssa = el.ssa(f"{binding}.pruned{i}")
        el.emit(AdaSparsePruner(result=ssa, inputs=(h.ssa, z.ssa, h.ssa)[:3 if hidden else 2],
                                type=VecType(width), in_features=z.type.width,
                                reads_hidden=hidden, **knobs, span=call.span,
                                module=el.module(f"{binding}_pruner{i}"), binding=binding))
        return Value(ssa, VecType(width), h.deps | z.deps, call.span)

    pruned = prune(0, x, x.type.width)
    first = el.ssa(f"{binding}.input")
    t = VecType(z.type.width + x.type.width)
    el.emit(ir.Concat(result=first, inputs=(z.ssa, pruned.ssa), type=t, span=call.span,
                      binding=binding))
    h0 = Value(first, t, pruned.deps, call.span)

    def make_fc(i, h, n_in, n_out, ssa):
        el.emit(ir.Linear(result=ssa, inputs=(h.ssa,), type=VecType(n_out), in_features=n_in,
                          out_features=n_out, span=call.span,
                          module=el.module(f"{binding}_fc{i}"), binding=binding))

    # Each pruner multiplies its layer's activations before the dropout: dropout's mask and
    # scale commute with the factors, so the product is the paper's P_l(Dropout(a_l)), and a
    # pruner that reads the activations reads them without the dropout mask.
    out = el.stack(call, binding, h0, (t.width, *lits["widths"]), make_fc, act=lits["act"],
                   last_act=True, norm=lits["norm"], dropout=lits["dropout"],
                   gate=lambda i, h, width: prune(i + 1, h, width), gate_at="post_activation")
    return Value(out.ssa, out.type, x.deps | z.deps, call.span)
