"""The generic DW-MLP against DW-MODELS.md §1: closed-form costs and the constant-z identity."""

from __future__ import annotations

import torch

from dwc.cost import explain
from tests.conftest import ROOT, compile_text

SPEC = (ROOT / "examples" / "dw_mlp.dw").read_text()


def _layer(result, name):
    return next(c.cost for c in explain(result.graph) if c.name == name)


def test_generated_numbers_per_sample_match_closed_form():
    result, _ = compile_text(SPEC)
    widths = [32, 16, 8]
    expected = sum(a * b + b for a, b in zip(widths, widths[1:], strict=False))
    assert expected == 664
    assert _layer(result, "h").generated_per_sample == 664


def test_parameter_counts_match_closed_form():
    result, cls = compile_text(SPEC)
    d_z, p = 8, 664
    generator = d_z * p + p  # linear generator: weight + bias
    assert _layer(result, "h").params == generator
    model = cls()
    assert sum(t.numel() for t in model.h_generator.parameters()) == generator
    tables = 10_000 * 16 + 5_000 * 16 + 8 * 4 + 3 * 4
    head = 8 + 1
    assert sum(t.numel() for t in model.parameters()) == tables + generator + head


def test_flops_split_generator_and_apply():
    result, _ = compile_text(SPEC)
    layer = _layer(result, "h")
    assert layer.generator_flops_per_sample == 2 * 8 * 664
    apply = 2 * (32 * 16 + 16 * 8)
    activations = 16
    assert layer.flops_per_sample == layer.generator_flops_per_sample + apply + activations


def test_without_generated_bias_640_numbers():
    result, _ = compile_text(SPEC.replace("dynamic(by = z)", "dynamic(by = z, bias = none)"))
    assert _layer(result, "h").generated_per_sample == 640


def test_constant_condition_equals_static_mlp_with_generated_weights():
    """With a constant z, the DW-MLP is the static MLP whose weights G(z) generates."""
    _, cls = compile_text(SPEC)
    torch.manual_seed(0)
    model = cls().eval()
    inputs = cls.example_inputs(11, torch.Generator().manual_seed(5))
    inputs["country"].fill_(3)
    inputs["page"].fill_(1)
    with torch.no_grad():
        dynamic = model(inputs)["ctr"]
        z = torch.cat([model.country_embedding.weight[3], model.page_embedding.weight[1]])
        w = model.h_generator(z.unsqueeze(0))[0]
        w0, b0 = w[0:512].reshape(32, 16), w[512:528]
        w1, b1 = w[528:656].reshape(16, 8), w[656:664]
        x = torch.cat([model.user_id_embedding(inputs["user_id"]),
                       model.item_id_embedding(inputs["item_id"])], dim=1)
        static = torch.sigmoid(model.ctr(torch.relu(x @ w0 + b0) @ w1 + b1))
    torch.testing.assert_close(dynamic, static, rtol=0, atol=1e-6)


def test_hyperfan_init_scales_generated_weights_to_fan_in():
    _, cls = compile_text(SPEC.replace("dynamic(by = z)", "dynamic(by = z, init = hyperfan)"))
    torch.manual_seed(0)
    model = cls()
    z = torch.randn(4096, 8)
    w = model.h_generator(z)
    var_w0 = w[:, 0:512].var().item()
    target = 1 / (3 * 32)  # nn.Linear's default: U(+-1/sqrt(fan_in)) has variance 1/(3 fan_in)
    assert abs(var_w0 - target) / target < 0.1
    assert w[:, 512:528].abs().max().item() == 0.0  # generated biases start at zero
