"""The generated models' sequence pool (helpers/seq_pool.py) on both sides of the size where the
eager sum and mean switch from lookup x mask to one embedding_bag (_DWC_BAGGED_POOL_IDS ids), and
on the static path that export traces: values and gradients against a clean-room pool written
from the definition (the embeddings of ids[b, :lengths[b]] summed, averaged or maxed; an empty
sequence pools to zeros)."""

from __future__ import annotations

import pytest
import torch

from dwc.backends.torch.helpers import seq_pool
from dwc.backends.torch.helpers.seq_pool import _DWC_BAGGED_POOL_IDS, _dwc_seq_pool


def _reference(weight: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor,
               mode: str) -> torch.Tensor:
    rows = []
    for b in range(ids.shape[0]):
        embedded = weight[ids[b, : int(lengths[b])]]
        if len(embedded) == 0:
            rows.append(torch.zeros(weight.shape[1], dtype=weight.dtype))
        elif mode == "sum":
            rows.append(embedded.sum(0))
        elif mode == "mean":
            rows.append(embedded.sum(0) / len(embedded))
        else:
            rows.append(embedded.max(0).values)
    return torch.stack(rows)


SHAPES = [(89, 23), (128, 16), (1, 20)]
"""(B, T): one id short of the switch, at it, and a single request."""


def test_the_shapes_bracket_the_switch():
    assert [b * t for b, t in SHAPES[:2]] == [_DWC_BAGGED_POOL_IDS - 1, _DWC_BAGGED_POOL_IDS]


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize(("batch", "length"), SHAPES)
@pytest.mark.parametrize("static", [False, True])
def test_the_pool_and_its_gradient_match_the_definition(monkeypatch, mode, batch, length,
                                                       static):
    monkeypatch.setattr(seq_pool, "_dwc_is_static", lambda: static)
    generator = torch.Generator().manual_seed(batch * length)
    weight = torch.randn(50, 8, generator=generator, dtype=torch.float64)
    ids = torch.randint(0, 50, (batch, length), generator=generator)
    lengths = torch.randint(0, length + 1, (batch,), generator=generator)
    lengths[-1] = 0  # an empty sequence (-> zeros) and a full one
    lengths[0] = length
    upstream = torch.randn(batch, 8, generator=generator, dtype=torch.float64)

    ours, theirs = weight.clone().requires_grad_(), weight.clone().requires_grad_()
    pooled = _dwc_seq_pool(ours, ids, lengths, mode)
    expected = _reference(theirs, ids, lengths, mode)
    torch.testing.assert_close(pooled, expected, rtol=0, atol=1e-12)
    (pooled * upstream).sum().backward()
    (expected * upstream).sum().backward()
    # the ids past each length (padding) get no gradient, as in the reference
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=0, atol=1e-12)
