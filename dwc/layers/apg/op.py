"""APG's IR: the knobs a spec's `apg(...)` sets on a dynamic layer, and the low-rank dynamic
linear the APG passes (passes.py) turn it into, with its costs and invariants."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from dwc.ir.ops import DynamicWeights, Op, Slot, _fix


@dataclass(frozen=True)
class ApgKnobs:
    """What a spec's `apg(...)` asked for one layer; the APG passes carry it out."""

    rank: int
    share: bool = True
    overparam: int | None = None
    decompose: bool = True

    def __str__(self) -> str:
        return (f"rank={self.rank} share={self.share} overparam={self.overparam} "
                f"decompose={self.decompose}")


@dataclass(frozen=True, kw_only=True)
class LowRankDynamicLinear(Op):
    """APG's low-rank dynamic linear: `y = ((x U) S(z)) V + b` (docs/models.md, 'APG').

    inputs = (x, generated). S is the K x K slot `core` of the generator's output. With
    `share`, U (N x K) and V (K x M) are static parameters shared by all samples; otherwise they are
    generated too (slots `u` and `v`). With over-parameterisation `overparam = P`, the static factors
    are trained as products U = U_l U_r (N x P . P x K) and V = V_l V_r (K x P . P x M).
    `decompose` applies the factors in turn; without it, the per-sample N x M matrix W = U S V is
    materialised and applied with a batched matmul (same function, more memory and FLOPs).
    """

    kind: ClassVar[str] = "lowrank_dynamic_linear"
    in_features: int
    out_features: int
    rank: int
    core: Slot
    share: bool = True
    overparam: int | None = None
    decompose: bool = True
    u: Slot | None = None
    v: Slot | None = None
    bias: str = "generated"
    bias_slot: Slot | None = None
    apg: ApgKnobs | None = None
    layer: str = ""

    def params(self):
        n, m, k, p = self.in_features, self.out_features, self.rank, self.overparam
        static = 0
        if self.share:
            static = (n * p + p * k + k * p + p * m) if p else (n * k + k * m)
        return static + (m if self.bias == "static" else 0)

    def activations(self):
        n, m, k = self.in_features, self.out_features, self.rank
        if self.decompose:
            return 2 * k + m
        return n * k + n * m + m  # U S, then the per-sample W = U S V

    def flops(self):
        n, m, k = self.in_features, self.out_features, self.rank
        if self.decompose:
            return 2 * (n * k + k * k + k * m)
        # materialise W = U S V per sample (N x K x K, then N x K x M), then apply it
        return 2 * (n * k * k + n * k * m) + 2 * n * m

    def attrs(self):
        a: dict[str, object] = {"in": self.in_features, "out": self.out_features,
                                "rank": self.rank, "share": self.share,
                                "overparam": self.overparam, "decompose": self.decompose,
                                "bias": self.bias, "core": self.core.name}
        if self.u:
            a["u"], a["v"] = self.u.name, self.v.name
        if self.bias_slot:
            a["bias_slot"] = self.bias_slot.name
        return a

    def slots_read(self):
        return tuple(s for s in (self.core, self.u, self.v, self.bias_slot) if s is not None)

    def with_slots(self, slots):
        return replace(self, core=_fix(slots, self.core), u=_fix(slots, self.u),
                       v=_fix(slots, self.v), bias_slot=_fix(slots, self.bias_slot))

    def allocates(self):
        return True

    def dynamic_weights(self):
        if self.share:
            return DynamicWeights((self.core,), rank=self.rank, module=self.module)
        return DynamicWeights((self.u, self.core, self.v), module=self.module)

    def verify(self, ins, producers):
        self.generator_input(producers)
        n, m, k = self.in_features, self.out_features, self.rank
        if not 1 <= k <= min(n, m):
            self.invalid(f"rank {k} outside 1..min({n}, {m})")
        if self.core.shape != (k, k):
            self.invalid(f"core slot shape {self.core.shape} != ({k}, {k})")
        if self.share != (self.u is None and self.v is None):
            self.invalid("shared factors are static (no u/v slots); unshared ones are generated")
        if not self.share and (self.u.shape != (n, k) or self.v.shape != (k, m)):
            self.invalid("u/v slot shapes do not match (in, rank) and (rank, out)")
        if self.overparam and not self.share:
            self.invalid("over-parameterisation needs shared static factors")
        if (self.bias == "generated") != (self.bias_slot is not None):
            self.invalid("generated bias needs a bias slot (and only then)")
        if self.bias_slot is not None and self.bias_slot.shape != (self.out_features,):
            self.invalid("bias slot shape does not match the output width")


@dataclass(frozen=True, kw_only=True)
class FoldedLowRankDynamicLinear(LowRankDynamicLinear):
    """fold-overparam's result (inference): a low-rank layer whose shared factors U = U_l U_r
    and V = V_l V_r are multiplied out once by `for_inference()`, so it keeps N K + K M
    parameters. The op type is the fold's marker (torch.py's `fold_overparam`)."""

    def verify(self, ins, producers):
        super().verify(ins, producers)
        if not self.share or self.overparam is not None:
            self.invalid("holds the multiplied-out shared factors of an over-parameterised layer")
