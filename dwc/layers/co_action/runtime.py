"""CAN's co-action unit at run time: inlined into every generated model.py that has a
co_action layer (with the activation helper it imports)."""

import torch
from torch import nn

from dwc.backends.torch.helpers.activation import _dwc_activation_
from dwc.backends.torch.helpers.static import _dwc_is_static


class _DwcCoAction(nn.Module):
    """CAN's co-action unit (docs/models.md, 'CAN').

    The induction id's row of `induction` is reshaped into a micro-MLP (per order when
    order-independent); the feed id's own embedding, raised to the powers 1..orders, runs through
    it (tanh between layers, the last linear); a feed sequence is masked and sum-pooled. Returns
    every layer's output (collect="all") or the last one, for each order, concatenated.
    """

    def __init__(
        self,
        induction_vocab: int,
        feed_vocab: int,
        widths: list[int],
        orders: int,
        act: str,
        bias: bool,
        collect: str,
        order_independent: bool,
    ) -> None:
        super().__init__()
        self.widths, self.orders, self.act = widths, orders, act
        self.bias, self.collect, self.order_independent = bias, collect, order_independent
        self.layers = []
        offset = 0
        for n_in, n_out in zip(widths, widths[1:], strict=False):
            end = offset + n_in * n_out
            self.layers.append((offset, end, end + n_out if bias else end, n_in, n_out))
            offset = end + n_out if bias else end
        self.unit = offset
        copies = orders if order_independent else 1
        self.induction = nn.Embedding(induction_vocab, self.unit * copies)
        self.feed = nn.Embedding(feed_vocab, widths[0])
        with torch.no_grad():  # each slot of a row starts like an nn.Linear of its fan-in
            for copy in range(copies):
                base = copy * self.unit
                for w_start, _w_end, b_end, n_in, _ in self.layers:
                    bound = n_in**-0.5
                    self.induction.weight[:, base + w_start : base + b_end].uniform_(-bound, bound)

    def forward(
        self,
        induction_ids: torch.Tensor,
        feed_ids: torch.Tensor,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        rows = self.induction(induction_ids)
        q = self.feed(feed_ids)
        if q.dim() == 2:
            q = q.unsqueeze(1)
        batch, steps, _ = q.shape
        mask = None  # B x 1 x steps
        if lengths is not None:
            positions = torch.arange(steps, device=q.device)
            mask = (positions.unsqueeze(0) < lengths.unsqueeze(1)).to(q.dtype).unsqueeze(1)
        count = float(steps) if mask is None else mask.sum(dim=2)

        static = _dwc_is_static()

        def pool(h: torch.Tensor) -> torch.Tensor:
            """Masked sum over the steps: B x n x steps -> B x n (one bmm, no temporary).
            Eager: the mask row times h transposed (a view; 2.5x faster in MKL than the other
            order). Traced: h times the mask column, reading h in its own layout, since a
            compiled backend would write h transposed first (TVM did: 10% of CAN's time at
            B = 8192)."""
            if mask is None:
                return h.sum(dim=2)
            if static:
                return torch.bmm(h, mask.transpose(1, 2)).squeeze(2)
            return torch.bmm(mask, h.transpose(1, 2)).squeeze(1)

        # The micro-MLP runs transposed, h^T = W^T q^T (B x n x steps): the steps (not the
        # layer's 4-16 outputs) are the wide dimension of every small product, 2-2.5x faster.
        q_t = q.transpose(1, 2)

        def unit(base: int) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
            """Each layer's per-sample (weight, bias) from the rows at `base`: the hidden
            layers' weights transposed (out x in), the last layer's in x out."""
            params = []
            for index, (w_start, w_end, b_end, n_in, n_out) in enumerate(self.layers):
                weight = rows[:, base + w_start : base + w_end].reshape(-1, n_in, n_out)
                if index < len(self.layers) - 1:
                    weight = weight.transpose(1, 2)
                bias = rows[:, base + w_end : base + b_end] if self.bias else None
                params.append((weight, bias))
            return params

        shared = None if self.order_independent else unit(0)  # sliced once for every order
        outputs = []
        power = q_t
        for order in range(self.orders):
            if order:
                power = power * q_t  # q^(order + 1), by multiplication (pow is far slower)
            h, pooled = power, None
            *hidden, (weight, bias) = shared or unit(order * self.unit)
            for weight_t, hidden_bias in hidden:
                h = torch.bmm(weight_t, h)
                if hidden_bias is not None:
                    h = h.add_(hidden_bias.unsqueeze(2))  # in place on the fresh bmm output
                h = _dwc_activation_(h, self.act)  # in place on the fresh bmm output
                pooled = pool(h) if self.collect == "all" else None
                if pooled is not None:
                    outputs.append(pooled)
            # the last layer is linear, so it commutes with the sum over the steps: pool its
            # input, then apply it once per sample (its bias once per step)
            x = pool(h) if pooled is None else pooled
            y = torch.bmm(x.unsqueeze(1), weight).squeeze(1)
            outputs.append(y if bias is None else y + count * bias)
        return torch.cat(outputs, dim=1)
