"""HMoE against a clean-room reference written from its equations (docs/models.md, 'HMoE'):
outputs and gradients with copied weights in float64, the stop-gradient's properties, the
closed-form parameter count, batch independence, and its diagnostics and lint rules."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from dwc.backends.torch.inline import helper_source
from tests.conftest import compile_text, diagnostics_of, source_of

SPEC = """model hm
feature x : numeric(width = 6)
feature s : categorical(vocab = 3, dim = 2) scenario
y = hmoe(concat(x, s), by = s, experts = 3, expert = [8, 5], gate = [4, 3], tower = [6, 4],
         fusion = [5], fuse = {fuse})
output ctr = sigmoid(y) loss = bce
"""
D_X, E, EXPERT, GATE, TOWER, FUSION, T = 8, 3, [8, 5], [4, 3], [6, 4], [5], 3


def _mlp(dims: list[int]) -> nn.Sequential:
    """Linear -> ReLU for every layer (the ports' MLP with its activation after the last)."""
    layers: list[nn.Module] = []
    for a, b in zip(dims, dims[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class ReferenceHmoe(nn.Module):
    """HMoE from its equations, computed the way the public ports run it: every scenario's
    gate, tower, fusion net and head on the whole batch (B x T outputs), then each sample's
    own scenario column picked.

        e_k = Expert_k(x);  g_t = softmax(MLP(x) G_t);  h_t = Tower_t(sum_k g_tk e_k)
        l_t = h_t w_t + beta_t;  a_t = softmax(MLP(x) A_t)
        label:  y_t = a_tt l_t + sum_{j != t} a_tj sg(l_j)
        tower:  y_t = (a_tt h_t + sum_{j != t} a_tj sg(h_j)) w_t + beta_t
    """

    def __init__(self, fuse: str) -> None:
        super().__init__()
        self.fuse = fuse
        self.experts = nn.ModuleList(_mlp([D_X, *EXPERT]) for _ in range(E))
        self.gates = nn.ModuleList(nn.Sequential(_mlp([D_X, *GATE]),
                                                 nn.Linear(GATE[-1], E, bias=False))
                                   for _ in range(T))
        self.towers = nn.ModuleList(_mlp([EXPERT[-1], *TOWER]) for _ in range(T))
        self.fusions = nn.ModuleList(nn.Sequential(_mlp([D_X, *FUSION]),
                                                   nn.Linear(FUSION[-1], T, bias=False))
                                     for _ in range(T))
        self.heads = nn.ModuleList(nn.Linear(TOWER[-1], 1) for _ in range(T))

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        e = torch.stack([expert(x) for expert in self.experts], dim=1)
        h = [tower(torch.einsum("be,bed->bd", torch.softmax(gate(x), dim=1), e))
             for gate, tower in zip(self.gates, self.towers, strict=True)]
        logits = [head(h_t) for head, h_t in zip(self.heads, h, strict=True)]
        out = []
        for t in range(T):
            a = torch.softmax(self.fusions[t](x), dim=1)
            mixed = logits if self.fuse == "label" else h
            fused = sum(a[:, j:j + 1] * (mixed[j] if j == t else mixed[j].detach())
                        for j in range(T))
            out.append(fused if self.fuse == "label" else self.heads[t](fused))
        return torch.cat(out, dim=1).gather(1, domain.unsqueeze(1))


def _linears(seq: nn.Module) -> list[nn.Linear]:
    return [m for m in seq.modules() if isinstance(m, nn.Linear)]


def _copy(model, ref: ReferenceHmoe) -> None:
    """The reference's weights into dwc's module (dwc stores in x out, nn.Linear out x in)."""
    experts, hmoe = model.y_experts, model.y_hmoe
    with torch.no_grad():
        for k, expert in enumerate(ref.experts):
            for i, lin in enumerate(_linears(expert)):
                experts.weights[i][k].copy_(lin.weight.T)
                experts.biases[i][k].copy_(lin.bias)
        for t in range(T):
            *hidden, out = _linears(ref.gates[t])
            for i, lin in enumerate(hidden):
                hmoe.gates.weights[i][t].copy_(lin.weight.T)
                hmoe.gates.biases[i][t].copy_(lin.bias)
            hmoe.gate_out[t].copy_(out.weight.T)
            for i, lin in enumerate(_linears(ref.towers[t])):
                hmoe.tower_weights[i][t].copy_(lin.weight.T)
                hmoe.tower_biases[i][t].copy_(lin.bias)
            *hidden, out = _linears(ref.fusions[t])
            for i, lin in enumerate(hidden):
                hmoe.fusion_weights[i][t].copy_(lin.weight.T)
                hmoe.fusion_biases[i][t].copy_(lin.bias)
            hmoe.fusion_out[t].copy_(out.weight.T)
            hmoe.head_weight[t].copy_(ref.heads[t].weight[0])
            hmoe.head_bias[t].copy_(ref.heads[t].bias[0])


def _pair(fuse: str, seed: int = 0):
    _, cls = compile_text(SPEC.format(fuse=fuse))
    torch.manual_seed(seed)
    model = cls().double().eval()
    ref = ReferenceHmoe(fuse).double()
    for p in ref.heads.parameters():  # move beta off its zero start
        nn.init.normal_(p)
    _copy(model, ref)
    return cls, model, ref


def _inputs(cls, batch: int, seed: int = 1, domain: int | None = None):
    inputs = cls.example_inputs(batch, torch.Generator().manual_seed(seed))
    inputs["x"] = inputs["x"].double()
    if domain is not None:
        inputs["s"] = torch.full_like(inputs["s"], domain)
    return inputs


def _reference_logit(model, ref, inputs):
    x = torch.cat([inputs["x"], model.s_embedding(inputs["s"])], dim=1)
    return ref(x, inputs["s"])


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("fuse", ["label", "tower"])
def test_hmoe_matches_its_equations(fuse):
    """Eval, float64, weights copied: the training and the served module give the reference's
    logit of each sample's own scenario head (mixed scenarios, with and without autograd)."""
    cls, model, ref = _pair(fuse)
    served = model.for_inference()
    inputs = _inputs(cls, 64)
    assert set(inputs["s"].tolist()) == {0, 1, 2}
    expected = _reference_logit(model, ref, inputs).detach()
    _close(model(inputs)["ctr"], torch.sigmoid(expected))
    with torch.no_grad():
        _close(model._forward(inputs)[1]["ctr"], expected)
        _close(served._forward(inputs)[1]["ctr"], expected)


@pytest.mark.parametrize("fuse", ["label", "tower"])
def test_hmoe_gradients_match_the_reference(fuse):
    """The stop-gradients sit where the equations put them: every parameter's gradient of a
    mixed-scenario loss equals the reference's."""
    cls, model, ref = _pair(fuse)
    inputs = _inputs(cls, 48, seed=2)
    target = torch.rand(48, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    loss = nn.functional.binary_cross_entropy_with_logits
    loss(model._forward(inputs)[1]["ctr"], target).backward()
    loss(_reference_logit(model, ref, inputs), target).backward()
    hmoe = model.y_hmoe
    for t in range(T):
        _close(hmoe.gate_out.grad[t], _linears(ref.gates[t])[-1].weight.grad.T)
        _close(hmoe.tower_weights[0].grad[t], _linears(ref.towers[t])[0].weight.grad.T)
        _close(hmoe.fusion_weights[0].grad[t], _linears(ref.fusions[t])[0].weight.grad.T)
        _close(hmoe.fusion_out.grad[t], _linears(ref.fusions[t])[-1].weight.grad.T)
        _close(hmoe.head_weight.grad[t], ref.heads[t].weight.grad[0])
        _close(hmoe.head_bias.grad[t], ref.heads[t].bias.grad[0])
    for k in range(E):
        _close(model.y_experts.weights[0].grad[k], _linears(ref.experts[k])[0].weight.grad.T)


@pytest.mark.parametrize("fuse", ["label", "tower"])
@pytest.mark.parametrize("t", [0, 2])
def test_a_scenarios_loss_reaches_only_its_own_path(fuse, t):
    """Task-constrained back-propagation: the loss L_t of samples of scenario t gives no
    gradient to the gates, towers, fusion nets and heads of the other scenarios
    (dL_t/dTower_j = 0 for j != t), and a non-zero one to its own fusion net A_t, gate, tower
    and head, and to the experts."""
    cls, model, _ = _pair(fuse)
    inputs = _inputs(cls, 16, seed=4, domain=t)
    model._forward(inputs)[1]["ctr"].sum().backward()
    hmoe = model.y_hmoe
    per_scenario = [*hmoe.gates.weights, *hmoe.gates.biases, hmoe.gate_out,
                    *hmoe.tower_weights, *hmoe.tower_biases, *hmoe.fusion_weights,
                    *hmoe.fusion_biases, hmoe.fusion_out, hmoe.head_weight, hmoe.head_bias]
    for param in per_scenario:
        for j in range(T):
            assert (param.grad[j].abs().sum() > 0) == (j == t), (param.shape, j)
    assert all(w.grad.abs().sum() > 0 for w in model.y_experts.weights)


@pytest.mark.parametrize("fuse", ["label", "tower"])
def test_the_served_form_equals_training_and_is_batch_independent(fuse):
    """No weight fold applies (gates and fusion weights read x): the served module equals the
    training one at B = 1, 7, 2000 with mixed scenarios, and a sample's output does not depend
    on the rest of its batch (alone, or in a shuffled batch)."""
    cls, model, _ = _pair(fuse)
    model = model.float()
    served = model.for_inference()
    inputs = cls.example_inputs(2000, torch.Generator().manual_seed(5))
    with torch.no_grad():
        whole = model(inputs)["ctr"]
        for batch in (1, 7, 2000):
            part = {k: v[:batch] for k, v in inputs.items()}
            torch.testing.assert_close(served(part)["ctr"], whole[:batch], rtol=1e-5, atol=1e-6)
        order = torch.randperm(2000, generator=torch.Generator().manual_seed(6))
        shuffled = served({k: v[order] for k, v in inputs.items()})["ctr"]
        torch.testing.assert_close(shuffled, whole[order], rtol=1e-5, atol=1e-6)
        alone = torch.cat([served({k: v[i:i + 1] for k, v in inputs.items()})["ctr"]
                           for i in range(0, 2000, 97)])
        torch.testing.assert_close(alone, whole[::97], rtol=1e-5, atol=1e-6)


CLOSED_FORM = """model cf
feature x : numeric(width = 64)
feature s : categorical(vocab = 2, dim = 4) scenario
y = hmoe(x, by = s, fuse = {fuse})
output ctr = sigmoid(y) loss = bce
"""


@pytest.mark.parametrize("fuse", ["label", "tower"])
def test_parameters_follow_the_closed_form(tmp_path, capsys, fuse):
    """d_x = 64, T = 2, E = 4 with MMLRec's widths: E P(64->256->128) + T[(64g + g) + gE]
    + T(128 d_h + d_h) + T[(64w + w) + wT] + T d_h + T = 232,194 parameters in training and
    inference, both fusions. FLOPs: every gate, mixture and tower, one fusion net, then the
    heads' logits and their sum (label) or the towers' sum and one head (tower)."""
    from dwc.cli import main

    spec = tmp_path / "cf.dw"
    spec.write_text(CLOSED_FORM.format(fuse=fuse))
    assert main(["explain", str(spec), "--format", "json"]) == 0
    layer = next(r for r in json.loads(capsys.readouterr().out)["layers"] if r["name"] == "y")
    assert layer["training"]["params"] == layer["inference"]["params"] == 232_194
    d, g, w, h, e, t = 64, 64, 64, 64, 128, 2
    shared = 4 * (d * 256 + 256 * 128) + t * (d * g + g * 4) + t * 4 * e + t * e * h
    own = d * w + w * t + (t * h + t if fuse == "label" else t * h + h)
    assert layer["inference"]["flops_per_sample"] == 2 * (shared + own)
    _, cls = compile_text(CLOSED_FORM.format(fuse=fuse))
    model = cls()
    assert sum(p.numel() for m in (model.y_experts, model.y_hmoe)
               for p in m.parameters()) == 232_194


HEADER = """model m
feature a : categorical(vocab = 20, dim = 4)
feature s : categorical(vocab = 3, dim = 2) scenario
"""
TAIL = "output y = sigmoid(h) loss = bce\n"


@pytest.mark.parametrize(("body", "code", "location", "label"), [
    ("feature one : categorical(vocab = 1, dim = 2) scenario\nh = hmoe(a, by = one)\n",
     "DW320", (5, 18), "one scenario"),
    ("e = experts(a, 4, [8])\nh = hmoe(e, by = s)\n", "DW321", (5, 10), "is experts[4; 8]"),
    ("condition z = concat(s)\nh = hmoe(a, by = z)\n", "DW322", (5, 18), "not discrete ids"),
    ("h = hmoe(a, by = concat(s))\n", "DW322", (4, 18), "not discrete ids"),
    ("h = hmoe(a, by = a)\n", "DW307", (4, 18), "not a scenario id"),
    ("h = hmoe(a, by = s, experts = 0)\n", "DW304", (4, 31), "is 0"),
    ("h = hmoe(a, by = s, tower = [])\n", "DW304", (4, 29), "empty list"),
    ("h = hmoe(a, by = s, fuse = labels)\n", "DW305", (4, 28), "not a choice"),
])
def test_misuse_gets_a_coded_diagnostic(body, code, location, label):
    text = HEADER + body + TAIL
    first = diagnostics_of(text)[0]
    assert (first.code, first.location(source_of(text))) == (code, location), first.message
    assert first.primary.message == label and first.help


def test_hmoe_lowers_to_shared_experts_and_one_hmoe_op():
    from dwc.driver import check_source
    from dwc.layers.experts.op import Experts
    from dwc.layers.hmoe.op import Hmoe

    graph = check_source(source_of(HEADER + "h = hmoe(a, by = s)\n" + TAIL))
    experts, hmoe = [op for op in graph.ops if isinstance(op, Experts | Hmoe)]
    assert (experts.widths, experts.type.count) == ((256, 128), 4)
    assert hmoe.inputs == (experts.inputs[0], "s.ids", experts.result)
    assert (hmoe.heads, hmoe.gate, hmoe.tower, hmoe.fusion, hmoe.fuse) == \
        (3, (64,), (64,), (64,), "label")


def test_hmoe_op_verifies_its_inputs():
    from dwc.ir.ops import VerificationError
    from dwc.ir.types import ExpertsType, IdsType, VecType
    from dwc.layers.hmoe.op import Hmoe

    op = Hmoe(result="y", inputs=("x", "s", "e"), type=VecType(1), in_features=6, experts=3,
              expert_dim=5, heads=2, gate=(4,), tower=(4,), fusion=(4,))
    good = (VecType(6), IdsType(2), ExpertsType(3, 5))
    op.verify(good, {})
    for i, bad in ((0, VecType(5)), (1, IdsType(3)), (2, ExpertsType(3, 4))):
        with pytest.raises(VerificationError):
            op.verify((*good[:i], bad, *good[i + 1:]), {})


def test_hmoe_helper_inlines_with_the_helpers_it_calls():
    code, needs = helper_source("dwc.layers.hmoe.runtime")
    assert code.startswith("def _dwc_uniform(") and "import" not in code
    assert set(needs) == {"dwc.backends.torch.helpers.activation",
                          "dwc.backends.torch.helpers.per_domain",
                          "dwc.backends.torch.helpers.softmax", "dwc.layers.experts.runtime"}


_LINT = """model m
feature a : categorical(vocab = 100, dim = 8)
feature city : categorical(vocab = {vocab}, dim = 4) scenario
h = hmoe(concat(a, city), by = city, experts = {experts}, expert = [16, 8], gate = [8],
         tower = [8], fusion = [8])
output y = sigmoid(h) loss = bce
"""
LINT_CASES = {
    # 40 scenarios x (gate 12x8 + 8x4, mixing 4x8, tower 8x8) > the experts' 4 (12x16 + 16x8)
    "DW516": (_LINT.format(vocab=40, experts=4), (4, 27),
              _LINT.format(vocab=4, experts=4)),
    "DW517": (_LINT.format(vocab=4, experts=1), (4, 38),
              _LINT.format(vocab=4, experts=4)),
}
"""code -> (failing spec, (line, column) of the finding, passing spec): run by
tests/lint/test_rules.py with the core's cases."""
