"""POSO's own ops: the per-expert gates of `poso_experts` (ExpertGates), their per-cell table
form (ScenarioExpertGates, fold-scenario-table's output), and a per-cell gate table folded into
the per-cell linear layer it feeds (GatedIndexedLinear, fold-scenario-gates' output); the types
of the folded forms are their markers. A `poso` stack needs no op of its own: its layers are
Linear ops and its gates PEPNet's Gate NUs (dwc/layers/gate/op.py), which compute the same
`gamma * sigmoid(W2 relu(W1 z + b1) + b2)`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dwc.ir.ops import IndexedLinear, Op
from dwc.ir.types import ExpertsType, IdsType
from dwc.layers.gate.op import ScenarioGate


@dataclass(frozen=True, kw_only=True)
class ExpertGates(Op):
    """POSO(MMoE)'s personalised expert gates: expert k's output times its own gate,
    `e_k * gamma * sigmoid(relu(z W1_k + b1_k) W2_k + b2_k)`, one gate per element of the expert.

    inputs = (experts, z); the type is the experts value's (experts[E; d]). The E gates' first
    layers run as one GEMM (z read once), their second layers as one batched matmul.
    """

    kind: ClassVar[str] = "expert_gates"
    in_features: int
    hidden: int
    gamma: float = 2.0

    @property
    def count(self) -> int:
        return self.type.count  # type: ignore[union-attr]

    @property
    def dim(self) -> int:
        return self.type.dim  # type: ignore[union-attr]

    def params(self):
        p, h, d = self.in_features, self.hidden, self.dim
        return self.count * (p * h + h + h * d + d)

    def flops(self):
        p, h, d = self.in_features, self.hidden, self.dim
        return self.count * (2 * p * h + 2 * h * d + d)

    def attrs(self):
        return {"hidden": self.hidden, "gamma": self.gamma}

    def verify(self, ins, producers):
        experts, z = ins
        if not isinstance(self.type, ExpertsType) or experts != self.type:
            self.invalid(f"gates {experts} as {self.type}: an experts value keeps its type")
        if z.width != self.in_features:
            self.invalid(f"condition width {z.width} != in_features {self.in_features}")
        if self.hidden < 1:
            self.invalid(f"hidden width {self.hidden} < 1")

    def conditioning_inputs(self):
        return (self.inputs[1],)

    def table_condition(self):
        return self.inputs[1]

    def as_table(self, cell, cells, module):
        return ScenarioExpertGates(result=self.result, inputs=(self.inputs[0], cell),
                                   type=self.type, span=self.span, binding=self.binding,
                                   module=module, cells=cells, generator=self.inputs[1],
                                   folded=self)


@dataclass(frozen=True, kw_only=True)
class ScenarioExpertGates(Op):
    """Inference form of ExpertGates whose condition depends on the scenario cell only
    (fold-scenario-table): `e * G[c]`, every cell's E x d gate values computed once.
    inputs = (experts, scenario cell index); `generator` is the condition the table is computed
    from, `folded` the training gates."""

    kind: ClassVar[str] = "scenario_expert_gates"
    cells: int
    generator: str
    folded: ExpertGates

    def params(self):
        return self.cells * self.type.width

    def flops(self):
        return self.type.width

    def attrs(self):
        return {"cells": self.cells, "condition": self.generator}

    def verify(self, ins, producers):
        if ins[0] != self.type or ins[1] != IdsType(self.cells):
            self.invalid(f"expects ({self.type}, ids[{self.cells}])")
        if self.type != self.folded.type:
            self.invalid("the folded gates' type differs")

    def tabulated(self):
        return self.generator


@dataclass(frozen=True, kw_only=True)
class GatedIndexedLinear(IndexedLinear):
    """fold-scenario-gates' form of a per-cell gate table feeding a per-cell linear layer on the
    same cell index: `(x * G[c]) W_c + b_c = x (diag(G[c]) W_c) + b_c`, the gate values multiplied
    into each cell's weight rows once by `for_inference()` (the op type is the fold's marker). It
    runs as the IndexedLinear it is (and prints as one, naming the gate it absorbed). `gate` is the
    table it absorbed, `layer` the per-cell linear it replaced (whose own fold, if any, runs
    first)."""

    gate: ScenarioGate
    layer: IndexedLinear

    def attrs(self):
        return {**super().attrs(), "gated_by": self.gate.folded.module}

    def verify(self, ins, producers):
        super().verify(ins, producers)
        if self.gate.type.width != self.in_features or self.gate.cells != self.domains:
            self.invalid(f"absorbs a table of {self.gate.cells} x {self.gate.type.width} gates "
                         f"into {self.domains} x {self.in_features} weight rows")
