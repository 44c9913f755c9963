"""M3oE against a clean-room reference written from its equations (docs/models.md, 'M3oE'), its
gradient properties, its inference folds, its cost closed form, its diagnostics and lint rules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dwc import cost
from dwc.backends.torch.helpers.per_domain import _dwc_domain_rows
from dwc.driver import check_source, optimize
from dwc.ir.ops import VerificationError
from dwc.ir.types import ExpertsType, IdsType, VecType
from dwc.layers.m3oe.op import FoldedM3oEFusion, M3oEFusion, M3oESlot, M3oETowers, NormExperts
from dwc.layers.m3oe.runtime_towers import _DwcM3oETowers
from dwc.layers.star.op import FoldedStarLinear
from tests.conftest import compile_text, diagnostics_of, source_of

D, T, E = 3, 2, 3
WIDTHS = [12, 10, 9, 6]
SPEC = f"""
model m3oe_ref
feature x : numeric(width = 7)
feature d : categorical(vocab = {D}, dim = 2) scenario
m = m3oe(x, by = d, tasks = {T}, widths = {WIDTHS}, experts = {E})
output click = sigmoid(slice(m, 0)) loss = bce
output like = sigmoid(slice(m, 1)) loss = bce
"""


def _lnmlp(dims):
    layers = []
    for a, b in zip(dims, dims[1:], strict=False):
        layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.ReLU()]
    return nn.Sequential(*layers)


class M3oEReference(nn.Module):
    """M3oE from its equations, computed the way the public code runs it: every domain's STAR
    slot on the whole batch (W_d * W_s formed on each forward) and the sample's own picked by a
    mask; every (domain, task) gate and tower on every sample, then the sample's domain's
    logits picked."""

    def __init__(self, d_x, widths, domains, tasks, shared):
        super().__init__()
        f1, f2, *expert = widths
        self.domains, self.tasks, self.shared = domains, tasks, shared
        self.w_s, self.b_s = nn.Parameter(torch.randn(d_x, f1)), nn.Parameter(torch.randn(f1))
        self.w_d = nn.Parameter(torch.randn(domains, d_x, f1))
        self.b_d = nn.Parameter(torch.randn(domains, f1))
        self.star, self.skip = _lnmlp([f1, f2]), _lnmlp([d_x, f2])
        self.experts = nn.ModuleList(_lnmlp([f2, *expert])
                                     for _ in range(shared + domains + tasks))
        self.gates = nn.ModuleList(nn.Linear(f2, shared) for _ in range(domains * tasks))
        f4 = widths[-1]
        self.towers = nn.ModuleList(
            nn.Sequential(nn.Linear(f4, f4), nn.LayerNorm(f4), nn.ReLU(), nn.Linear(f4, 1))
            for _ in range(domains * tasks))
        self.alpha_d, self.alpha_t, self.beta_d, self.beta_t = (
            nn.Parameter(torch.randn(())) for _ in range(4))

    def forward(self, x, domain):
        masks = [(domain == d).to(x.dtype).unsqueeze(1) for d in range(self.domains)]
        s = sum(m * (x @ (self.w_d[d] * self.w_s) + self.b_d[d] + self.b_s)
                for d, m in enumerate(masks))
        h = self.star(s) + self.skip(x)
        out = [e(h) for e in self.experts]
        shared = out[:self.shared]
        dom = out[self.shared:self.shared + self.domains]
        task = out[self.shared + self.domains:]
        a_d, a_t = torch.sigmoid(self.alpha_d), torch.sigmoid(self.alpha_t)
        b_d, b_t = torch.sigmoid(self.beta_d), torch.sigmoid(self.beta_t)
        y = torch.zeros(x.shape[0], self.tasks, dtype=x.dtype)
        for d in range(self.domains):
            u = b_d * dom[d] + (1 - b_d) / (self.domains - 1) * sum(
                dom[j] for j in range(self.domains) if j != d)
            for t in range(self.tasks):
                v = b_t * task[t] + (1 - b_t) / (self.tasks - 1) * sum(
                    task[j] for j in range(self.tasks) if j != t)
                g = torch.softmax(self.gates[d * self.tasks + t](h.detach()), dim=1)
                f = sum(g[:, k:k + 1] * shared[k] for k in range(self.shared)) + a_d * u + a_t * v
                y[:, t:t + 1] += masks[d] * self.towers[d * self.tasks + t](f)
        return y


def _copy_into(ref: M3oEReference, model) -> None:
    """dwc's weights into the reference, by meaning (dwc stores W as in x out)."""
    with torch.no_grad():
        slot = model.m_slot
        ref.w_s.copy_(slot.weight)
        ref.b_s.copy_(slot.bias)
        ref.w_d.copy_(slot.domain_weight)
        ref.b_d.copy_(slot.domain_bias)
        for mine, theirs in ((ref.star, "star"), (ref.skip, "skip")):
            mine[0].load_state_dict(getattr(model, f"m_{theirs}_fc").state_dict())
            mine[1].load_state_dict(getattr(model, f"m_{theirs}_norm").state_dict())
        experts = model.m_experts
        for k, expert in enumerate(ref.experts):
            for layer in range(len(experts.weights)):
                expert[3 * layer].weight.copy_(experts.weights[layer][k].T)
                expert[3 * layer].bias.copy_(experts.biases[layer][k])
                expert[3 * layer + 1].weight.copy_(experts.norm_weights[layer][k])
                expert[3 * layer + 1].bias.copy_(experts.norm_biases[layer][k])
        gates, towers = model.m_gates, model.m_towers
        for d in range(ref.domains):
            for t in range(ref.tasks):
                i, cols = d * ref.tasks + t, slice(t * ref.shared, (t + 1) * ref.shared)
                ref.gates[i].weight.copy_(gates.weight[d][:, cols].T)
                ref.gates[i].bias.copy_(gates.bias[d][cols])
                tower = ref.towers[i]
                tower[0].weight.copy_(towers.weight[d, t].T)
                tower[0].bias.copy_(towers.bias[d, t])
                tower[1].weight.copy_(towers.norm_weight[d, t])
                tower[1].bias.copy_(towers.norm_bias[d, t])
                tower[3].weight.copy_(towers.out_weight[d, t].unsqueeze(0))
                tower[3].bias.copy_(towers.out_bias[d, t].unsqueeze(0))
        fusion = model.m_fusion
        ref.alpha_d.copy_(fusion.alpha_domain)
        ref.alpha_t.copy_(fusion.alpha_task)
        ref.beta_d.copy_(fusion.beta_domain)
        ref.beta_t.copy_(fusion.beta_task)


