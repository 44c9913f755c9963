"""HAMUR's lint rules: ranks that are legal but do not do what a low-rank adapter is for."""

from __future__ import annotations

import math
from collections.abc import Iterator

from dwc.diagnostics import Label
from dwc.layers.hamur.op import HamurAdapter, HamurHyperNetwork
from dwc.lint.rules.base import LintContext, Rule


def _cells(ctx: LintContext) -> Iterator[tuple[HamurAdapter, HamurHyperNetwork, int, int, int]]:
    """Every adapter cell with its hyper-network and (N, M, K)."""
    producers = ctx.model.producers()
    for op in ctx.model.ops:
        if isinstance(op, HamurAdapter):
            yield op, producers[op.inputs[1]], op.type.width, op.bottleneck, op.rank


def _where(op: HamurAdapter, hyper: HamurHyperNetwork, k: int) -> tuple[Label, ...]:
    """A label on the hyper-network that sets the rank, when it is another statement's."""
    return () if hyper.span == op.span else (Label(hyper.span, f"rank {k} set here"),)


class HamurRankNotLow(Rule):
    """## What it does
    Flags a HAMUR cell whose rank K is at least min(N, M), N the cell's width and M its
    bottleneck (and whose core stays smaller than the map: otherwise DW521 applies).

    ## Why is this bad?
    The down map U H V (N x M) then has no rank bound: K >= min(N, M) makes it a general N x M
    matrix. The factorisation still shrinks what is generated per sample from N M to K²
    numbers, which may be all that is wanted; a low-rank adapter needs K below min(N, M).

    ## Example
    ```
    a = hamur(h, by = z, domain = scenario, rank = 32, bottleneck = 32)
    ```

    ## Use instead
    ```
    a = hamur(h, by = z, domain = scenario, rank = 16, bottleneck = 32)
    ```
    """

    code = "DW520"

    def check(self, ctx):
        for op, hyper, n, m, k in _cells(ctx):
            if min(n, m) <= k and k * k < n * m:
                yield self.diag(
                    f"rank {k} >= min({n}, {m}): the {n} -> {m} down map U H V is not low-rank",
                    Label(op.span, f"{n} -> {m} -> {n} cell"),
                    f"use a rank below {min(n, m)} for a low-rank adapter; K = {k} only shrinks "
                    f"what is generated per sample ({k * k:,} numbers instead of {n * m:,})",
                    *_where(op, hyper, k))


class HamurCoreLargerThanMap(Rule):
    """## What it does
    Flags a HAMUR cell whose K x K core has at least as many numbers as its N x M down map.

    ## Why is this bad?
    The hyper-network generates K² numbers per sample and its last layer costs K² times its input
    width in multiply-adds: more than generating the N x M map itself, so the factored adapter
    saves nothing.

    ## Example
    ```
    a = hamur(h, by = z, domain = scenario, rank = 65, bottleneck = 32)
    ```

    ## Use instead
    ```
    a = hamur(h, by = z, domain = scenario, rank = 16, bottleneck = 32)
    ```
    """

    code = "DW521"

    def check(self, ctx):
        for op, hyper, n, m, k in _cells(ctx):
            if k * k >= n * m:
                below = math.isqrt(n * m - 1)
                yield self.diag(
                    f"the {k} x {k} core holds {k * k:,} numbers, the {n} -> {m} down map "
                    f"{n * m:,}", Label(op.span, f"{n} -> {m} -> {n} cell"),
                    f"use a rank of at most {below}, or below {min(n, m)} for a low-rank "
                    "adapter", *_where(op, hyper, k))
