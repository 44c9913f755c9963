"""Every seed model (docs/models.md): it trains, and its parameters match the closed forms."""

from __future__ import annotations

import pytest
import torch

from dwc.cost import explain
from tests.conftest import EXAMPLES, ROOT, compile_example, example_ids


def load(name: str):
    return compile_example(ROOT / "examples" / f"{name}.dw")


def layer_params(result, name: str) -> int:
    return next(c.cost.params for c in explain(result.model_graph) if c.name == name)


@pytest.mark.parametrize("path", EXAMPLES, ids=example_ids())
def test_short_training_loop_lowers_the_loss(path):
    _, cls = compile_example(path)
    torch.manual_seed(0)
    model = cls()
    g = torch.Generator().manual_seed(0)
    inputs, targets = cls.example_inputs(64, g), cls.example_targets(64, g)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    model.train()
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = model.loss(inputs, targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.parametrize("path", EXAMPLES, ids=example_ids())
def test_module_parameter_count_equals_cost_model(path):
    result, cls = compile_example(path)
    model = cls()
    assert sum(p.numel() for p in model.parameters()) == sum(
        c.cost.params for c in explain(result.model_graph))
    folded = model.for_inference()
    assert sum(p.numel() for p in folded.parameters()) == sum(
        c.cost.params for c in explain(result.inference))


def test_lhuc_params():
    result, _ = load("lhuc")
    cells = 8 * 3
    assert layer_params(result, "h1") == (40 * 64 + 64) + cells * 64  # x = 16 + 16 + 8
    assert layer_params(result, "h2") == (64 * 32 + 32) + cells * 32


def test_senet_params():
    result, _ = load("senet")
    fields = 6
    reduced = max(1, fields // 3)
    assert layer_params(result, "v") == 2 * fields * reduced


def test_ppnet_fuxictr_params():
    """FuxiCTR PPNet: sum_l [n_{l-1} n_l + n_l + d_u h + h + h n_l + n_l] (h = gate_hidden)."""
    result, _ = load("ppnet")
    n = [48, 64, 64, 64]
    d_u, h = 48 + 3 * 16, 64
    expected = sum(a * b + b + d_u * h + h + h * b + b for a, b in zip(n, n[1:], strict=False))
    assert layer_params(result, "h") == expected


def test_pepnet_params():
    result, _ = load("pepnet")
    big_n = 8 + 1 + 16 + 16 + 16  # category, price, history, user_id, item_id
    d_dom = 8
    # EPNet (hidden = N, TorchEasyRec's default): (d_dom + N) h + h + h N + N
    assert layer_params(result, "ep") == (d_dom + big_n) * big_n + big_n + big_n * big_n + big_n
    # PPNet, gates before every layer (paper), gate hidden = the gated width n_{l-1}
    d_prior = 16 + 16 + 8 + big_n
    n = [big_n, 64, 32]
    tower = sum(a * b + b + d_prior * a + a + a * a + a for a, b in zip(n, n[1:], strict=False))
    assert layer_params(result, "click_tower") == tower
    assert layer_params(result, "like_tower") == tower


def test_ptupcdr_trainable_params_match_the_paper_count():
    """k = 10, m = 50, T = 20: encoder k^2 + 2k = 120, meta net km + m + mk^2 + k^2 = 5,650."""
    result, cls = load("ptupcdr")
    model = cls()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 120 + 5_650 == 5_770
    groups = model.parameter_groups()
    assert set(groups) == {"src_history", "u_t"}
    assert sum(p.numel() for p in groups["src_history"]) == 120
    assert sum(p.numel() for p in groups["u_t"]) == 5_650


def test_m2m_meta_unit_params():
    """Meta unit: sum_k (d_S + 1)(d_{k-1} d_k + d_k), generated linearly from S."""
    result, _ = load("m2m")
    d_s, h = 16, 16
    meta_attention = (d_s + 1) * ((h + h) * (h + h) + (h + h)) + h + (h + h)  # + task T, score v
    assert layer_params(result, "r1") == meta_attention
    tower = (d_s + 1) * (h * h + h)  # one generated H x H layer with bias, no static weights
    assert layer_params(result, "t1") == tower
    assert layer_params(result, "e") == 4 * (64 * 16 + 16)


def test_apg_params():
    """Per layer: generator (d_z + 1)(K^2 + M); factors N P + P K + K P + P M (training form)."""
    result, cls = load("apg")
    d_z = 16
    layers = [(56, 256, 32), (256, 128, 16), (128, 64, 8)]
    expected = 0
    for n, m, k in layers:
        p = 4 * k
        expected += (d_z + 1) * (k * k + m) + n * p + p * k + k * p + p * m
    assert layer_params(result, "h") == expected
    generated = sum(c.cost.generated_per_sample for c in explain(result.graph) if c.name == "h")
    assert generated == sum(k * k + m for _, m, k in layers)


def test_can_params():
    """Per (induction, feed) pair: V_A D' + V_B d_0 with D' = 16*8 + 8*4 = 160 (no bias)."""
    result, _ = load("can")
    assert layer_params(result, "item_co") == 5_000 * 160 + 5_000 * 16
    assert layer_params(result, "cate_co") == 200 * 160 + 200 * 16


def test_star_params():
    """sum_l (D + 1)(n_{l-1} n_l + n_l); partitioned norm 2 N (D + 1)."""
    result, _ = load("star")
    d, big_n = 8, 40
    assert layer_params(result, "x") == 2 * big_n * (d + 1)
    n = [big_n, 64, 32]
    assert layer_params(result, "h") == sum((d + 1) * (a * b + b)
                                            for a, b in zip(n, n[1:], strict=False))
    assert layer_params(result, "main") == (d + 1) * (32 + 1)
