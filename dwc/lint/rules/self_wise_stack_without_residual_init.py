"""DW515 self-wise-stack-without-residual-init."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.ir import ops as ir
from dwc.lint.rules.base import LintContext, Rule, calls, ref_nodes
from dwc.parse import ast

_UNBOUNDED = ("default", "hyperfan")


class SelfWiseStackWithoutResidualInit(Rule):
    """## What it does
    Flags two or more stacked self-wise layers (`dynamic(by = self)` or `by = concat(self, z)`, with
    or without `apg(...)`, in one `mlp` or in statements that feed each other) whose generators
    start with `init = default` or `init = hyperfan`, written on the layer or in `defaults
    dynamic(...)`. A normalisation between the layers (`norm = ...`) ends a stack.

    ## Why is this bad?
    A self-wise layer multiplies its input by weights generated from that input, so the scale of
    its output is a power of its input's, and every further layer raises it again: at the start of
    training such a stack overflows (5 layers on numeric inputs of scale 100 give NaN, with either
    init) or, with hyperfan on inputs below unit scale, vanishes. Self-wise generators default to
    `init = residual`, which starts every layer as a static one, bounded whatever its input
    (docs/language.md, 'Values and dynamic layers').

    ## Example
    ```
    h = mlp(x, [64, 32]) dynamic(by = self, init = default)
    ```

    ## Use instead
    ```
    h = mlp(x, [64, 32]) dynamic(by = self)  # init = residual
    ```
    """

    code = "DW515"

    def check(self, ctx):
        producers = ctx.model.producers()
        stacks = _stacks(ctx)
        reported: set[str] = set()
        for layer, (depth, _) in stacks:
            if depth < 2 or layer.binding in reported:
                continue
            found = _init_written(ctx, layer, producers[layer.inputs[1]])
            if found is None:
                continue  # no `init` written for a `by` that reads `self`: not this rule's case
            reported.add(layer.binding)
            init, where, defaults = found
            own = [(d, s) for op, (d, s) in stacks if op.binding == layer.binding]
            depth = max(d for d, _ in own)
            stacked = [op for op, _ in stacks if any(op.result in s for _, s in own)]
            names = list(dict.fromkeys(op.binding for op in stacked))
            inits = sorted({producers[op.inputs[1]].init for op in stacked})
            subject = (f"'{layer.binding}' stacks {depth} self-wise layers" if names ==
                       [layer.binding] else f"'{layer.binding}' is in a stack of {depth} self-wise "
                       "layers (" + ", ".join(f"'{n}'" for n in names) + ")")
            message = (f"{subject} with init = {' or '.join(inits)}: each multiplies its input by "
                       "weights generated from that input, so the scale compounds from layer to "
                       "layer: at the start of training the stack's output overflows (NaN) or "
                       "vanishes, sooner the more layers and the further the inputs are from unit "
                       "scale")
            why = ("self-wise generators default to init = residual, which starts each layer as "
                   "a static one, bounded whatever the scale of its input")
            if defaults is None:
                yield self.diag(message, Label(where.span, f"init = {init} on a self-wise layer"),
                                f"drop '{_text(ctx, where)}' ({why}), or write 'init = residual'")
            else:
                yield self.diag(
                    message, Label(where.span, f"init = {init} from 'defaults'"),
                    f"write 'init = residual' in this layer's dynamic(...), or drop "
                    f"'{_text(ctx, defaults)}' from 'defaults' ({why})",
                    Label(defaults.span, "the default init of the dynamic layers below"))


def _stacks(ctx: LintContext) -> list[tuple[ir.Op, tuple[int, set[str]]]]:
    """Every self-wise layer whose generator starts unbounded (init default or hyperfan), in graph
    order: the length of the longest stack of such layers through it, and the results of the
    layers stacked with it, itself included (above or below it; a norm in between ends a stack)."""
    g = ctx.model
    producers = g.producers()
    layers = []
    for op in g.ops:
        if not isinstance(op, ir.DynamicLinear | ir.LowRankDynamicLinear):
            continue
        gen = producers.get(op.inputs[1])
        if isinstance(gen, ir.Generator) and gen.init in _UNBOUNDED \
                and op.inputs[0] in g.ancestors(gen.inputs[0]):
            layers.append(op)
    results = {op.result for op in layers}
    below = {op.result: g.ancestors(op.inputs[0], stop=ir.Norm) & results for op in layers}
    above = {op.result: {o.result for o in layers if op.result in below[o.result]}
             for op in layers}
    up: dict[str, int] = {}
    for op in layers:  # graph order: the layers below come first
        up[op.result] = 1 + max((up[r] for r in below[op.result]), default=0)
    down: dict[str, int] = {}
    for op in reversed(layers):
        down[op.result] = 1 + max((down[r] for r in above[op.result]), default=0)
    return [(op, (up[op.result] + down[op.result] - 1,
                  {op.result} | below[op.result] | above[op.result])) for op in layers]


def _init_written(ctx: LintContext, layer: ir.Op, gen: ir.Generator):
    """Where the spec sets the init of `layer`'s generator, when its `by` reads `self`: (init,
    the `init` option or the layer's dynamic(...) when `defaults` sets it, that defaults option
    or None); None when no init is written (or the statement is not found)."""
    stmt = next((s for s in ctx.spec.statements
                 if isinstance(s, ast.LetDecl) and s.name.text == layer.binding), None)
    if stmt is None:
        return None
    call = next((c for c in calls(stmt.value) if any(m.span == gen.span for m in c.modifiers)),
                None)
    dynamic = call and next((m for m in call.modifiers if m.name.text == "dynamic"), None)
    if dynamic is None:
        return None
    by = next((k.value for k in dynamic.kwargs if k.name.text == "by"),
              dynamic.args[0] if dynamic.args else None)
    if not any(r.name == "self" for r in ref_nodes(by)):
        return None
    own = next((k for k in dynamic.kwargs if k.name.text == "init"), None)
    if own is not None:
        return gen.init, own, None
    defaults = [k for s in ctx.spec.statements
                if isinstance(s, ast.DefaultsDecl) and s.span.start < stmt.span.start
                for m in s.modifiers if m.name.text == "dynamic"
                for k in m.kwargs if k.name.text == "init"]
    return (gen.init, dynamic, defaults[-1]) if defaults else None


def _text(ctx: LintContext, node) -> str:
    return ctx.source.text[node.span.start:node.span.end]
