"""MLoRA's lint rules (run by `dwc lint` through `Kind.lint_rules`)."""

from __future__ import annotations

from collections.abc import Iterator

from dwc.diagnostics import Label
from dwc.layers.mlora.op import MloraLinear
from dwc.lint.rules.base import Rule


def _layers(ctx) -> Iterator[MloraLinear]:
    for op in ctx.model.ops:
        if isinstance(op, MloraLinear):
            yield op


class MloraRankSavesNothing(Rule):
    """## What it does
    Flags an mlora layer n -> m whose rank r has r (n + m) >= n m.

    ## Why is this bad?
    Each domain's factors A[d] (n x r) and B[d] (r x m) then hold at least as many numbers as a
    full n x m matrix per domain: a per-domain layer would cost no more and is not restricted
    to rank r.

    ## Example
    ```
    h = mlora(x, [16], by = scenario, rank = 12)
    ```

    ## Use instead
    ```
    h = mlora(x, [16], by = scenario, rank = 4)
    ```
    """

    code = "DW522"

    def check(self, ctx):
        for op in _layers(ctx):
            n, m, r = op.in_features, op.out_features, op.rank
            if r * (n + m) >= n * m:
                best = max(1, (n * m) // (2 * (n + m)))
                yield self.diag(
                    f"rank {r} of mlora layer {op.layer} ({n} -> {m}) saves nothing: its factors "
                    f"hold {r * (n + m):,} numbers per domain, a full matrix {n * m:,}",
                    Label(op.span, f"layer {op.layer}"),
                    f"use a rank below {-(-n * m // (n + m))} (e.g. {best}), or "
                    "star(...) for full per-domain weights")


class MloraSingleDomain(Rule):
    """## What it does
    Flags an mlora layer whose domain has a single id.

    ## Why is this bad?
    With one domain every sample uses the same adapter, so W + A B is one matrix: the layer
    computes what a plain mlp layer does, with the adapter's parameters and FLOPs on top.

    ## Example
    ```
    feature site : categorical(vocab = 1, dim = 4) scenario
    h = mlora(x, [64], by = site)
    ```

    ## Use instead
    ```
    h = mlp(x, [64])
    ```
    """

    code = "DW523"

    def check(self, ctx):
        seen: set[tuple[int, int]] = set()
        for op in _layers(ctx):
            where = (op.span.start, op.span.end)
            if op.domains == 1 and where not in seen:
                seen.add(where)
                yield self.diag(
                    "mlora over a single domain is a plain mlp with extra parameters",
                    Label(op.span, "one domain"),
                    "use mlp(...) with the same widths, or a domain with several ids")
