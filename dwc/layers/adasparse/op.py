"""AdaSparse's ops: the neuron pruner (`x * pi(z[, v])`) of every layer of an `adasparse` network,
and its inference form on the scenario cell (fold-scenario-table; the op type is the marker)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dwc.ir.ops import Op
from dwc.ir.types import IdsType

PRUNERS = ("binarization", "scaling", "fusion")


@dataclass(frozen=True, kw_only=True)
class AdaSparsePruner(Op):
    """AdaSparse's domain-aware neuron pruner: `x * pi(s)` with scores `s = z W_e` (reads the
    domain condition z only) or `s = z W_e + v W_v` (`reads_hidden`: also the activations v it
    gates, the public port's form). pi is 0 for a pruned unit: binarization `1[sigma(alpha s) >
    eps]`, scaling `q 1[q > eps]` with `q = beta sigma(s)`, fusion the same with
    `q = beta sigma(alpha s)`; alpha starts at `alpha` and grows by `alpha_step` per training
    forward.

    inputs = (x, z) or, with `reads_hidden`, (x, z, v); `in_features` is z's width.
    """

    kind: ClassVar[str] = "adasparse_pruner"
    in_features: int
    pruner: str = "fusion"
    eps: float = 0.01
    beta: float = 2.0
    alpha: float = 1.0
    alpha_step: float = 1e-4
    reads_hidden: bool = False
    sparsity: float = 0.0
    """The regulariser's target pruned fraction."""
    sparsity_weight: float = 0.0
    """The regulariser's weight (0: no auxiliary loss)."""

    def params(self):
        n = self.type.width
        return self.in_features * n + (n * n if self.reads_hidden else 0)

    def flops(self):
        n = self.type.width
        return 2 * self.in_features * n + (2 * n * n if self.reads_hidden else 0) + n

    def attrs(self):
        a: dict[str, object] = {"pruner": self.pruner, "eps": self.eps}
        if self.pruner != "binarization":
            a["beta"] = self.beta
        if self.pruner != "scaling":
            a["alpha"], a["alpha_step"] = self.alpha, self.alpha_step
        a["reads"] = "domain_and_hidden" if self.reads_hidden else "domain"
        if self.sparsity_weight:
            a["sparsity"], a["sparsity_weight"] = self.sparsity, self.sparsity_weight
        return a

    def conditioning_inputs(self):
        return (self.inputs[1],)

    def table_condition(self):
        return self.inputs[1]

    def as_table(self, cell, cells, module):
        inputs = (self.inputs[0], cell, *self.inputs[2:])
        return ScenarioPruner(result=self.result, inputs=inputs, type=self.type, span=self.span,
                              binding=self.binding, module=module, cells=cells,
                              generator=self.inputs[1], folded=self)

    def verify(self, ins, producers):
        n = self.type.width
        if len(ins) != (3 if self.reads_hidden else 2):
            self.invalid("reads (x, z), or (x, z, v) when it reads the hidden activations")
        if ins[0].width != n:
            self.invalid(f"pruned width {ins[0].width} != its width {n}")
        if ins[1].width != self.in_features:
            self.invalid(f"condition width {ins[1].width} != in_features {self.in_features}")
        if self.reads_hidden and ins[2].width != n:
            self.invalid(f"read activations' width {ins[2].width} != its width {n}")
        if self.pruner not in PRUNERS:
            self.invalid(f"unknown pruner form {self.pruner!r}")
        top = 1.0 if self.pruner == "binarization" else self.beta
        if not 0.0 < self.eps < top:
            self.invalid(f"threshold eps = {self.eps} outside (0, {top:g})")


@dataclass(frozen=True, kw_only=True)
class ScenarioPruner(Op):
    """Inference form of an AdaSparsePruner whose condition depends on the scenario cell only
    (fold-scenario-table). Without `folded.reads_hidden` the factors are a function of the cell:
    `x * Pi[c]`, every cell's pi computed once (0 where a unit is pruned). With it, the
    condition's share of the scores is: `s = C[c] + v W_v` with `C[c] = z_c W_e`, the rest of the
    pruner as trained. inputs = (x, cell) or (x, cell, v); `generator` is the condition value
    the table is computed from, `folded` the training pruner.
    """

    kind: ClassVar[str] = "scenario_pruner"
    cells: int
    generator: str
    folded: AdaSparsePruner

    def params(self):
        n = self.type.width
        return self.cells * n + (n * n if self.folded.reads_hidden else 0)

    def flops(self):
        n = self.type.width
        return (2 * n * n if self.folded.reads_hidden else 0) + n

    def attrs(self):
        return {"cells": self.cells, "condition": self.generator, "pruner": self.folded.pruner,
                "reads": "domain_and_hidden" if self.folded.reads_hidden else "domain"}

    def verify(self, ins, producers):
        n = self.type.width
        if len(ins) != len(self.folded.inputs) or ins[1] != IdsType(self.cells):
            self.invalid(f"expects the pruned value, ids[{self.cells}] and the pruner's other "
                         "inputs")
        if ins[0].width != n or self.type != self.folded.type:
            self.invalid(f"pruned width {ins[0].width} != the folded pruner's {n}")

    def tabulated(self):
        return self.generator
