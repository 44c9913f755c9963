"""HAMUR's IR: the hyper-network generating the K x K core H(z), the adapter cell reading it, and
the forms inference folds make of them (the op type is each fold's marker): the hyper-network
with its batch norms merged into its linears (fold-hamur-hypernet), and the per-cell adapter
whose maps are multiplied out per scenario cell (fold-scenario-layers, `per_cell_form`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from dwc.ir.ops import CellWeights, Op, ScenarioTable, Slot, _fix, verify_slot_layout
from dwc.ir.types import IdsType, VecType


@dataclass(frozen=True, kw_only=True)
class HamurHyperNetwork(Op):
    """HAMUR's hyper-network: z -> (Linear -> BatchNorm -> ReLU) per width of `hidden`, then to
    K² -> BatchNorm -> ReLU, reshaped to the K x K core H(z) (so H >= 0).

    inputs = (z,). Its output is one slot, `core` (K, K), which every adapter cell reading this
    hyper-network uses for both of its maps.
    """

    kind: ClassVar[str] = "hamur_hypernet"
    in_features: int
    hidden: tuple[int, ...]
    rank: int
    slots: tuple[Slot, ...] = ()

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.in_features, *self.hidden, self.rank * self.rank)

    @property
    def core(self) -> Slot:
        return self.slots[0]

    def _layers(self):
        return zip(self.widths, self.widths[1:], strict=False)

    def params(self):
        # each layer: weight, bias, and its batch norm's scale and shift
        return sum(a * b + 3 * b for a, b in self._layers())

    def generated(self):
        return self.rank * self.rank

    def flops(self):
        # the matmuls, each batch norm (4 per element, as `batch_norm`) and ReLU (1)
        return sum(2 * a * b + 5 * b for a, b in self._layers())

    def attrs(self):
        return {"hidden": list(self.hidden), "rank": self.rank}

    def generates(self):
        return True

    def conditioning_inputs(self):
        return (self.inputs[0],)

    def table_condition(self):
        return self.inputs[0]

    def as_table(self, cell, cells, module):
        return ScenarioTable(result=self.result, inputs=(cell,), type=self.type, span=self.span,
                             binding=self.binding, module=module, cells=cells,
                             generator=self.result, slots=self.slots)

    def verify(self, ins, producers):
        if ins[0].width != self.in_features:
            self.invalid(f"condition width {ins[0].width} != in_features {self.in_features}")
        k = self.rank
        if self.type != VecType(k * k) or [s.shape for s in self.slots] != [(k, k)]:
            self.invalid(f"must emit one ({k}, {k}) core slot")
        verify_slot_layout(self)


@dataclass(frozen=True, kw_only=True)
class FoldedHamurHyperNetwork(HamurHyperNetwork):
    """fold-hamur-hypernet's form (inference): each batch norm's running statistics and affine
    merged into the linear before it, so the network is Linear -> ReLU per layer. The op type is
    the fold's marker (torch.py's `fold_hypernet`)."""

    def params(self):
        return sum(a * b + b for a, b in self._layers())

    def flops(self):
        return sum(2 * a * b + b for a, b in self._layers())

    def attrs(self):
        return {**super().attrs(), "norm": "folded"}


def _map_flops(n: int, k: int, m: int) -> int:
    """((x U) H) V for x of width n, U: n x k, H: k x k, V: k x m, never forming U H V."""
    return 2 * (n * k + k * k + k * m)


@dataclass(frozen=True, kw_only=True)
class HamurAdapter(Op):
    """HAMUR's adapter cell on a hidden value h of width N (docs/models.md, 'HAMUR'):

        s = sigmoid(((h U1) H) V1 + b1)      U1: N x K, V1: K x M (the bottleneck M)
        u = ((s U2) H) V2 + b2               U2: M x K, V2: K x N
        y = h + DN_d(u)                      DN: gamma, beta shared; statistics per domain d

    inputs = (h, generated, domain ids). H is the hyper-network's `core` slot (K, K), per sample;
    U, V, b, gamma, beta are static. The domain norm normalises each domain's samples by that
    domain's batch statistics in training and by its running averages at inference.
    """

    kind: ClassVar[str] = "hamur_adapter"
    bottleneck: int
    rank: int
    domains: int
    core: Slot

    def params(self):
        n, m, k = self.type.width, self.bottleneck, self.rank
        return 2 * k * (n + m) + m + 3 * n

    def flops(self):
        n, m, k = self.type.width, self.bottleneck, self.rank
        # both maps applied factor by factor; sigmoid (M), domain norm (4 N), residual (N)
        return _map_flops(n, k, m) + _map_flops(m, k, n) + m + 5 * n

    def activations(self):
        return 4 * self.rank + self.bottleneck + 2 * self.type.width

    def attrs(self):
        return {"bottleneck": self.bottleneck, "rank": self.rank, "domains": self.domains,
                "core": self.core.name}

    def allocates(self):
        return True

    def conditioning_inputs(self):
        return (self.inputs[1], self.inputs[2])

    def slots_read(self):
        return (self.core,)

    def with_slots(self, slots):
        return replace(self, core=_fix(slots, self.core))

    def per_cell_form(self, table):
        """With H a per-cell table, each cell's maps W_down[c] = U1 H[c] V1 (N x M) and W_up[c]
        = U2 H[c] V2 (M x N) can be computed once; chosen only when applying them costs fewer
        FLOPs than the factors (N M < N K + K² + K M). With the domain norm's domain the cell
        itself, its eval scale and shift fold into W_up[c] and its bias."""
        n, m, k = self.type.width, self.bottleneck, self.rank
        if n * m >= n * k + k * k + k * m:
            return None
        cell = table.inputs[0]
        folds_norm = self.inputs[2] == cell
        inputs = (self.inputs[0], cell) if folds_norm else (self.inputs[0], cell, self.inputs[2])
        return ScenarioHamurAdapter(
            result=self.result, inputs=inputs, type=self.type, span=self.span,
            module=self.module, binding=self.binding, cells=table.cells,
            generator=table.generator, folded=self)

    def verify(self, ins, producers):
        if ins[0].width != self.type.width or not isinstance(self.type, VecType):
            self.invalid(f"must preserve the width of its input ({ins[0].width})")
        self.generator_input(producers)
        k = self.rank
        if self.core.shape != (k, k):
            self.invalid(f"core slot shape {self.core.shape} != ({k}, {k})")
        if self.bottleneck < 1:
            self.invalid(f"bottleneck {self.bottleneck} < 1")
        if ins[2] != IdsType(self.domains):
            self.invalid(f"domain ids {ins[2]} != ids[{self.domains}]")


@dataclass(frozen=True, kw_only=True)
class FoldedHamurAdapter(HamurAdapter):
    """fold-hamur-domain-norm's form of a HamurAdapter (inference): the domain norm's running
    statistics and affine merged into one scale and shift per domain, DN_d(u) = u s[d] + t[d],
    computed once by `for_inference()` (the op type is the fold's marker)."""

    def params(self):
        n, m, k = self.type.width, self.bottleneck, self.rank
        return 2 * k * (n + m) + m + n + 2 * n * self.domains

    def flops(self):
        n, m, k = self.type.width, self.bottleneck, self.rank
        # both maps applied factor by factor; sigmoid (M), scale and shift (2 N), residual (N)
        return _map_flops(n, k, m) + _map_flops(m, k, n) + m + 3 * n

    def attrs(self):
        return {**super().attrs(), "norm": "folded"}


@dataclass(frozen=True, kw_only=True)
class ScenarioHamurAdapter(Op):
    """Inference form of a HAMUR cell whose core H comes from a per-cell table (its hyper-network
    reads scenario features only): per cell c, W_down[c] = U1 H[c] V1 and W_up[c] = U2 H[c] V2
    computed once by `for_inference()`, then

        y = h + DN_d(sigmoid(h W_down[c] + b1) W_up[c] + b2)

    each map one matmul per cell present (or each sample's cell weights gathered in a small
    batch). inputs = (h, cell) when the domain norm's domain is the cell: its running-statistics
    scale and shift are then folded into W_up[c] and a per-cell bias; else (h, cell, domain ids),
    the norm applied after the up map. `folded` is the training cell, `generator` the value the
    table holds.
    """

    kind: ClassVar[str] = "scenario_hamur_adapter"
    cells: int
    generator: str
    folded: HamurAdapter

    @property
    def folds_norm(self) -> bool:
        return len(self.inputs) == 2

    def params(self):
        n, m = self.type.width, self.bottleneck
        # per cell: both maps and their biases; an unfolded norm's scale and shift per domain
        norm = 0 if self.folds_norm else 2 * self.folded.domains * n
        return self.cells * (2 * n * m + m + n) + norm

    @property
    def bottleneck(self) -> int:
        return self.folded.bottleneck

    def flops(self):
        n, m = self.type.width, self.bottleneck
        return 4 * n * m + m + (n if self.folds_norm else 3 * n)

    def activations(self):
        return self.bottleneck + 2 * self.type.width

    def attrs(self):
        return {"bottleneck": self.bottleneck, "cells": self.cells, "generator": self.generator,
                "norm": "folded" if self.folds_norm else "per_domain"}

    def allocates(self):
        return True

    def tabulated(self):
        return self.generator

    def cell_weights(self):
        n, m = self.type.width, self.bottleneck
        return CellWeights(gathered=n * m, copied=(n + 2 * m) + (m + 2 * n))

    def verify(self, ins, producers):
        if ins[0].width != self.type.width or self.type != self.folded.type:
            self.invalid("must preserve the width of its input, as the folded cell")
        if ins[1] != IdsType(self.cells):
            self.invalid(f"cell index {ins[1]} != ids[{self.cells}]")
        if self.folds_norm and self.folded.domains != self.cells:
            self.invalid("a folded domain norm needs the cells as its domains")
        if not self.folds_norm and ins[2] != IdsType(self.folded.domains):
            self.invalid(f"domain ids {ins[2]} != ids[{self.folded.domains}]")
