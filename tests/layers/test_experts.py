"""MMoE's runtime helpers against the paper's equations, on tiny hand-set examples."""

from __future__ import annotations

import pytest
import torch

from dwc.backends.torch.inline import helper_source
from dwc.layers.experts.runtime import _DwcExperts
from dwc.layers.experts.runtime_mix import _DwcMix

X = torch.tensor([[1.0, -2.0], [0.5, 3.0], [0.0, 1.0]])


def test_every_expert_is_its_own_mlp_on_the_shared_input():
    """E_i(x) = relu(relu(x W1_i + b1_i) W2_i + b2_i), stacked B x E x H."""
    layer = _DwcExperts(2, [2, 3, 2], "relu")
    w1 = torch.tensor([[[1.0, 0.0, -1.0], [2.0, 1.0, 0.5]], [[0.0, -1.0, 1.0], [1.0, 1.0, 1.0]]])
    b1 = torch.tensor([[0.0, 0.5, 1.0], [-1.0, 0.0, 0.0]])
    w2 = torch.tensor([[[1.0, 2.0], [0.0, 1.0], [1.0, -1.0]], [[0.5, 0.0], [1.0, 1.0], [0.0, 2.0]]])
    b2 = torch.tensor([[0.1, -0.1], [0.0, 0.3]])
    with torch.no_grad():
        for param, value in zip([*layer.weights, *layer.biases], [w1, w2, b1, b2], strict=True):
            param.copy_(value)
    expected = torch.stack([torch.relu(torch.relu(X @ w1[i] + b1[i]) @ w2[i] + b2[i])
                            for i in range(2)], dim=1)
    torch.testing.assert_close(layer(X), expected)


def test_a_gate_mixes_the_experts_by_the_softmax_of_its_linear():
    """t = sum_i softmax(g W + b)_i E_i."""
    gate = _DwcMix(2, 3)
    w, b = torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]), torch.tensor([0.0, -1.0, 0.5])
    with torch.no_grad():
        gate.gate.weight.copy_(w.T)
        gate.gate.bias.copy_(b)
    e = torch.arange(3 * 3 * 4, dtype=torch.float32).reshape(3, 3, 4) / 10
    weights = torch.softmax(X @ w + b, dim=1)
    expected = torch.stack([sum(weights[n, i] * e[n, i] for i in range(3)) for n in range(3)])
    torch.testing.assert_close(gate(e, X), expected)


def test_experts_helpers_inline_without_their_imports():
    for module, first, calls in (
            ("dwc.layers.experts.runtime", "class _DwcExperts(nn.Module):", ("activation",)),
            ("dwc.layers.experts.runtime_mix", "class _DwcMix(nn.Module):",
             ("softmax", "static"))):
        code, needs = helper_source(module)
        assert code.startswith(first) and "import" not in code
        assert needs == tuple(f"dwc.backends.torch.helpers.{name}" for name in calls)


def test_experts_ops_verify_their_shapes():
    from dwc.ir.ops import VerificationError
    from dwc.ir.types import ExpertsType, VecType
    from dwc.layers.experts.op import Experts, Mix

    experts = Experts(result="e", inputs=("x",), type=ExpertsType(3, 4), in_features=2,
                      widths=(8, 4))
    experts.verify((VecType(2),), {})
    mix = Mix(result="t", inputs=("e", "x"), type=VecType(4), in_features=2, count=3)
    mix.verify((ExpertsType(3, 4), VecType(2)), {})
    for op, ins in ((experts, (VecType(3),)), (mix, (ExpertsType(2, 4), VecType(2))),
                    (mix, (ExpertsType(3, 4), VecType(5)))):
        with pytest.raises(VerificationError):
            op.verify(ins, {})
