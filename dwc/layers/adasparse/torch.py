"""What AdaSparse's ops add to the generated torch module: a `_DwcAdaSparsePruner` (runtime.py)
per pruner; for a pruner tabulated per scenario cell, an `nn.Embedding` of every cell's factors
or, when it also reads the activations, a `_DwcAdaSparseCellPruner` with the condition's scores
per cell; and how `for_inference()` computes those tables from the training pruner."""

from __future__ import annotations

from dwc.backends.torch.layout import q
from dwc.layers.adasparse.op import AdaSparsePruner, ScenarioPruner


def _settings(op: AdaSparsePruner) -> list[str]:
    """The pruner form's own settings, by keyword (the others keep the helper's defaults)."""
    args = [f"pruner={q(op.pruner)}", f"eps={op.eps!r}"]
    if op.pruner != "binarization":
        args.append(f"beta={op.beta!r}")
    return args


def emit_pruner(b, op: AdaSparsePruner) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    args = [str(op.in_features), str(op.type.width), *_settings(op)]
    if op.pruner != "scaling":
        args += [f"alpha={op.alpha!r}", f"alpha_step={op.alpha_step!r}"]
    if op.reads_hidden:
        args.append("hidden=True")
    if op.sparsity_weight:
        args += [f"sparsity={op.sparsity!r}", f"sparsity_weight={op.sparsity_weight!r}"]
    attr = b.module_line(op, "adasparse", "_DwcAdaSparsePruner", args)
    if op.sparsity_weight:
        b.auxiliary_loss(op, attr)
    b.fwd(op, f"self.{attr}", [b.var(i) for i in op.inputs])


def emit_scenario_pruner(b, op: ScenarioPruner) -> None:
    x, cell, *read = (b.var(i) for i in op.inputs)
    if not op.folded.reads_hidden:
        attr = b.attr(op)
        b.init_line(op, f"self.{attr} = nn.Embedding({op.cells}, {op.type.width})")
        b.fwd(op, f"{x} * self.{attr}({cell})")
        return
    attr = b.module_line(op, "adasparse", "_DwcAdaSparseCellPruner",
                         [str(op.cells), str(op.type.width), *_settings(op.folded)])
    b.fwd(op, f"self.{attr}", [x, cell, *read])


def fold_scenario_pruner(ctx, op: ScenarioPruner) -> None:
    """Every cell's factors (0 where pruned) from the training pruner at its current alpha; for
    a pruner reading the activations, every cell's z W_e, its W_v and its alpha. `ctx` is the
    backend's FoldContext (dwc.backends.torch.folds)."""
    a, pruner, z = ctx.attr(op.module), ctx.attr(op.folded.module), ctx.table(op.generator)
    if not op.folded.reads_hidden:
        ctx.copy(f"{a}.weight", f"self.{pruner}.factors({z})")
        return
    ctx.copy(f"{a}.domain_weight", f"self.{pruner}.domain_scores({z})")
    ctx.copy(f"{a}.hidden_weight", f"self.{pruner}.hidden_weight")
    ctx.copy(f"{a}.alpha", f"self.{pruner}.alpha")
