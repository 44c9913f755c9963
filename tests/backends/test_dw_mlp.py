"""The generic DW-MLP against docs/models.md, 'Generic dynamic-weight MLP': closed-form costs and
the constant-z identity."""

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


SELF_WISE = """model self_wise
feature user_id : categorical(vocab = 100, dim = 12)
feature item_id : categorical(vocab = 100, dim = 12)
feature country : categorical(vocab = 4, dim = 4) scenario
scenarios country
condition z = concat(country)
x = concat(user_id, item_id, country)
h = mlp(x, [16, 8]) dynamic(by = BY)
output ctr = sigmoid(linear(h, 1)) loss = bce
"""


def _randomised(cls):
    """A model whose every parameter is random (the residual init starts generators at zero)."""
    torch.manual_seed(0)
    model = cls().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model


def _reference_self_wise(inputs, state, mix: bool):
    """Self-wise (mix-wise) DW-MLP from the equations, with weights copied out of a state_dict:
    layer l reads h_{l-1}; its generator G_l(c_l) = c_l A_l^T + a_l with c_l = h_{l-1}
    (mix-wise: [h_{l-1}, z]) emits W_l (in x out, row-major) then b_l; h_l = relu(h_{l-1} W_l + b_l).
    """
    emb = {f: state[f"{f}_embedding.weight"].clone() for f in ("user_id", "item_id", "country")}
    h = torch.cat([emb[f][inputs[f]] for f in ("user_id", "item_id", "country")], dim=1)
    z = emb["country"][inputs["country"]]
    for layer, (n_in, n_out) in enumerate(((28, 16), (16, 8))):
        a = state[f"h_generator{layer}.0.weight"].clone()
        bias = state[f"h_generator{layer}.0.bias"].clone()
        c = torch.cat([h, z], dim=1) if mix else h
        g = c @ a.T + bias
        w = g[:, : n_in * n_out].reshape(-1, n_in, n_out)
        b = g[:, n_in * n_out:]
        h = torch.relu(torch.einsum("bi,bio->bo", h, w) + b)
    logit = h @ state["ctr.weight"].clone().T + state["ctr.bias"].clone()
    return torch.sigmoid(logit)


def test_self_wise_mlp_generates_each_layer_from_its_own_input():
    result, cls = compile_text(SELF_WISE.replace("BY", "self"))
    model = _randomised(cls)
    assert [tuple(m.weight.shape) for m in (model.h_generator0[0], model.h_generator1[0])] == [
        (28 * 16 + 16, 28), (16 * 8 + 8, 16)]  # Linear(28, 464), Linear(16, 136)
    assert not hasattr(model, "h_generator")
    inputs = cls.example_inputs(13, torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = _reference_self_wise(inputs, model.state_dict(), mix=False)
        torch.testing.assert_close(model(inputs)["ctr"], expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.for_inference()(inputs)["ctr"], expected, rtol=1e-5,
                                   atol=1e-6)
    layer = _layer(result, "h")
    assert layer.params == (28 * 464 + 464) + (16 * 136 + 136)
    assert layer.generated_per_sample == 464 + 136
    assert layer.generator_flops_per_sample == 2 * (28 * 464 + 16 * 136)


def test_mix_wise_mlp_generates_each_layer_from_its_input_and_the_condition():
    result, cls = compile_text(SELF_WISE.replace("BY", "concat(self, z)"))
    model = _randomised(cls)
    assert tuple(model.h_generator0[0].weight.shape) == (464, 28 + 4)
    assert tuple(model.h_generator1[0].weight.shape) == (136, 16 + 4)
    inputs = cls.example_inputs(13, torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = _reference_self_wise(inputs, model.state_dict(), mix=True)
        torch.testing.assert_close(model(inputs)["ctr"], expected, rtol=1e-5, atol=1e-6)
    assert _layer(result, "h").params == (32 * 464 + 464) + (20 * 136 + 136)


def test_self_wise_linear_keeps_one_generator():
    _, cls = compile_text(SELF_WISE.replace("mlp(x, [16, 8])", "linear(x, 8)")
                          .replace("BY", "self"))
    assert tuple(cls().h_generator[0].weight.shape) == (28 * 8 + 8, 28)


SELF_WISE_STACK = """model stack
feature user_id : categorical(vocab = 100, dim = 16)
feature item_id : categorical(vocab = 100, dim = 16)
x = concat(user_id, item_id)
h1 = mlp(x, [64]) dynamic(by = self) apg(rank = 8, share = false)
h2 = mlp(h1, [64]) dynamic(by = self) apg(rank = 8, share = false)
h3 = mlp(h2, [64]) dynamic(by = self) apg(rank = 8, share = false)
h4 = mlp(h3, [64]) dynamic(by = self) apg(rank = 8, share = false)
output ctr = identity(linear(h4, 1)) loss = mse
"""


def test_stacked_self_wise_unshared_apg_layers_start_bounded():
    """Each self-wise layer is a polynomial of degree 4 in its input (U, S and V all generated
    from it): with PyTorch's default generator init four of them overflow to NaN. The default
    for self-wise generators (residual) starts every layer as a static one."""
    _, cls = compile_text(SELF_WISE_STACK)
    for seed in range(3):
        torch.manual_seed(seed)
        model = cls()
        inputs = cls.example_inputs(256, torch.Generator().manual_seed(seed))
        seen = {}
        model.ctr.register_forward_hook(lambda m, i, o, seen=seen: seen.__setitem__("h4", i[0]))
        targets = cls.example_targets(256, torch.Generator().manual_seed(seed))
        loss = model.loss(inputs, targets)
        loss.backward()
        x_scale = torch.cat([model.user_id_embedding(inputs["user_id"]),
                             model.item_id_embedding(inputs["item_id"])], dim=1).std().item()
        h4 = seen["h4"]
        assert torch.isfinite(h4).all() and torch.isfinite(loss)
        assert 1e-5 * x_scale < h4.std().item() < x_scale  # bounded, and not vanished
        gradient = model.h1_generator[-1].weight.grad
        assert torch.isfinite(gradient).all() and gradient.abs().max() > 0  # it can learn


def test_self_wise_default_init_is_residual_and_group_wise_stays_pytorch():
    _, cls = compile_text(SELF_WISE.replace("BY", "self"))
    torch.manual_seed(0)
    model = cls()
    last = model.h_generator1[-1]
    assert last.weight.abs().max() == 0  # starts as a static layer: W = bias part of G
    w = last.bias[:128]
    assert 0 < w.abs().max() <= 16**-0.5  # nn.Linear's fan-in bound for a 16-input layer
    assert last.bias[128:].abs().max() == 0  # generated biases start at zero
    _, explicit = compile_text(SELF_WISE.replace("BY", "self, init = default"))
    torch.manual_seed(0)
    assert explicit().h_generator1[-1].weight.abs().max() > 0
    _, group = compile_text(SELF_WISE.replace("BY", "z"))
    assert group().h_generator[-1].weight.abs().max() > 0