def _model_and_reference():
    """dwc's training module in float64, every parameter moved off its init, and the reference
    holding the same weights."""
    _, cls = compile_text(SPEC)
    torch.manual_seed(0)
    model = cls(validate_inputs=False).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    ref = M3oEReference(7, WIDTHS, D, T, E).double()
    _copy_into(ref, model)
    return cls, model, ref


def _inputs(cls, batch, seed=1):
    inputs = cls.example_inputs(batch, torch.Generator().manual_seed(seed))
    inputs["x"] = inputs["x"].double()
    return inputs


def _logits(model, inputs):
    return torch.cat([model._forward(inputs)[1][name] for name in ("click", "like")], dim=1)


def test_matches_the_reference_from_the_equations():
    cls, model, ref = _model_and_reference()
    model.eval()
    inputs = _inputs(cls, 64)
    assert len(set(inputs["d"].tolist())) == D
    with torch.no_grad():
        torch.testing.assert_close(_logits(model, inputs), ref(inputs["x"], inputs["d"]),
                                   rtol=1e-6, atol=1e-9)


def test_training_gradients_equal_the_references_that_runs_every_tower():
    """dwc runs only the sample's domain's gates and towers, in training too: every parameter's
    gradient is the reference's (whose other towers' outputs are masked away)."""
    cls, model, ref = _model_and_reference()
    inputs = _inputs(cls, 40)
    weights = torch.randn(40, T, dtype=torch.float64)
    (_logits(model.train(), inputs) * weights).sum().backward()
    (ref(inputs["x"], inputs["d"]) * weights).sum().backward()
    pairs = [(model.m_slot.domain_weight, ref.w_d), (model.m_slot.weight, ref.w_s),
             (model.m_fusion.alpha_domain, ref.alpha_d), (model.m_fusion.beta_task, ref.beta_t),
             (model.m_star_fc.weight, ref.star[0].weight)]
    for mine, theirs in pairs:
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-6, atol=1e-9)
    for d in range(D):
        for t in range(T):
            torch.testing.assert_close(model.m_towers.out_weight.grad[d, t],
                                       ref.towers[d * T + t][3].weight.grad[0], rtol=1e-6,
                                       atol=1e-9)
            cols = slice(t * E, (t + 1) * E)
            torch.testing.assert_close(model.m_gates.weight.grad[d][:, cols],
                                       ref.gates[d * T + t].weight.grad.T, rtol=1e-6, atol=1e-9)


