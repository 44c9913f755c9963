"""CAN's co-action unit at run time against the paper's equations, weights set by hand.

The induction id's row P is the micro-MLP: layer l has weight W_l (n_in x n_out) and bias b_l
laid out one after the other. For order k, each feed step's embedding q_t runs through it as
q_t^k: h_1 = tanh(q_t^k W_1 + b_1), ..., h_L = h_{L-1} W_L + b_L (the last layer linear). Over a
sequence, every layer's output is summed over the valid steps; the output concatenates, per
order, every layer's pooled output (collect = all) or the last one's (collect = last).
"""

from __future__ import annotations

import pytest
import torch

from dwc.backends.torch.inline import helper_source
from dwc.layers.co_action import runtime


def _reference(row: torch.Tensor, q: torch.Tensor, steps: int, widths, orders, collect):
    """The paper's co-action of one sample, step by step (q: its feed embeddings)."""
    layers, offset = [], 0
    for n_in, n_out in zip(widths, widths[1:], strict=False):
        w = row[offset:offset + n_in * n_out].reshape(n_in, n_out)
        b = row[offset + n_in * n_out:offset + n_in * n_out + n_out]
        layers.append((w, b))
        offset += n_in * n_out + n_out
    out = []
    for k in range(1, orders + 1):
        pooled = [torch.zeros(w.shape[1]) for w, _ in layers]
        for t in range(steps):
            h = q[t] ** k
            for index, (w, b) in enumerate(layers):
                h = h @ w + b
                if index < len(layers) - 1:
                    h = torch.tanh(h)
                pooled[index] = pooled[index] + h
        out += pooled if collect == "all" else pooled[-1:]
    return torch.cat(out)


@pytest.mark.parametrize("collect", ["all", "last"])
def test_co_action_of_a_masked_sequence(collect):
    widths, orders = [2, 2, 1], 2
    unit = runtime._DwcCoAction(induction_vocab=2, feed_vocab=3, widths=widths, orders=orders,
                                act="tanh", bias=True, collect=collect, order_independent=False)
    row = torch.tensor([0.5, -1.0, 0.25, 2.0, 0.1, -0.2, 1.0, -0.5, 0.3])  # W1 (2x2) b1 W2 (2x1) b2
    feed = torch.tensor([[0.5, -1.0], [1.5, 0.5], [-0.25, 2.0]])
    with torch.no_grad():
        unit.induction.weight[1].copy_(row)
        unit.feed.weight.copy_(feed)
    ids, lengths = torch.tensor([[0, 2, 1]]), torch.tensor([2])  # step 3 is padding
    got = unit(torch.tensor([1]), ids, lengths)
    expected = _reference(row, feed[ids[0]], 2, widths, orders, collect)
    torch.testing.assert_close(got[0], expected)


def test_co_action_of_one_feed_id_without_biases():
    widths = [2, 3, 2]
    unit = runtime._DwcCoAction(induction_vocab=1, feed_vocab=2, widths=widths, orders=1,
                                act="tanh", bias=False, collect="all", order_independent=False)
    assert unit.unit == 2 * 3 + 3 * 2  # no bias slots
    w1, w2 = torch.arange(6.0).reshape(2, 3) / 6, torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    q = torch.tensor([0.5, -0.5])
    with torch.no_grad():
        unit.induction.weight[0].copy_(torch.cat([w1.flatten(), w2.flatten()]))
        unit.feed.weight[1].copy_(q)
    h1 = torch.tanh(q @ w1)
    torch.testing.assert_close(unit(torch.tensor([0]), torch.tensor([1]))[0],
                               torch.cat([h1, h1 @ w2]))


def test_co_action_helper_inlines_without_its_imports():
    code, needs = helper_source("dwc.layers.co_action.runtime")
    assert code.startswith("class _DwcCoAction(nn.Module):") and "import" not in code
    # declared by its imports
    assert needs == ("dwc.backends.torch.helpers.activation", "dwc.backends.torch.helpers.static")
