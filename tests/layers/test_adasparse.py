"""AdaSparse against a reference written from its equations (weights copied, float64, eval), the
port's Binarization gradient against dwc's, alpha's schedule, the sparsity regulariser, the
per-cell folds (folded == unfolded, batch-independent) and the closed-form costs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dwc.cost import explain
from dwc.driver import check_source, optimize
from dwc.layers.adasparse.op import AdaSparsePruner, ScenarioPruner
from dwc.layers.adasparse.runtime import _DwcAdaSparsePruner
from tests.conftest import compile_text, source_of

SPEC = """
model ada_ref
feature a : categorical(vocab = 30, dim = 6)
feature b : categorical(vocab = 20, dim = 5)
feature d : categorical(vocab = 3, dim = 4) scenario
feature p : categorical(vocab = 2, dim = 3) scenario
scenarios d * p
condition e = concat(d, p)
h = adasparse(concat(a, b), [9, 7], by = e, {options})
output y = sigmoid(linear(h, 1)) loss = bce
"""
D_X, D_Z, WIDTHS, CELLS = 11, 7, (9, 7), 6
EPS = {"binarization": 0.3, "scaling": 0.5, "fusion": 0.5}
"""Thresholds that prune about a quarter of the units (the reference checks some are)."""
FORMS = [(form, reads) for reads in ("domain", "domain_and_hidden") for form in EPS]


def _model(form, reads, options=""):
    text = SPEC.format(options=f"pruner = {form}, eps = {EPS[form]}, reads = {reads}, "
                               f"dropout = 0.2{options}")
    _, cls = compile_text(text, "ada_ref.dw")
    torch.manual_seed(0)
    model = cls().double()
    with torch.no_grad():  # pruners away from their start, BN with statistics of its own
        for i in range(len(WIDTHS) + 1):
            pruner = getattr(model, f"h_pruner{i}")
            pruner.domain_weight.mul_(3.0)
            if pruner.hidden_weight is not None:
                pruner.hidden_weight.mul_(3.0)
            pruner.alpha.fill_(1.0 + 0.35 * i)
        for i in range(len(WIDTHS)):
            norm = getattr(model, f"h_norm{i}")
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.3, 0.3)
    return cls, model


class EquationAdaSparse(nn.Module):
    """AdaSparse from its equations: h_0 = [e ; P_0 x], a_l = ReLU(BN(h_{l-1} W_l + b_l)),
    h_l = P_l a_l, where P_l scores s = e W_l^p (or [e ; a_l] W_l^p) and pi is
    binarization 1[sigmoid(alpha s) > eps], scaling/fusion q 1[q > eps] with q = beta sigmoid(s)
    or beta sigmoid(alpha s): a pruned unit is multiplied by 0."""

    def __init__(self, form, eps, hidden, beta=2.0):
        super().__init__()
        self.form, self.eps, self.beta, self.hidden = form, eps, beta, hidden
        dims = (D_X, *WIDTHS)
        self.scorers = nn.ModuleList(nn.Linear(D_Z + (n if hidden else 0), n, bias=False)
                                     for n in dims)
        self.alphas = [1.0] * len(dims)
        self.linears = nn.ModuleList(nn.Linear(a, b)
                                     for a, b in zip((D_Z + D_X, *WIDTHS), WIDTHS, strict=False))
        self.norms = nn.ModuleList(nn.BatchNorm1d(n) for n in WIDTHS)

    def factors(self, layer, e, v):
        s = self.scorers[layer](torch.cat([e, v], dim=1) if self.hidden else e)
        alpha = self.alphas[layer]
        if self.form == "binarization":
            return (torch.sigmoid(alpha * s) > self.eps).to(s.dtype)
        q = self.beta * torch.sigmoid(s if self.form == "scaling" else alpha * s)
        return torch.where(q > self.eps, q, torch.zeros_like(q))

    def forward(self, x, e):
        h = torch.cat([e, self.factors(0, e, x) * x], dim=1)
        for i, (linear, norm) in enumerate(zip(self.linears, self.norms, strict=True)):
            a = torch.relu(norm(linear(h)))
            h = self.factors(i + 1, e, a) * a
        return h


def _reference(model, form, reads):
    ref = EquationAdaSparse(form, EPS[form], reads == "domain_and_hidden").double().eval()
    with torch.no_grad():
        for i, scorer in enumerate(ref.scorers):
            pruner = getattr(model, f"h_pruner{i}")
            parts = [pruner.domain_weight] + ([pruner.hidden_weight] if ref.hidden else [])
            scorer.weight.copy_(torch.cat(parts).T)
            ref.alphas[i] = pruner.alpha.item()
        for i, (linear, norm) in enumerate(zip(ref.linears, ref.norms, strict=True)):
            linear.load_state_dict(getattr(model, f"h_fc{i}").state_dict())
            norm.load_state_dict(getattr(model, f"h_norm{i}").state_dict())
    return ref


def _inputs(model, batch, seed):
    inputs = model.example_inputs(batch, torch.Generator().manual_seed(seed))
    x = torch.cat([model.a_embedding(inputs["a"]), model.b_embedding(inputs["b"])], dim=1)
    e = torch.cat([model.d_embedding(inputs["d"]), model.p_embedding(inputs["p"])], dim=1)
    return inputs, x, e


@pytest.mark.parametrize(("form", "reads"), FORMS)
def test_generated_network_matches_the_equations(form, reads):
    _, model = _model(form, reads)
    model.eval()
    ref = _reference(model, form, reads)
    inputs, x, e = _inputs(model, 257, 1)
    with torch.no_grad():
        h = ref(x, e)
        expected = torch.sigmoid(model.y(h))
        actual = model(inputs)["y"]
        pruned = (ref.factors(1, e, torch.relu(ref.norms[0](ref.linears[0](
            torch.cat([e, ref.factors(0, e, x) * x], dim=1))))) == 0).double().mean()
    assert 0.05 < pruned < 0.95  # the thresholds do prune, and not everything
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=0)


class PortStylePruner(nn.Module):
    """The public port's pruner as its forward computes it: s = [e ; v] W (no bias) and
    binarization pi = sign(sigmoid(alpha s) - eps), fusion pi = q sign(q - eps)."""

    def __init__(self, d_z, width, form, eps=0.01, beta=2.0, alpha=1.0):
        super().__init__()
        self.scorer = nn.Linear(d_z + width, width, bias=False)
        self.form, self.eps, self.beta, self.alpha = form, eps, beta, alpha

    def forward(self, e, v):
        s = self.scorer(torch.cat([e, v], dim=1))
        if self.form == "binarization":
            return torch.sign(torch.sigmoid(self.alpha * s) - self.eps)
        q = self.beta * torch.sigmoid(self.alpha * s)
        return q * torch.sign(q - self.eps)


def test_port_binarization_gives_its_pruner_and_e_no_gradient_and_negates_pruned_units():
    torch.manual_seed(0)
    port = PortStylePruner(4, 6, "binarization", eps=0.4)
    with torch.no_grad():
        port.scorer.weight.mul_(4.0)
    e = torch.randn(32, 4, requires_grad=True)
    v = torch.randn(32, 6)
    pi = port(e, v)
    assert set(pi.unique().tolist()) == {-1.0, 1.0}  # "pruned" units are negated, not zeroed
    (pi * v).sum().backward()
    assert torch.count_nonzero(port.scorer.weight.grad) == 0  # sign(): no gradient
    assert torch.count_nonzero(e.grad) == 0


def test_dwc_binarization_zeroes_pruned_units_and_its_pruner_and_e_get_a_gradient():
    """pi is exactly 0 or 1; its backward is sigmoid'(m) d m / d s with m = alpha s - logit eps
    (straight through the step), so the pruner learns and e gets its share."""
    torch.manual_seed(0)
    pruner = _DwcAdaSparsePruner(4, 6, pruner="binarization", eps=0.4, alpha=1.5)
    with torch.no_grad():
        pruner.domain_weight.mul_(4.0)
    z = torch.randn(32, 4, requires_grad=True)
    x, g = torch.randn(32, 6), torch.randn(32, 6)
    y = pruner.eval()(x, z)
    pi = pruner.factors(z.detach())
    assert set(pi.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(y, x * pi) and bool((y[pi == 0] == 0).all())
    (y * g).sum().backward()
    m = 1.5 * (z.detach() @ pruner.domain_weight.detach()) - torch.logit(torch.tensor(0.4))
    slope = 1.5 * torch.sigmoid(m) * (1 - torch.sigmoid(m)) * x * g
    torch.testing.assert_close(pruner.domain_weight.grad, z.detach().T @ slope)
    assert torch.count_nonzero(z.grad) == z.numel()


def test_every_pruner_of_a_binarization_network_learns():
    _, model = _model("binarization", "domain")
    model.train()
    inputs, _, _ = _inputs(model, 64, 2)
    targets = model.example_targets(64, torch.Generator().manual_seed(3))
    model.loss(inputs, {k: v.double() for k, v in targets.items()}).backward()
    for i in range(len(WIDTHS) + 1):
        assert torch.count_nonzero(getattr(model, f"h_pruner{i}").domain_weight.grad) > 0
    assert torch.count_nonzero(model.d_embedding.weight.grad) > 0


def test_alpha_is_saved_and_advanced_by_training_forwards_only():
    _, model = _model("fusion", "domain")
    inputs, _, _ = _inputs(model, 16, 4)
    start = {i: getattr(model, f"h_pruner{i}").alpha.item() for i in range(3)}
    assert {f"h_pruner{i}.alpha" for i in range(3)} <= set(model.state_dict())
    model.eval()
    with torch.no_grad():
        model(inputs)
    assert all(getattr(model, f"h_pruner{i}").alpha.item() == start[i] for i in range(3))
    model.train()
    model(inputs)
    model(inputs)
    for i in range(3):
        assert getattr(model, f"h_pruner{i}").alpha.item() == pytest.approx(start[i] + 2e-4)
    fresh = type(model)().double()
    fresh.load_state_dict(model.state_dict())
    assert fresh.h_pruner2.alpha.item() == pytest.approx(start[2] + 2e-4)


def _auxiliary(model) -> torch.Tensor:
    return sum(m.dwc_auxiliary_loss() for m in model.modules() if hasattr(m, "dwc_auxiliary_loss"))


def test_the_regulariser_is_the_soft_pruned_fraction_against_the_target_in_loss():
    """loss() = BCE + sparsity_weight * sum_l |(1 - mean sigmoid(m_l)) - sparsity| over the
    batch's units, at the alpha the forward used; 0 in eval, and no term without a weight."""
    _, model = _model("fusion", "domain", ", sparsity = 0.6, sparsity_weight = 0.25")
    inputs, _, e = _inputs(model, 64, 5)
    targets = {k: v.double() for k, v in model.example_targets(64).items()}
    alphas = [getattr(model, f"h_pruner{i}").alpha.clone() for i in range(3)]
    model.train()
    torch.manual_seed(7)
    loss = model.loss(inputs, targets)
    threshold = torch.logit(torch.tensor(0.5 / 2.0, dtype=torch.float64))
    expected = 0.0
    for i, alpha in enumerate(alphas):
        s = e.detach() @ getattr(model, f"h_pruner{i}").domain_weight.detach()
        expected += 0.25 * abs(1 - torch.sigmoid(alpha * s - threshold).mean() - 0.6)
    torch.testing.assert_close(_auxiliary(model).detach(), expected)
    for i, alpha in enumerate(alphas):  # the same forward again (dropout masks too): its BCE
        getattr(model, f"h_pruner{i}").alpha = alpha
    torch.manual_seed(7)
    _, logits = model._forward(inputs)
    bce = nn.functional.binary_cross_entropy_with_logits(logits["y"], targets["y"])
    torch.testing.assert_close(loss, bce + expected)
    loss.backward()
    assert torch.count_nonzero(model.h_pruner1.domain_weight.grad) > 0
    model.eval()
    assert _auxiliary(model).item() == 0.0
    _, plain = _model("fusion", "domain")
    with_term, without = (compile_text(SPEC.format(options=o))[0].files["model.py"] for o in (
        "sparsity_weight = 0.1", "dropout = 0.0"))
    assert "total = total + self.h_pruner2.dwc_auxiliary_loss()" in with_term
    assert "dwc_auxiliary_loss()" not in without.split("def for_inference")[0]
    plain.train()
    plain(_inputs(plain, 8, 6)[0])
    assert _auxiliary(plain).item() == 0.0


