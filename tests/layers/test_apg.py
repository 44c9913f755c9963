"""APG's runtime helper (dwc/layers/apg/runtime.py) as plain Python, against the paper's
equation y = x U S(z) V + b on a tiny example with every weight set by hand."""

from __future__ import annotations

import torch

from dwc.backends.torch.inline import helper_source
from dwc.layers.apg.runtime import _dwc_lowrank_linear, _DwcLowRankFactors


def test_lowrank_linear_is_x_u_s_v_plus_b():
    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]])            # B = 2, N = 3
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])             # N x K, K = 2
    s = torch.tensor([[[2.0, 0.0], [0.0, 3.0]], [[0.0, 1.0], [1.0, 0.0]]])  # B x K x K
    v = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])     # K x M, M = 4
    b = torch.tensor([0.5, 0.0, 0.0, -0.5])
    # x U = [[4, 5], [1, 0]]; (x U) S = [[8, 15], [0, 1]]; then V and b
    want = torch.tensor([[8.5, 15.0, 8.0, 14.5], [0.5, 1.0, 0.0, 0.5]])
    for decompose in (True, False):
        torch.testing.assert_close(_dwc_lowrank_linear(x, u, s, v, b, decompose=decompose), want)
    # unshared factors: U and V per sample (B x N x K, B x K x M)
    per_sample = _dwc_lowrank_linear(x, u.expand(2, 3, 2), s, v.expand(2, 2, 4), None, True)
    torch.testing.assert_close(per_sample, want - b)


def test_overparameterised_factors_are_products():
    factors = _DwcLowRankFactors(3, 4, rank=2, overparam=5, share=True, bias=True)
    with torch.no_grad():
        for p, value in zip((factors.u_left, factors.u_right, factors.v_left, factors.v_right),
                            (1.0, 2.0, 3.0, 4.0), strict=True):
            p.fill_(value)
    torch.testing.assert_close(factors.u(), torch.full((3, 2), 10.0))  # U = U_l U_r, width 5
    torch.testing.assert_close(factors.v(), torch.full((2, 4), 60.0))  # V = V_l V_r
    assert factors.bias is not None and not factors.bias.any()
    plain = _DwcLowRankFactors(3, 4, rank=2, overparam=None, share=True, bias=False)
    assert plain.u().shape == (3, 2) and plain.v().shape == (2, 4) and plain.bias is None


def test_the_inlined_helper_is_the_module_without_its_imports():
    code, needs = helper_source("dwc.layers.apg.runtime")
    assert code.startswith("class _DwcLowRankFactors(nn.Module):") and "import" not in code
    assert needs == ()