def test_the_gate_path_sends_no_gradient_into_h():
    """With the experts' path cut, the only way from the loss back to h is through the gates,
    which read stop_gradient(h): the layers below h get no gradient, the gates do."""
    cls, model, _ = _model_and_reference()
    inputs = _inputs(cls, 32)
    cut = model.m_experts.register_forward_hook(lambda module, args, out: out.detach())
    _logits(model.train(), inputs).sum().backward()
    below_h = [model.m_slot.weight, model.m_slot.domain_weight, model.m_star_fc.weight,
               model.m_skip_fc.weight]
    assert all(p.grad is None or not p.grad.any() for p in below_h)
    assert model.m_gates.weight.grad.abs().sum() > 0
    cut.remove()
    model.zero_grad()
    _logits(model, inputs).sum().backward()  # the experts' path does reach below h
    assert all(p.grad.abs().sum() > 0 for p in below_h)


def test_fusion_weights_start_at_sigmoid_one():
    _, cls = compile_text(SPEC)
    fusion = cls().m_fusion
    a = b = torch.sigmoid(torch.tensor(1.0)).item()
    assert round(a, 3) == 0.731
    others_d, others_t = a * (1 - b) / (D - 1), a * (1 - b) / (T - 1)
    expected = torch.tensor([a * b - others_d, others_d, a * b - others_t, others_t])
    torch.testing.assert_close(fusion.coefficients().detach(), expected)


@pytest.mark.parametrize("batch", [1, 7, 2000])
def test_folded_form_equals_the_training_form(batch):
    """for_inference(): W'_d = W_s * W_d and b'_d = b_s + b_d precomputed (fold-star), the fusion
    weights constants (fold-m3oe), at small, gathered and grouped batch sizes, mixed domains."""
    cls, model, _ = _model_and_reference()
    model.eval()
    served = model.for_inference()
    assert isinstance(served.m_fusion.coefficients, torch.Tensor)
    assert not any("alpha" in name for name, _ in served.named_parameters())
    inputs = _inputs(cls, batch, seed=batch)
    if batch > 1:
        assert len(set(inputs["d"].tolist())) > 1
    with torch.no_grad():
        torch.testing.assert_close(_logits(served, inputs), _logits(model, inputs), rtol=1e-9,
                                   atol=1e-12)


