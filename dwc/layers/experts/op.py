"""MMoE's ops: the shared experts and a gate's mixture of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dwc.ir.ops import Op
from dwc.ir.types import ExpertsType, VecType


def verify_expert_stack(op: Op, ins) -> None:
    """What every op of parallel expert MLPs checks (its `in_features`, `widths` and an experts
    type of the last width): MMoE's experts here, M3oE's layer-normed ones."""
    if ins[0].width != op.in_features:
        op.invalid(f"input width {ins[0].width} != in_features {op.in_features}")
    if not op.widths:
        op.invalid("an expert needs at least one layer")
    if not isinstance(op.type, ExpertsType) or op.type.dim != op.widths[-1]:
        op.invalid(f"type {op.type} != experts[E; {op.widths[-1]}]")


@dataclass(frozen=True, kw_only=True)
class Experts(Op):
    """E parallel expert MLPs on the same input (MMoE / M2M): output B x E x H."""

    kind: ClassVar[str] = "experts"
    in_features: int
    widths: tuple[int, ...]
    act: str = "relu"

    def params(self):
        dims = (self.in_features, *self.widths)
        count = self.type.count  # type: ignore[union-attr]
        return count * sum(a * b + b for a, b in zip(dims, dims[1:], strict=False))

    def flops(self):
        dims = (self.in_features, *self.widths)
        count = self.type.count  # type: ignore[union-attr]
        return count * sum(2 * a * b for a, b in zip(dims, dims[1:], strict=False))

    def attrs(self):
        return {"widths": list(self.widths), "act": self.act}

    def verify(self, ins, producers):
        verify_expert_stack(self, ins)


@dataclass(frozen=True, kw_only=True)
class Mix(Op):
    """MMoE gate: `sum_i softmax(x W + b)_i E_i`. inputs = (experts, gate input)."""

    kind: ClassVar[str] = "mix"
    in_features: int
    count: int

    def params(self):
        return self.in_features * self.count + self.count

    def flops(self):
        return 2 * self.in_features * self.count + 2 * self.count * self.type.width

    def verify(self, ins, producers):
        if ins[0] != ExpertsType(self.count, self.type.width) or self.type != VecType(ins[0].dim):
            self.invalid(f"expects experts[{self.count}; {self.type.width}] -> "
                         f"vec[{self.type.width}]")
        if ins[1].width != self.in_features:
            self.invalid(f"gate input width {ins[1].width} != in_features {self.in_features}")
