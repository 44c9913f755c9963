"""The co-action op: its costs and invariants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dwc.ir.ops import Op
from dwc.ir.types import IdsType


@dataclass(frozen=True, kw_only=True)
class CoAction(Op):
    """CAN's co-action unit (docs/models.md, 'CAN').

    inputs = (induction ids, feed ids[, feed lengths]). Each induction id owns a row of
    `micro_params` numbers (per order when `order_independent`) that is reshaped into a micro-MLP
    `widths[0] -> ... -> widths[-1]` (tanh between layers, last linear); the feed id's own
    embedding (width widths[0]), raised element-wise to the powers 1..orders, is run through it;
    sequences are masked and sum-pooled. Output: every layer's output (`collect = all`) or the
    last (`last`), for each order, concatenated.
    """

    kind: ClassVar[str] = "co_action"
    widths: tuple[int, ...]
    induction_vocab: int
    feed_vocab: int
    orders: int = 1
    bias: bool = False
    collect: str = "all"
    order_independent: bool = False
    act: str = "tanh"
    max_len: int | None = None

    @property
    def micro_params(self) -> int:
        w = self.widths
        return sum(a * b + (b if self.bias else 0) for a, b in zip(w, w[1:], strict=False))

    def params(self):
        rows = self.micro_params * (self.orders if self.order_independent else 1)
        return self.induction_vocab * rows + self.feed_vocab * self.widths[0]

    def flops(self):
        w = self.widths
        per = sum(2 * a * b for a, b in zip(w, w[1:], strict=False))
        return self.orders * (self.max_len or 1) * per

    def activations(self):
        """The output, plus each order's feed powers and hidden micro-MLP outputs at every step
        (steps x widths: CAN's 50 steps make these most of the model's activations)."""
        steps = self.max_len or 1
        hidden = sum(self.widths[1:-1])
        return self.type.width + self.orders * steps * (self.widths[0] + hidden)

    def attrs(self):
        return {"widths": list(self.widths), "orders": self.orders, "bias": self.bias,
                "collect": self.collect, "order_independent": self.order_independent,
                "act": self.act}

    def verify(self, ins, producers):
        if len(self.widths) < 2 or min(self.widths) < 1 or self.orders < 1:
            self.invalid(f"a micro-MLP needs two or more widths >= 1 and orders >= 1 "
                         f"({list(self.widths)}, orders {self.orders})")
        if self.collect not in ("all", "last"):
            self.invalid(f"unknown collect {self.collect!r}")
        if ins[0] != IdsType(self.induction_vocab):
            self.invalid(f"induction ids {ins[0]} != ids[{self.induction_vocab}]")
        if ins[1] != IdsType(self.feed_vocab, self.max_len):
            self.invalid(f"feed ids {ins[1]} != {IdsType(self.feed_vocab, self.max_len)}")
        lengths = () if self.max_len is None else (IdsType(self.max_len + 1),)
        if tuple(ins[2:]) != lengths:
            self.invalid("a feed sequence (and only one) comes with its lengths")
        per_order = self.widths[-1] if self.collect == "last" else sum(self.widths[1:])
        if self.type.width != per_order * self.orders:
            self.invalid(f"width {self.type.width} != {per_order} per order x {self.orders}")
