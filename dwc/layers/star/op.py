"""STAR's ops: the star-topology linear, partitioned normalisation, and the folded star linear
(fold-star's output, an IndexedLinear whose weights `for_inference()` merges)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dwc.ir.ops import DomainLinear, IndexedLinear, Op
from dwc.ir.types import IdsType


def _domain_input(op: Op, ins, domains: int) -> None:
    if ins[1] != IdsType(domains):
        op.invalid(f"domain ids {ins[1]} != ids[{domains}]")


@dataclass(frozen=True, kw_only=True)
class StarLinear(DomainLinear):
    """STAR's star-topology linear: `y = x (W * W_p[d]) + (b + b_p[d])`. inputs = (x, domain ids).

    Executed by gathering each sample's domain factors (never by running all D towers).
    """

    kind: ClassVar[str] = "star_linear"

    def params(self):
        n, m = self.in_features, self.out_features
        return (self.domains + 1) * (n * m + m)

    def flops(self):
        # the per-sample merge W * W_p[d] plus the product
        n, m = self.in_features, self.out_features
        return 2 * n * m + n * m


@dataclass(frozen=True, kw_only=True)
class FoldedStarLinear(IndexedLinear):
    """fold-star's form of a StarLinear: one merged weight set per domain, `W * W_p[d]` and
    `b + b_p[d]`, computed once by `for_inference()` (the op type is the fold's marker). It runs
    and prints as the IndexedLinear it is."""


@dataclass(frozen=True, kw_only=True)
class PartitionedNorm(Op):
    """STAR's partitioned normalisation: shared x per-domain scale, shared + per-domain shift,
    per-domain batch statistics in training and per-domain running statistics at inference.

    inputs = (x, domain ids).
    """

    kind: ClassVar[str] = "partitioned_norm"
    domains: int

    def params(self):
        return 2 * self.type.width * (self.domains + 1)

    def flops(self):
        return 6 * self.type.width

    def attrs(self):
        return {"domains": self.domains}

    def conditioning_inputs(self):
        return (self.inputs[1],)

    def verify(self, ins, producers):
        if ins[0].width != self.type.width:
            self.invalid(f"input width {ins[0].width} != its width {self.type.width}")
        _domain_input(self, ins, self.domains)


@dataclass(frozen=True, kw_only=True)
class FoldedPartitionedNorm(PartitionedNorm):
    """fold-partitioned-norm's form of a PartitionedNorm (inference): the running statistics and
    both affines merged into one scale and shift per domain, `y = x * scale[d] + shift[d]`,
    computed once by `for_inference()` (the op type is the fold's marker)."""

    def params(self):
        return 2 * self.type.width * self.domains

    def flops(self):
        return 2 * self.type.width

    def attrs(self):
        return {**super().attrs(), "stats": "folded"}
