"""SENet's runtime helper against FiBiNET's equations, weights set by hand:
z_i = mean(e_i), A = act(W2 relu(W1 z)), v_i = a_i e_i."""

from __future__ import annotations

import math

import pytest
import torch

from dwc.backends.torch.inline import helper_source
from dwc.layers.senet.runtime import _DwcSeNet


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@pytest.mark.parametrize("excite", ["sigmoid", "relu"])
def test_senet_squeezes_excites_and_reweights_each_field(excite):
    net = _DwcSeNet(fields=2, dim=2, reduced=1, excite=excite)
    with torch.no_grad():
        net.reduce.weight.copy_(torch.tensor([[1.0, 1.0]]))  # W1: F -> r_F
        net.expand.weight.copy_(torch.tensor([[0.5], [-1.0]]))  # W2: r_F -> F
    e = torch.tensor([[1.0, 3.0, 2.0, -2.0]])  # fields e_1 = (1, 3), e_2 = (2, -2)
    # z = (2, 0); relu(W1 z) = 2; W2 (2) = (1, -2)
    a = [_sigmoid(1.0), _sigmoid(-2.0)] if excite == "sigmoid" else [1.0, 0.0]
    expected = torch.tensor([[a[0] * 1.0, a[0] * 3.0, a[1] * 2.0, a[1] * -2.0]])
    torch.testing.assert_close(net(e), expected)


def test_senet_helper_inlines_without_its_imports():
    code, needs = helper_source("dwc.layers.senet.runtime")
    assert code.startswith("class _DwcSeNet(nn.Module):") and "import" not in code
    assert needs == ()
