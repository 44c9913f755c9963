"""M2M's meta attention: the training op (its meta unit generated per sample) and its per-cell
inference form (fold-scenario-layers, when the generator reads the scenario only)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from dwc.ir.ops import CellWeights, Op, Slot, _fix
from dwc.ir.types import ExpertsType, IdsType, VecType


@dataclass(frozen=True, kw_only=True)
class MetaAttention(Op):
    """M2M meta attention of one task over the experts (docs/models.md, 'M2M').

    inputs = (experts, generated). Each expert output E_i is joined with the task's learned
    representation T (`task_dim`), run through the meta unit whose weights the generator made from
    the scenario representation, scored by v, and the experts are mixed by softmax(scores).
    `slots` are the meta unit's layers (weight, bias) in the generator's output.
    """

    kind: ClassVar[str] = "meta_attention"
    experts: int
    task_dim: int
    widths: tuple[int, ...]
    slots: tuple[Slot, ...]
    act: str = "leaky_relu"

    def params(self):
        return self.task_dim + self.widths[-1]

    def flops(self):
        dims = (self.type.width + self.task_dim, *self.widths)
        unit = sum(2 * a * b for a, b in zip(dims, dims[1:], strict=False))
        return self.experts * (unit + 2 * self.widths[-1] + 2 * self.type.width)

    def attrs(self):
        return {"task_dim": self.task_dim, "widths": list(self.widths), "act": self.act}

    def slots_read(self):
        return self.slots

    def with_slots(self, slots):
        return replace(self, slots=tuple(_fix(slots, s) for s in self.slots))

    def per_cell_form(self, table):
        return ScenarioMetaAttention(
            result=self.result, inputs=(self.inputs[0], table.inputs[0]), type=self.type,
            span=self.span, module=self.module, binding=self.binding, cells=table.cells,
            generator=table.generator, folded=self)

    def verify(self, ins, producers):
        if ins[0] != ExpertsType(self.experts, self.type.width) \
                or self.type != VecType(self.type.width):
            self.invalid(f"expects experts[{self.experts}; {self.type.width}] -> "
                         f"vec[{self.type.width}]")
        dims = (self.type.width + self.task_dim, *self.widths)
        shapes = [shape for a, b in zip(dims, dims[1:], strict=False) for shape in ((a, b), (b,))]
        if [s.shape for s in self.slots] != shapes:
            self.invalid(f"meta unit slots {[s.shape for s in self.slots]} != layers {shapes}")
        self.generator_input(producers)


@dataclass(frozen=True, kw_only=True)
class ScenarioMetaAttention(Op):
    """Inference form of an M2M meta attention whose meta unit is generated from the scenario
    only (its numbers come from a ScenarioTable): each cell's layer weights computed once,
    inputs = (experts, scenario cell index).

    The task representation T is the same for every sample, so the first layer's T rows fold
    into a per-cell bias: `h1 = act(E_i W1[c][:H] + (T W1[c][H:] + b1[c]))`. Every layer then
    runs as one matmul per cell over that cell's samples x experts rows (or per-sample gathers
    for small batches), instead of gathering every sample's whole table row. `folded` is the
    training op, `generator` the training value the table tabulates.
    """

    kind: ClassVar[str] = "scenario_meta_attention"
    cells: int
    generator: str
    folded: MetaAttention

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of each per-cell layer, the first without the task rows."""
        f = self.folded
        dims = (self.type.width, *f.widths)
        return list(zip(dims, dims[1:], strict=False))

    def params(self):
        per_cell = sum(a * b + b for a, b in self.layer_shapes)
        return self.cells * per_cell + self.folded.widths[-1]

    def flops(self):
        unit = sum(2 * a * b for a, b in self.layer_shapes)
        f = self.folded
        return f.experts * (unit + 2 * f.widths[-1] + 2 * self.type.width)

    def attrs(self):
        f = self.folded
        return {"experts": f.experts, "widths": list(f.widths), "act": f.act,
                "cells": self.cells, "generator": self.generator}

    def tabulated(self):
        return self.generator

    def cell_weights(self):
        # every expert's row gathers (and, grouped, copies for) each of its cell's layers
        experts = self.folded.experts
        return CellWeights(gathered=experts * max(a * b for a, b in self.layer_shapes),
                           copied=experts * sum(a + 2 * b for a, b in self.layer_shapes))

    def verify(self, ins, producers):
        if ins[1] != IdsType(self.cells):
            self.invalid(f"cell index {ins[1]} != ids[{self.cells}]")
        if self.type != self.folded.type:
            self.invalid("the folded meta attention's type differs")
        if ins[0] != ExpertsType(self.folded.experts, self.type.width):
            self.invalid(f"experts {ins[0]} != experts[{self.folded.experts}; {self.type.width}]")

