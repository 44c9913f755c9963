"""M3oE's lint rules: configurations that are legal but leave one of its expert groups nothing
to do (DW526, DW527)."""

from __future__ import annotations

from dwc.diagnostics import Label
from dwc.layers.m3oe.op import M3oEFusion
from dwc.lint.rules.base import Rule, calls
from dwc.source import Span


def _option_span(ctx, op: M3oEFusion, name: str) -> Span:
    """The span of the value of option `name` in the m3oe call `op` was lowered from (the
    call's own span when the option is not written)."""
    for stmt in ctx.spec.statements:
        for call in calls(getattr(stmt, "value", None)):
            if call.span == op.span:
                for kw in call.kwargs:
                    if kw.name.text == name:
                        return kw.value.span
    return op.span


def _fusions(ctx):
    return (op for op in ctx.graph.ops if isinstance(op, M3oEFusion))


class M3oESingleTask(Rule):
    """## What it does
    Flags an `m3oe` with `tasks = 1`.

    ## Why is this bad?
    M3oE balances each task's own expert against the mean of the other tasks' experts. With one
    task there are no others: the task expert is one more shared expert behind a scalar weight,
    the task level balances nothing, and its parameters and FLOPs buy no structure. A
    single-task model over domains is `star` with a per-domain head.

    ## Example
    ```
    m = m3oe(x, by = scenario, tasks = 1)
    ```

    ## Use instead
    ```
    m = m3oe(x, by = scenario, tasks = 2)  # one output per task: slice(m, 0), slice(m, 1)
    ```
    """

    code = "DW526"

    def check(self, ctx):
        for op in _fusions(ctx):
            if op.tasks == 1:
                yield self.diag(f"'{op.binding}' is an m3oe with one task: its task expert "
                                "has no other task to balance against",
                                Label(_option_span(ctx, op, "tasks"), "one task"),
                                "give it two or more tasks, one output each (slice(m, 0), "
                                "slice(m, 1)); for one task, star(...) with a per-domain head")


class M3oESingleDomain(Rule):
    """## What it does
    Flags an `m3oe` whose domain (`by`) has a single id.

    ## Why is this bad?
    With one domain the STAR slot is one linear layer with its weight split in two factors,
    the domain expert is one more shared expert, and the per-domain gates and towers are the
    only ones: M3oE's domain level does nothing that a plain multi-task MMoE does not.

    ## Example
    ```
    feature site : categorical(vocab = 1, dim = 4) scenario
    m = m3oe(x, by = site, tasks = 2)
    ```

    ## Use instead
    ```
    feature site : categorical(vocab = 3, dim = 4) scenario
    m = m3oe(x, by = site, tasks = 2)
    ```
    """

    code = "DW527"

    def check(self, ctx):
        for op in _fusions(ctx):
            if op.domains == 1:
                span = _option_span(ctx, op, "by")
                yield self.diag(f"'{op.binding}' is an m3oe over one domain: its domain experts, "
                                "gates and towers have no other domain to specialise against",
                                Label(span, "one domain"),
                                "condition it on a scenario feature with two or more ids")
