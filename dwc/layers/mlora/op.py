"""MLoRA's ops: the layer with a shared linear and a low-rank adapter per domain, and its merged
form (fold-mlora's output, an IndexedLinear whose weights `for_inference()` computes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dwc.ir.ops import CellWeights, DomainLinear, IndexedLinear


@dataclass(frozen=True, kw_only=True)
class MloraLinear(DomainLinear):
    """MLoRA's linear: `y = Dropout(x W + b) + (x A[d]) B[d] + c[d]`, d each sample's domain.

    inputs = (x, domain ids). W is in x out and shared; each domain has A[d] (in x rank),
    B[d] (rank x out) and c[d] (out); B and c start at 0, so the layer starts as the shared
    linear. Dropout (rate `dropout`, training only) is on the shared path alone. Executed per
    domain present (or gathering each sample's factors in a small batch), never all D adapters.
    `layer` is its index in the stack (for messages).
    """

    kind: ClassVar[str] = "mlora_linear"
    rank: int
    dropout: float
    layer: int = 0

    def shared_params(self) -> int:
        n, m = self.in_features, self.out_features
        return n * m + m

    def domain_params(self) -> int:
        """A[d], B[d] and c[d] of every domain: the scenario parts."""
        n, m, r = self.in_features, self.out_features, self.rank
        return self.domains * (r * (n + m) + m)

    def merged_params(self) -> int:
        """What fold-mlora's merged form holds: W + A[d] B[d] and b + c[d] for every domain."""
        n, m = self.in_features, self.out_features
        return self.domains * (n * m + m)

    def params(self):
        return self.shared_params() + self.domain_params()

    def flops(self):
        n, m, r = self.in_features, self.out_features, self.rank
        return 2 * (n * m + r * (n + m))

    def activations(self):
        return self.rank + 2 * self.out_features

    def attrs(self):
        return {**super().attrs(), "rank": self.rank, "dropout": self.dropout}

    def cell_weights(self):
        # two per-domain products (x A[d], then B[d]), each gathering and copying its own rows
        n, m, r = self.in_features, self.out_features, self.rank
        return CellWeights(gathered=max(n * r, r * m), copied=(n + 2 * r) + (r + 2 * m))

    def verify(self, ins, producers):
        super().verify(ins, producers)
        if not 1 <= self.rank <= min(self.in_features, self.out_features):
            self.invalid(f"rank {self.rank} outside 1 .. min(in, out)")
        if not 0.0 <= self.dropout < 1.0:
            self.invalid(f"dropout {self.dropout} outside [0, 1)")


@dataclass(frozen=True, kw_only=True)
class MergedMloraLinear(IndexedLinear):
    """fold-mlora's form of an MloraLinear: one merged weight set per domain, `W + A[d] B[d]`
    and `b + c[d]`, computed once by `for_inference()` (the op type is the fold's marker; dropout
    is off at inference, so the merge is exact). It runs and prints as the IndexedLinear it is."""
