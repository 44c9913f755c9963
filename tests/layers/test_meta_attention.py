"""M2M's meta attention runtime helpers against the paper's equations, on tiny hand-set
examples: the training form (meta unit generated per sample) and the per-cell inference form."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dwc.backends.torch.helpers.per_domain import _dwc_domain_rows
from dwc.backends.torch.inline import helper_source
from dwc.layers.meta_attention.runtime import _DwcMetaAttention
from dwc.layers.meta_attention.runtime_scenario import _DwcScenarioMetaAttention

EXPERTS = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
                        [[2.0, -1.0], [0.5, 0.5], [-1.0, 0.0]]])  # B = 2, E = 3, H = 2
TASK = torch.tensor([0.5, -1.0])
SCORE = torch.tensor([1.0, -0.5, 2.0])


def _reference(experts, task, layers, score):
    """Per sample: h_i = act(... act([E_i ; T] W1 + b1) ...), alpha = softmax(h_i . v),
    the result sum_i alpha_i E_i (`layers` the sample's (W, b) pairs)."""
    h = torch.cat([experts, task.expand(experts.shape[0], -1)], dim=1)
    for w, b in layers:
        h = F.leaky_relu(h @ w + b, 0.01)
    alpha = torch.softmax(h @ score, dim=0)
    return (alpha.unsqueeze(1) * experts).sum(0)


def test_meta_attention_scores_experts_with_the_generated_meta_unit():
    """One meta-unit layer (H + T = 4 -> 3) whose weight and bias each sample's generated
    numbers hold, laid out as (weight start, bias start, bias end, in, out)."""
    layer = _DwcMetaAttention(2, 3, [(0, 12, 15, 4, 3)], "leaky_relu")
    with torch.no_grad():
        layer.task.copy_(TASK)
        layer.score.copy_(SCORE)
    generated = torch.linspace(-1.0, 1.0, 2 * 15).reshape(2, 15)
    expected = torch.stack([
        _reference(EXPERTS[n], TASK, [(generated[n, :12].reshape(4, 3), generated[n, 12:])],
                   SCORE)
        for n in range(2)])
    torch.testing.assert_close(layer(EXPERTS, generated), expected)


@pytest.mark.parametrize("grouped", [False, True])
def test_scenario_meta_attention_runs_each_cells_layers(grouped):
    """The per-cell form: cell c's layer W[c] (H -> 3) and bias b[c] (the task's rows already
    folded into it), the same scores and mixture."""
    layer = _DwcScenarioMetaAttention(2, [2, 3], "leaky_relu")
    weight = torch.tensor([[[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]], [[-1.0, 0.5, 0.0], [2.0, 0.0, 1.0]]])
    bias = torch.tensor([[0.0, 0.1, 0.2], [1.0, -1.0, 0.0]])
    with torch.no_grad():
        layer.weights[0].copy_(weight)
        layer.biases[0].copy_(bias)
        layer.score.copy_(SCORE)
    cell = torch.tensor([1, 0])
    rows = _dwc_domain_rows(cell) if grouped else None
    no_task = torch.zeros(0)
    expected = torch.stack([_reference(EXPERTS[n], no_task, [(weight[c], bias[c])], SCORE)
                            for n, c in enumerate(cell.tolist())])
    torch.testing.assert_close(layer(EXPERTS, cell, rows), expected)


def test_meta_attention_helpers_inline_without_their_imports():
    for module, first in (
            ("dwc.layers.meta_attention.runtime", "class _DwcMetaAttention(nn.Module):"),
            ("dwc.layers.meta_attention.runtime_scenario",
             "class _DwcScenarioMetaAttention(nn.Module):")):
        code, needs = helper_source(module)
        assert code.startswith(first) and "import" not in code
        assert "dwc.backends.torch.helpers.softmax" in needs


def test_meta_attention_verifies_its_meta_unit_layout():
    from dwc.ir.ops import Generator, Slot, VerificationError
    from dwc.ir.types import ExpertsType, VecType
    from dwc.layers.meta_attention.op import MetaAttention

    slots = (Slot("w0", 0, (4, 3)), Slot("b0", 12, (3,)))
    gen = Generator(result="g", inputs=("s",), type=VecType(15), in_features=1, slots=slots)
    op = MetaAttention(result="r", inputs=("e", "g"), type=VecType(2), experts=3, task_dim=2,
                       widths=(3,), slots=slots)
    op.verify((ExpertsType(3, 2), VecType(15)), {"g": gen})
    with pytest.raises(VerificationError):  # the unit's first layer reads H + T = 4 numbers
        MetaAttention(result="r", inputs=("e", "g"), type=VecType(2), experts=3, task_dim=1,
                      widths=(3,), slots=slots).verify((ExpertsType(3, 2), VecType(15)),
                                                       {"g": gen})
    with pytest.raises(VerificationError):
        op.verify((ExpertsType(4, 2), VecType(15)), {"g": gen})
