"""HAMUR's inference folds, each folded (`for_inference()`) == unfolded in eval at B = 1, 7 and
2000 with mixed domains, and batch-independent: the hyper-network's batch norms merged into its
linears (H per instance), and a scenario-only core tabulated with each cell's maps multiplied out
(the domain norm folded in when its domain is the cell)."""

from __future__ import annotations

import pytest
import torch

from dwc.backends.torch.helpers.per_domain import _dwc_domain_rows
from dwc.cost import explain
from dwc.layers.hamur.op import (
    FoldedHamurAdapter,
    FoldedHamurHyperNetwork,
    HamurAdapter,
    ScenarioHamurAdapter,
)
from dwc.layers.hamur.runtime_scenario import _DwcScenarioHamurAdapter
from tests.conftest import compile_text

HEAD = """model f
feature a : categorical(vocab = 40, dim = 8)
feature b : categorical(vocab = 30, dim = 4)
feature s : categorical(vocab = 3, dim = 3) scenario
feature p : categorical(vocab = 2, dim = 2) scenario
scenarios s * p
h = mlp(concat(a, b), [12])
"""
TAIL = """a1 = hamur(h, by = core, domain = scenario, bottleneck = 4)
a2 = hamur(a1, by = core, domain = s, bottleneck = 4)
output y = sigmoid(linear(a2, 1)) loss = bce
"""
SPECS = {
    # H per instance: no per-cell weights; the hyper-network's norms fold into its linears,
    # each adapter's domain norm into one scale and shift per domain
    "instance": HEAD + "condition z = concat(a, s)\n"
                "core = hamur_hypernet(by = z, rank = 8, hidden = [10])\n" + TAIL,
    # H a per-cell table; each cell's maps per cell (N M = 48 < N K + K² + K M = 192)
    "cells": HEAD + "condition z = concat(s, p)\n"
             "core = hamur_hypernet(by = z, rank = 8, hidden = [10])\n" + TAIL,
    # the same, with factors cheaper than per-cell maps (48 > 36): the cells read the table
    "table": HEAD + "condition z = concat(s, p)\n"
             "core = hamur_hypernet(by = z, rank = 2, hidden = [10])\n" + TAIL,
}
FORMS = {"instance": [FoldedHamurHyperNetwork, FoldedHamurAdapter, FoldedHamurAdapter],
         "cells": [ScenarioHamurAdapter, ScenarioHamurAdapter],
         "table": [FoldedHamurAdapter, FoldedHamurAdapter]}


def _trained(name):
    """The compiled model after a few training steps (running statistics and biases off their
    start), in float64 and eval mode, with its inference form."""
    result, cls = compile_text(SPECS[name])
    torch.manual_seed(0)
    model = cls().double()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(5):
        optimizer.zero_grad()
        model.loss(cls.example_inputs(96, g), cls.example_targets(96, g)).backward()
        optimizer.step()
    model.eval()
    return result, cls, model, model.for_inference()


@pytest.fixture(scope="module", params=sorted(SPECS))
def trained(request):
    return request.param, *_trained(request.param)


def test_the_inference_graph_has_the_folded_forms(trained):
    name, result, _, model, folded = trained
    hamur = (FoldedHamurHyperNetwork, HamurAdapter, ScenarioHamurAdapter)
    assert [type(op) for op in result.inference.ops if isinstance(op, hamur)] == FORMS[name]
    kinds = [op.kind for op in result.inference.ops]
    assert ("scenario_table" in kinds) == (name == "table")
    assert sum(p.numel() for p in folded.parameters()) == sum(
        c.cost.params for c in explain(result.inference))
    assert sum(p.numel() for p in model.parameters()) == sum(
        c.cost.params for c in explain(result.model_graph))


@pytest.mark.parametrize("batch", [1, 7, 2000])
def test_folded_equals_unfolded(trained, batch):
    _, _, cls, model, folded = trained
    inputs = cls.example_inputs(batch, torch.Generator().manual_seed(batch))
    if batch > 1:
        assert len(inputs["s"].unique()) > 1  # mixed domains
    with torch.no_grad():
        torch.testing.assert_close(folded(inputs)["y"], model(inputs)["y"], rtol=1e-9, atol=1e-12)


def test_inference_is_batch_independent(trained):
    _, _, cls, _, folded = trained
    inputs = cls.example_inputs(2000, torch.Generator().manual_seed(9))
    with torch.no_grad():
        full = folded(inputs)["y"]
        for i in (0, 1, 777, 1999):
            alone = folded({k: v[i:i + 1] for k, v in inputs.items()})["y"]
            torch.testing.assert_close(alone, full[i:i + 1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("norm", [False, True])
def test_scenario_adapter_applies_each_cells_maps(grouped, norm):
    """y = h + (sigmoid(h W_down[c] + b_down[c]) W_up[c] + b_up[c]), then the domain's scale and
    shift when the norm is not folded into the cell weights."""
    g = torch.Generator().manual_seed(3)
    layer = _DwcScenarioHamurAdapter(3, 2, cells=2, domains=2 if norm else None).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    h = torch.randn(5, 3, generator=g, dtype=torch.float64)
    cell, domain = torch.tensor([1, 0, 1, 1, 0]), torch.tensor([0, 0, 1, 0, 1])
    rows = _dwc_domain_rows(cell) if grouped else None
    expected = []
    for i, c in enumerate(cell.tolist()):
        s = torch.sigmoid(h[i] @ layer.weight_down[c] + layer.bias_down[c])
        u = s @ layer.weight_up[c] + layer.bias_up[c]
        if norm:
            u = u * layer.norm_scale[domain[i]] + layer.norm_shift[domain[i]]
        expected.append(h[i] + u)
    actual = layer(h, cell, rows, domain if norm else None)
    torch.testing.assert_close(actual, torch.stack(expected))