def test_training_on_the_regulariser_reaches_the_target_sparsity():
    pruner = _DwcAdaSparsePruner(8, 32, pruner="fusion", eps=0.01, sparsity=0.5,
                                 sparsity_weight=1.0).train()
    z = torch.randn(256, 8, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(pruner.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        pruner(torch.ones(256, 32), z)
        pruner.dwc_auxiliary_loss().backward()
        optimizer.step()
    with torch.no_grad():
        pruned = (pruner.factors(z) == 0).double().mean().item()
    assert pruned == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize(("form", "reads"), FORMS)
def test_folded_pruners_equal_the_training_ones_and_are_batch_independent(form, reads):
    cls, model = _model(form, reads)
    model.eval()
    served = model.for_inference()
    kinds = {type(m).__name__ for m in served.modules()}
    assert "_DwcAdaSparsePruner" not in kinds
    assert ("_DwcAdaSparseCellPruner" in kinds) == (reads == "domain_and_hidden")
    if reads == "domain":  # every cell's factors, with the pruned units' exact zeros
        table = served.h_pruner1_table.weight
        assert 0 < int((table == 0).sum()) < table.numel()
    for batch in (1, 7, 2000):
        inputs, _, _ = _inputs(model, batch, 10 + batch)
        if batch > 1:
            assert len(set((inputs["d"] * 2 + inputs["p"]).tolist())) > 1  # mixed cells
        with torch.no_grad():
            torch.testing.assert_close(served(inputs)["y"], model(inputs)["y"], rtol=1e-12,
                                       atol=0)
    inputs, _, _ = _inputs(model, 2000, 3)
    with torch.no_grad():
        whole = served(inputs)["y"]
        for row in (0, 1, 999, 1999):
            alone = served({k: v[row:row + 1] for k, v in inputs.items()})["y"]
            torch.testing.assert_close(alone, whole[row:row + 1], rtol=1e-12, atol=0)


def test_a_pruner_whose_condition_reads_more_than_the_cell_is_not_tabulated():
    text = SPEC.replace("concat(d, p)", "concat(d, p, a)").format(options="dropout = 0.0")
    _, train, inference, _ = optimize(check_source(source_of(text)), level=2)
    assert not any(isinstance(op, ScenarioPruner) for op in inference.ops)
    assert sum(isinstance(op, AdaSparsePruner) for op in inference.ops) == 3


COST_SPEC = """
model ada_cost
feature x : numeric(width = {d_x})
feature domain : categorical(vocab = {cells}, dim = {d_z}) scenario
scenarios domain
condition e = concat(domain)
h = adasparse(x, {widths}, by = e, reads = {reads})
output y = sigmoid(linear(h, 1)) loss = bce
"""


@pytest.mark.parametrize("reads", ["domain", "domain_and_hidden"])
@pytest.mark.parametrize(("d_x", "d_z", "widths"), [
    (96, 16, [256, 128, 64, 32, 16, 8]),  # the public Ali-CCP script's dims and embeddings
    (11, 7, [9, 7]),
])
def test_costs_follow_the_closed_forms(reads, d_x, d_z, widths):
    """Training: sum_l (d_z [+ n_l]) n_l for the pruners (n_0 = d_x) + (d_z + d_x) h_1
    + sum_{l>=2} h_{l-1} h_l + sum_l 3 h_l + h_L + 1; inference: each pruner's factors (or its
    z W_e) per cell instead of W_e, and each BN folded into its linear (2 h_l fewer). FLOPs:
    twice the multiply-adds, plus the element-wise ops (per pruner its multiply, per layer BN's
    4 (training only) and the ReLU's 1 per unit, the sigmoid head)."""
    cells, hidden = 5, reads == "domain_and_hidden"
    text = COST_SPEC.format(d_x=d_x, d_z=d_z, widths=widths, cells=cells, reads=reads)
    _, train, inference, _ = optimize(check_source(source_of(text)), level=2)
    n = [d_x, *widths]
    pruners = sum((d_z + (k if hidden else 0)) * k for k in n)
    chain = sum(a * b for a, b in zip(widths, widths[1:], strict=False))  # sum_{l>=2} h_{l-1} h_l
    backbone = (d_z + d_x) * widths[0] + chain + 3 * sum(widths) + widths[-1] + 1

    def cost(graph, metric):
        return sum(getattr(c.cost, metric) for c in explain(graph) if c.name in ("h", "y"))

    assert cost(train, "params") == pruners + backbone
    served = sum(cells * k + (k * k if hidden else 0) for k in n)
    folded = 2 * sum(widths)  # fold-batch-norm: each BN's scale and shift are in its linear
    assert cost(inference, "params") == served + backbone - folded
    macs = pruners + (d_z + d_x) * widths[0] + chain + widths[-1]
    elementwise = sum(n) + 5 * sum(widths) + 1
    assert cost(train, "flops_per_sample") == 2 * macs + elementwise
    served_macs = macs - pruners + (sum(k * k for k in n) if hidden else 0)
    assert cost(inference, "flops_per_sample") == 2 * served_macs + elementwise - 4 * sum(widths)


_HEAD = """model m
feature a : categorical(vocab = 100, dim = 8)
feature d : categorical(vocab = 4, dim = 4) scenario
scenarios d
condition e = concat(d)
"""
_OUT = "output y = sigmoid(linear(h, 1)) loss = bce\n"


@pytest.mark.parametrize(("options", "code", "message", "label"), [
    ("eps = 2.5", "DW324", "eps = 2.5 must lie in (0, beta = 2) for pruner = fusion",
     "prunes every unit"),
    ("pruner = binarization, eps = 1.0", "DW324", "(0, 1 (sigmoid's range))", "prunes every unit"),
    ("pruner = scaling, beta = 0.005", "DW324", "eps = 0.01 must lie in (0, beta = 0.005)",
     "prunes every unit"),
    ("eps = 0", "DW324", "eps = 0 must lie", "prunes nothing"),
    ("beta = 0", "DW324", "'beta' of fusion must be > 0", "every factor would be 0"),
    ("pruner = binarization, beta = 3.0", "DW326", "'beta' has no effect with pruner = "
     "binarization", "binarization does not read it"),
    ("pruner = scaling, alpha_step = 0.01", "DW326", "'alpha_step' has no effect with pruner = "
     "scaling", "scaling does not read it"),
    ("sparsity = 0.3", "DW326", "'sparsity' has no effect without 'sparsity_weight'",
     "the regulariser is off"),
])
def test_misused_options_are_coded_errors(options, code, message, label):
    from tests.conftest import diagnostics_of

    text = _HEAD + f"h = adasparse(a, [8], by = e, {options})\n" + _OUT
    (diagnostic,) = diagnostics_of(text)
    assert diagnostic.code == code and message in diagnostic.message and diagnostic.help
    if label is not None:
        assert diagnostic.primary.message == label


def test_scaling_with_a_small_beta_is_fine_when_eps_is_below_it():
    from tests.conftest import diagnostics_of

    assert diagnostics_of(_HEAD + "h = adasparse(a, [8], by = e, pruner = scaling, beta = 0.5, "
                          "eps = 0.1)\n" + _OUT) == []


@pytest.mark.parametrize("by", ["self", "concat(self, e)"])
def test_by_names_the_domain_condition_not_self(by):
    from tests.conftest import diagnostics_of

    (diagnostic,) = diagnostics_of(_HEAD + f"h = adasparse(a, [8], by = {by})\n" + _OUT)
    assert diagnostic.code == "DW325" and "reads = domain_and_hidden" in diagnostic.help


LINT_CASES = {
    # code -> (failing spec, (line, column) of the finding, passing spec)
    "DW518": (_HEAD.replace("concat(d)", "concat(d, a)") + "h = adasparse(a, [8], by = e)\n"
              + _OUT, (6, 28), _HEAD + "h = adasparse(a, [8], by = e)\n" + _OUT),
    "DW519": (_HEAD + "h = adasparse(a, [8], by = e, reads = domain_and_hidden)\n" + _OUT,
              (6, 31), _HEAD + "h = adasparse(a, [8], by = e)\n" + _OUT),
}
"""AdaSparse's lint rules, run by tests/lint/test_rules.py."""


def test_lint_messages_give_the_costs():
    from dwc.lint import LintConfig, lint_source
    from dwc.source import SourceFile

    found = {d.code: d for d in lint_source(SourceFile("m.dw", LINT_CASES["DW518"][0]),
                                            LintConfig(select={"DW518"}))}
    assert found["DW518"].message == (
        "the pruners of 'h' read 'a', which is not a scenario feature: every sample gets its own "
        f"sparse structure and serving scores every pruner for every sample ({2 * 12 * 16 + 16:,}"
        " FLOPs)")
    found = {d.code: d for d in lint_source(SourceFile("m.dw", LINT_CASES["DW519"][0]),
                                            LintConfig(select={"DW519"}))}
    assert "with reads = domain)" in found["DW519"].help
