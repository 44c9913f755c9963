"""Generated layers against independent hand-written PyTorch implementations, weights copied.

The references are written from the papers' formulas (docs/models.md) in the peers' style
(FuxiCTR's APG_Linear and PPNet_MLP), not from dwc's templates, so a shared mistake is unlikely.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import compile_text


@pytest.fixture(autouse=True)
def _seeded():
    """Every test draws its reference weights from the same seed, whatever ran before it."""
    torch.manual_seed(0)


class FuxiStyleAPGLinear(nn.Module):
    """FuxiCTR APG_Linear (group-wise, over-parameterised, generated bias first in its vector)."""

    def __init__(self, n, m, d_z, k, p, hidden):
        super().__init__()
        self.n, self.m, self.k = n, m, k
        self.u_l, self.u_r = nn.Parameter(torch.randn(n, p)), nn.Parameter(torch.randn(p, k))
        self.v_l, self.v_r = nn.Parameter(torch.randn(k, p)), nn.Parameter(torch.randn(p, m))
        dims = [d_z, *hidden, m + k * k]
        layers = []
        for i, (a, b) in enumerate(zip(dims, dims[1:], strict=False)):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
        self.hypernet = nn.Sequential(*layers)

    def forward(self, x, z):
        w = self.hypernet(z)
        bias, s = w[:, : self.m], w[:, self.m :].reshape(-1, self.k, self.k)
        u, v = self.u_l @ self.u_r, self.v_l @ self.v_r  # recomputed every forward, as FuxiCTR
        h = torch.bmm((x @ u).unsqueeze(1), s).squeeze(1)
        return h @ v + bias


APG_SPEC = """
model apg_ref
feature a : categorical(vocab = 20, dim = 12)
feature c : categorical(vocab = 5, dim = 6) scenario
condition z = concat(c)
h = mlp(a, [10, 7], act = relu, last_act = false)
    dynamic(by = z, hidden = [9]) apg(rank = [4, 3], overparam = 2x)