def test_a_served_sample_does_not_depend_on_its_batch():
    cls, model, _ = _model_and_reference()
    served = model.eval().for_inference()
    inputs = _inputs(cls, 2000, seed=5)
    with torch.no_grad():
        whole = _logits(served, inputs)
        for i in (0, 1, 2, 999, 1999):
            alone = _logits(served, {k: v[i:i + 1] for k, v in inputs.items()})
            torch.testing.assert_close(alone, whole[i:i + 1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mode", ["traced", "one-domain", "gathered", "grouped", "ordered"])
def test_every_tower_path_computes_the_sample_domain_towers(mode):
    torch.manual_seed(0)
    towers = _DwcM3oETowers(D, T, 5).double()
    with torch.no_grad():
        for p in towers.parameters():
            p.add_(0.2 * torch.randn_like(p))
    batch = 7 if mode == "gathered" else 3000
    fused = torch.randn(batch, T, 5, dtype=torch.float64)
    domain = torch.randint(0, D, (batch,))
    if mode == "one-domain":
        domain = torch.full((batch,), 2)
    expected = torch.stack([
        torch.stack([towers.out_bias[d, t] + towers.out_weight[d, t] @ torch.relu(
            nn.functional.layer_norm(fused[b, t] @ towers.weight[d, t] + towers.bias[d, t], [5])
            * towers.norm_weight[d, t] + towers.norm_bias[d, t]) for t in range(T)])
        for b, d in enumerate(domain.tolist())])
    rows = None if mode == "traced" else _dwc_domain_rows(domain)
    if mode == "grouped":  # the batch already in domain order (_dwc_group_batch)
        order = torch.argsort(domain)
        fused, domain, expected = fused[order], domain[order], expected[order]
        rows = (None, *_dwc_domain_rows(domain)[1:])
    with torch.no_grad():
        torch.testing.assert_close(towers(fused, domain, rows), expected)


SIZES = """
model sizes
feature x : numeric(width = 100)
feature d : categorical(vocab = 3, dim = 2) scenario
m = m3oe(x, by = d)
output click = sigmoid(slice(m, 0)) loss = bce
output like = sigmoid(slice(m, 1)) loss = bce
"""


def _closed_form(d_x, widths, domains, tasks, shared):
    f1, f2, f3, f4 = widths
    return ((domains + 1) * (d_x * f1 + f1) + (f1 * f2 + 3 * f2) + (d_x * f2 + 3 * f2)
            + (shared + domains + tasks) * (f2 * f3 + 3 * f3 + f3 * f4 + 3 * f4)
            + domains * tasks * (f2 * shared + shared)
            + domains * tasks * (f4 * f4 + 3 * f4 + f4 + 1) + 4)


def test_parameter_counts_are_the_closed_form():
    """Defaults widths [512, 256, 256, 64] and E = 4, d_x = 100, D = 3, T = 2: 1,143,266 to train;
    for inference the slot keeps D merged weight sets (not D + 1) and the four scalars are
    constants."""
    model, _, inference, _ = optimize(check_source(source_of(SIZES)), level=2, verify_each=True)
    trained = next(c for c in cost.explain(model) if c.name == "m").cost.params
    served = next(c for c in cost.explain(inference) if c.name == "m").cost.params
    assert trained == _closed_form(100, (512, 256, 256, 64), 3, 2, 4) == 1_143_266
    assert served == trained - (100 * 512 + 512) - 4 == 1_091_550
    _, cls = compile_text(SIZES)
    module = cls()
    assert sum(p.numel() for name, p in module.named_parameters()
               if name.startswith("m_")) == trained
    assert sum(p.numel() for name, p in module.for_inference().named_parameters()
               if name.startswith("m_")) == served


def test_inference_graph_folds_the_slot_and_the_fusion():
    _, train, inference, _ = optimize(check_source(source_of(SPEC)), level=2, verify_each=True)
    kinds = {type(op) for op in train.ops}
    assert {M3oESlot, M3oEFusion, NormExperts, M3oETowers} <= kinds
    folded = {type(op) for op in inference.ops}
    assert {FoldedStarLinear, FoldedM3oEFusion, M3oETowers} <= folded
    assert M3oESlot not in folded and M3oEFusion not in folded
    assert not any(op.kind == "stop_gradient" for op in inference.ops)


def test_one_domain_and_one_task_have_no_others_to_average():
    """The mean over the other domains (tasks) is empty with one of them: dwc counts it zero
    (the equations divide by D - 1 = 0)."""
    spec = SPEC.replace(f"vocab = {D}", "vocab = 1").replace(f"tasks = {T}", "tasks = 1")
    spec = spec.replace("output like = sigmoid(slice(m, 1)) loss = bce\n", "")
    _, cls = compile_text(spec)
    model = cls().eval()
    a = torch.sigmoid(torch.tensor(1.0))
    torch.testing.assert_close(model.m_fusion.coefficients().detach(),
                               torch.tensor([a * a, 0.0, a * a, 0.0]))
    with torch.no_grad():
        out = model.for_inference()(cls.example_inputs(5))["click"]
    assert torch.isfinite(out).all()


def test_ops_verify_their_inputs():
    fusion = M3oEFusion(result="f", inputs=("e", "g", "d"), type=ExpertsType(2, 4), shared=3,
                        domains=3, tasks=2)
    fusion.verify((ExpertsType(8, 4), VecType(6), IdsType(3)), {})
    towers = M3oETowers(result="y", inputs=("f", "d"), type=VecType(2), domains=3, tasks=2,
                        width=4)
    towers.verify((ExpertsType(2, 4), IdsType(3)), {})
    experts = NormExperts(result="e", inputs=("h",), type=ExpertsType(8, 4), in_features=6,
                          widths=(5, 4))
    experts.verify((VecType(6),), {})
    bad = [(fusion, (ExpertsType(7, 4), VecType(6), IdsType(3))),
           (fusion, (ExpertsType(8, 4), VecType(5), IdsType(3))),
           (fusion, (ExpertsType(8, 4), VecType(6), IdsType(4))),
           (towers, (ExpertsType(3, 4), IdsType(3))), (towers, (ExpertsType(2, 4), IdsType(2))),
           (experts, (VecType(5),))]
    for op, ins in bad:
        with pytest.raises(VerificationError):
            op.verify(ins, {})


HEAD = ("model m\nfeature a : categorical(vocab = 20, dim = 4)\n"
        "feature d : categorical(vocab = 3, dim = 2) scenario\nscenarios d\n")
OUT = "output y = sigmoid(slice(m, 0)) loss = bce\n"


@pytest.mark.parametrize(("body", "code", "location"), [
    ("m = m3oe(a, by = d, widths = [8, 4])\n", "DW340", (5, 30)),
    ("e = experts(a, 2, [4])\nm = m3oe(e, by = d)\n", "DW341", (6, 10)),
    ("m = m3oe(a, by = a)\n", "DW307", (5, 18)),
    ("m = m3oe(a, by = d, experts = 0)\n", "DW304", (5, 31)),
    ("m = m3oe(a, by = d, tasks = 2)\noutput z = sigmoid(slice(m, 2)) loss = bce\n", "DW304",
     (6, 29)),
    ("m = m3oe(a, by = d)\nz = slice(experts(a, 2, [4]), 0)\n", "DW307", (6, 11)),
])
def test_misuse_is_a_coded_diagnostic(body, code, location):
    text = HEAD + body + OUT
    first = diagnostics_of(text)[0]
    assert (first.code, first.location(source_of(text))) == (code, location), first.message
    assert first.help


LINT = HEAD + "m = m3oe(a, by = {by}, tasks = {tasks}, widths = [8, 8, 4])\n" + OUT + \
    "output y2 = sigmoid(slice(m, {last})) loss = bce\n"
ONE_DOMAIN = LINT.replace("vocab = 3, dim = 2", "vocab = 1, dim = 2").replace("scenarios d\n", "")

# code -> (failing spec, (line, column) of the finding, passing spec): tests/lint/test_rules.py
LINT_CASES = {
    "DW526": (LINT.format(by="scenario", tasks=1, last=0), (5, 36),
              LINT.format(by="scenario", tasks=2, last=1)),
    "DW527": (ONE_DOMAIN.format(by="d", tasks=2, last=1), (4, 18),
              LINT.format(by="d", tasks=2, last=1)),
}