output y = identity(linear(h, 1)) loss = mse
"""


def _copy_apg(ref: FuxiStyleAPGLinear, factors, generator):
    """dwc's generator emits [S (K*K), bias (M)]; FuxiCTR's emits [bias, S]: permute rows."""
    with torch.no_grad():
        factors.u_left.copy_(ref.u_l)
        factors.u_right.copy_(ref.u_r)
        factors.v_left.copy_(ref.v_l)
        factors.v_right.copy_(ref.v_r)
        k2, m = ref.k * ref.k, ref.m
        order = torch.cat([torch.arange(m, m + k2), torch.arange(0, m)])
        for mine, theirs in zip(generator, ref.hypernet, strict=True):
            if isinstance(mine, nn.Linear):
                last = mine is generator[-1]
                mine.weight.copy_(theirs.weight[order] if last else theirs.weight)
                mine.bias.copy_(theirs.bias[order] if last else theirs.bias)


def test_apg_matches_fuxictr_style_reference():
    _, cls = compile_text(APG_SPEC)
    model = cls().eval()
    ref0 = FuxiStyleAPGLinear(12, 10, 6, 4, 8, [9])
    ref1 = FuxiStyleAPGLinear(10, 7, 6, 3, 6, [9])
    _copy_apg(ref0, model.h_fc0, model.h_generator0)
    _copy_apg(ref1, model.h_fc1, model.h_generator1)
    inputs = cls.example_inputs(33, torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = model.a_embedding(inputs["a"])
        z = model.c_embedding(inputs["c"])
        expected = model.y(ref1(torch.relu(ref0(x, z)), z))
        actual = model(inputs)["y"]
    # the reference's unit-variance factors give outputs in the hundreds: compare relatively
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


class FuxiStylePPNet(nn.Module):
    """FuxiCTR PPNet_MLP: h_l = Drop(act(h W + b)) * GateNU_l([sg(e), priors]), gamma = 2."""

    def __init__(self, n_in, widths, d_u, gate_hidden):
        super().__init__()
        dims = [n_in, *widths]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:], strict=False))
        self.gates = nn.ModuleList(
            nn.Sequential(nn.Linear(d_u, gate_hidden), nn.ReLU(), nn.Linear(gate_hidden, b))
            for b in widths)

    def forward(self, e, priors):
        u = torch.cat([e.detach(), priors], dim=1)
        h = e
        for linear, gate in zip(self.linears, self.gates, strict=True):
            h = torch.relu(linear(h)) * (2 * torch.sigmoid(gate(u)))
        return h


PPNET_SPEC = """
model ppnet_ref
feature a : categorical(vocab = 20, dim = 8)
feature b : categorical(vocab = 20, dim = 8)
feature user : categorical(vocab = 30, dim = 5) scenario
e = concat(a, b)
condition u = concat(stop_gradient(e), user)
h = ppnet(e, [12, 6], by = u, gate_hidden = 7, placement = post_dropout)
output y = sigmoid(linear(h, 1)) loss = bce
"""


def _ppnet_and_reference():
    _, cls = compile_text(PPNET_SPEC)
    model = cls().eval()
    ref = FuxiStylePPNet(16, [12, 6], 16 + 5, 7)
    with torch.no_grad():
        for i in range(2):
            getattr(model, f"h_fc{i}").load_state_dict(ref.linears[i].state_dict())
            gate = getattr(model, f"h_gate{i}")
            gate.hidden.load_state_dict(ref.gates[i][0].state_dict())
            gate.out.load_state_dict(ref.gates[i][2].state_dict())
    inputs = cls.example_inputs(29, torch.Generator().manual_seed(2))
    with torch.no_grad():
        e = torch.cat([model.a_embedding(inputs["a"]), model.b_embedding(inputs["b"])], dim=1)
        expected = torch.sigmoid(model.y(ref(e, model.user_embedding(inputs["user"]))))
    return model, inputs, expected


def test_ppnet_matches_fuxictr_style_reference():
    model, inputs, expected = _ppnet_and_reference()
    with torch.no_grad():
        actual = model(inputs)["y"]
    assert (actual - expected).abs().max().item() <= 1e-5


def test_ppnet_inference_form_runs_the_gates_first_layers_as_one_gemm():
    """fuse-gates: one Linear(d_u, 2 x 7) feeds both gates; with and without autograd (the
    gate multiplies in place only without it) the served form equals the reference."""
    model, inputs, expected = _ppnet_and_reference()
    served = model.for_inference()
    assert (served.u_gate_hidden.in_features, served.u_gate_hidden.out_features) == (21, 14)
    assert served.h_gate0.hidden is None and served.h_gate1.hidden is None
    with torch.no_grad():
        assert (served(inputs)["y"] - expected).abs().max().item() <= 1e-5
    y = served(inputs)["y"]
    assert (y.detach() - expected).abs().max().item() <= 1e-5
    y.sum().backward()
    assert served.u_gate_hidden.weight.grad.abs().sum() > 0
    assert served.h_gate1.out.weight.grad.abs().sum() > 0


def co_action_reference(rows, q, lengths, widths, orders, bias, collect, order_independent):
    """CAN's co-action (docs/models.md, 'CAN') written as its definition: for each sample, each order c
    and each valid step t, run q_t^c through the sample's micro-MLP (tanh between layers, the
    last linear), then sum over the steps; every layer's sums (collect all) or the last's."""
    shapes = list(zip(widths, widths[1:], strict=False))
    unit = sum(a * b + (b if bias else 0) for a, b in shapes)
    out = []
    for b in range(q.shape[0]):
        steps = q.shape[1] if lengths is None else int(lengths[b])
        sample = []
        for c in range(orders):
            offset = c * unit if order_independent else 0
            params = []
            for a, n in shapes:
                w = rows[b, offset:offset + a * n].reshape(a, n)
                offset += a * n
                params.append((w, rows[b, offset:offset + n] if bias else torch.zeros(n)))
                offset += n if bias else 0
            sums = [torch.zeros(n) for _, n in shapes]
            for t in range(steps):
                h = q[b, t] ** (c + 1)
                for i, (w, bb) in enumerate(params):
                    h = h @ w + bb
                    if i < len(params) - 1:
                        h = torch.tanh(h)
                    sums[i] = sums[i] + h
            sample += sums if collect == "all" else sums[-1:]
        out.append(torch.cat(sample))
    return torch.stack(out)


CO_ACTION_SPEC = """
model co
feature item : categorical(vocab = 30, dim = 4)
feature hist : sequence(item, max_len = 7, pool = sum)
feature cat : categorical(vocab = 9, dim = 4)
y = co_action(item, {feed}, widths = {widths}, orders = 3, bias = {bias}, collect = {collect},
              order_independent = {indep})
output p = sigmoid(linear(y, 1)) loss = bce
"""


@pytest.mark.parametrize("batch", [6, 300])
def test_co_action_matches_its_definition(batch):
    """Every variant (sequence or single feed, biases, collect all/last, shared or per-order
    units) against the per-sample, per-step loop, in double precision; at B = 300 the sequence
    feeds' tanh takes its large-tensor form, 2 sigmoid(2x) - 1."""
    for feed, bias, collect, indep, widths in [("hist", "false", "all", "false", [6, 5, 3]),
                                               ("hist", "true", "all", "true", [6, 5, 3]),
                                               ("hist", "true", "last", "false", [6, 5, 3]),
                                               ("cat", "true", "all", "false", [6, 5, 3]),
                                               ("cat", "false", "last", "true", [6, 5, 3]),
                                               ("hist", "true", "all", "false", [6, 3]),
                                               ("hist", "false", "all", "true", [6, 4, 4, 3])]:
        _, cls = compile_text(CO_ACTION_SPEC.format(feed=feed, bias=bias, collect=collect,
                                                    indep=indep, widths=widths))
        model = cls().double().eval()
        unit = model.y_co_action
        inputs = cls.example_inputs(batch, torch.Generator().manual_seed(1))
        lengths = inputs["hist_len"] if feed == "hist" else None
        if lengths is not None:
            lengths[0], lengths[1] = 0, 7  # an empty history sums to zero; a full one
        with torch.no_grad():
            q = unit.feed(inputs[feed]).reshape(batch, -1, 6)
            rows = unit.induction(inputs["item"])
            actual = unit(inputs["item"], inputs[feed], lengths)
            expected = co_action_reference(rows, q, lengths, widths, 3, bias == "true",
                                           collect, indep == "true")
        assert actual.shape == expected.shape
        torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-9)
