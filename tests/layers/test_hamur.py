"""HAMUR (dwc/layers/hamur/): the runtime helpers against the equations, the public port's quirks
recorded with port-style references (all-ones factors, whole-batch norm), the generated module
against a clean-room reference (float64, weights copied), the closed-form costs, diagnostics and
lint rules. The inference folds are in test_hamur_folds.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dwc.backends.torch.inline import helper_source
from dwc.cost import explain
from dwc.driver import check_source, optimize
from dwc.layers.hamur.op import FoldedHamurHyperNetwork, HamurAdapter, HamurHyperNetwork
from dwc.layers.hamur.runtime import _dwc_hamur_map, _DwcHamurAdapter, _DwcHamurHyperNetwork
from dwc.source import SourceFile
from tests.conftest import compile_text, diagnostics_of

EPS = 1e-5


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- the equations, clean-room

def materialised_map(x, u, core, v, bias):
    """x (U H V) + b with the per-sample N x M matrix formed, as the public code does
    (einsum 'mi,bij,jn->bmn')."""
    weight = torch.einsum("nk,bkl,lm->bnm", u, core, v)
    return torch.einsum("bn,bnm->bm", x, weight) + bias


def domain_norm(u, domain, weight, bias, mean=None, var=None):
    """gamma (u - mu_d) / sqrt(var_d + eps) + beta; batch statistics of domain d's samples
    (biased variance) when `mean` is None, else the given per-domain statistics."""
    out = torch.empty_like(u)
    for d in domain.unique().tolist():
        rows = domain == d
        part = u[rows]
        mu, sigma2 = ((part.mean(0), part.var(0, unbiased=False)) if mean is None
                      else (mean[d], var[d]))
        out[rows] = weight * (part - mu) / torch.sqrt(sigma2 + EPS) + bias
    return out


def hypernet(z, layers, training):
    """(Linear -> BatchNorm -> ReLU) per layer; `layers` are (W (out x in), b, gamma, beta,
    running mean, running var)."""
    for w, b, gamma, beta, mean, var in layers:
        y = z @ w.T + b
        if training:
            mean, var = y.mean(0), y.var(0, unbiased=False)
        z = torch.relu(gamma * (y - mean) / torch.sqrt(var + EPS) + beta)
    return z


def cell(h, core, p, domain, training):
    """h + DN_d(s W_up + b2), s = sigmoid(h W_down + b1), both maps materialised per sample."""
    s = torch.sigmoid(materialised_map(h, p["u_down"], core, p["v_down"], p["bias_down"]))
    u = materialised_map(s, p["u_up"], core, p["v_up"], p["bias_up"])
    stats = {} if training else {"mean": p["running_mean"], "var": p["running_var"]}
    return h + domain_norm(u, domain, p["norm_weight"], p["norm_bias"], **stats)


def random_cell(n, m, k, domains, g):
    p = {"u_down": (n, k), "v_down": (k, m), "bias_down": (m,), "u_up": (m, k), "v_up": (k, n),
         "bias_up": (n,), "norm_weight": (n,), "norm_bias": (n,), "running_mean": (domains, n)}
    p = {name: torch.randn(*shape, generator=g, dtype=torch.float64) * 0.5
         for name, shape in p.items()}
    p["running_var"] = torch.rand(domains, n, generator=g, dtype=torch.float64) + 0.5
    return p


def random_hypernet(widths, g):
    layers = []
    for a, b in zip(widths, widths[1:], strict=False):
        r = [torch.randn(*shape, generator=g, dtype=torch.float64) * 0.4
             for shape in ((b, a), (b,), (b,), (b,), (b,))]
        layers.append((r[0], r[1], 1 + r[2], r[3], r[4],
                       torch.rand(b, generator=g, dtype=torch.float64) + 0.5))
    return layers


def copy_cell(module, p):
    with torch.no_grad():
        for name, value in p.items():
            getattr(module, name).copy_(value)


def copy_hypernet(module, layers):
    with torch.no_grad():
        for linear, norm, (w, b, gamma, beta, mean, var) in zip(
                module.linears, module.norms, layers, strict=True):
            linear.weight.copy_(w)
            linear.bias.copy_(b)
            norm.weight.copy_(gamma)
            norm.bias.copy_(beta)
            norm.running_mean.copy_(mean)
            norm.running_var.copy_(var)


# ---------------------------------------------------------------- runtime helpers

def test_factored_map_equals_the_materialised_one():
    """((x U) H) V + b, applied factor by factor, is x (U H V) + b with W formed per sample."""
    g = _gen(0)
    x, u, v, b = (torch.randn(*s, generator=g, dtype=torch.float64)
                  for s in ((9, 7), (7, 5), (5, 3), (3,)))
    core = torch.randn(9, 5, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(_dwc_hamur_map(x, u, core, v, b), materialised_map(x, u, core, v, b))


@pytest.mark.parametrize("training", [True, False])
def test_adapter_cell_is_the_equation(training):
    """Training: each domain's samples normalised by that domain's batch statistics; eval: by
    its running statistics (batch-independent)."""
    g = _gen(1)
    n, m, k, domains = 6, 3, 4, 3
    layer = _DwcHamurAdapter(n, m, rank=k, domains=domains).double().train(training)
    p = random_cell(n, m, k, domains, g)
    copy_cell(layer, p)
    h = torch.randn(20, n, generator=g, dtype=torch.float64)
    core = torch.rand(20, k, k, generator=g, dtype=torch.float64)
    domain = torch.arange(20) % domains
    torch.testing.assert_close(layer(h, core, domain), cell(h, core, p, domain, training))


def test_domain_norm_running_statistics_follow_each_domain():
    """Momentum 0.1 per domain present; unbiased variance, not updated from a single sample."""
    layer = _DwcHamurAdapter(2, 2, rank=2, domains=3).double().train()
    u = torch.tensor([[1.0, 2.0], [3.0, -2.0], [5.0, 0.0], [7.0, 1.0]], dtype=torch.float64)
    domain = torch.tensor([0, 0, 0, 2])
    out = layer.domain_norm(u, domain)
    part = u[:3]
    torch.testing.assert_close(layer.running_mean[0], 0.1 * part.mean(0))
    torch.testing.assert_close(layer.running_var[0], 0.9 + 0.1 * part.var(0, unbiased=True))
    torch.testing.assert_close(layer.running_mean[1], torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(layer.running_mean[2], 0.1 * u[3])
    torch.testing.assert_close(layer.running_var[2], torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(out[3], torch.zeros(2, dtype=torch.float64))  # its own mean


def test_hypernetwork_fold_merges_each_batch_norm():
    g = _gen(2)
    net = _DwcHamurHyperNetwork(5, [4], rank=3).double()
    layers = random_hypernet([5, 4, 9], g)
    copy_hypernet(net, layers)
    folded = _DwcHamurHyperNetwork(5, [4], rank=3, norm=False).double()
    with torch.no_grad():
        for i, linear in enumerate(folded.linears):
            linear.weight.copy_(net.folded(i)[0])
            linear.bias.copy_(net.folded(i)[1])
    z = torch.randn(11, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(net.eval()(z), hypernet(z, layers, training=False))
    torch.testing.assert_close(folded(z), net(z))
    torch.testing.assert_close(net.train()(z), hypernet(z, layers, training=True))
    assert (net(z) >= 0).all()  # H >= 0: ReLU is the last step


def test_helpers_inline_without_their_imports():
    code, needs = helper_source("dwc.layers.hamur.runtime")
    assert code.startswith("class _DwcHamurHyperNetwork(nn.Module):") and "import" not in code
    assert needs == ()
    code, needs = helper_source("dwc.layers.hamur.runtime_scenario")
    assert code.startswith("class _DwcScenarioHamurAdapter(nn.Module):")
    assert needs == ("dwc.backends.torch.helpers.per_domain",)


# ---------------------------------------------------------------- the port's quirks

class PortStyleCell(nn.Module):
    """The public code's adapter cell: U = V = 1 and b = 0 at the start, W materialised per sample,
    the norm over the whole batch with the unbiased variance, in training and at inference."""

    def __init__(self, n, m, k):
        super().__init__()
        self.u1, self.v1 = nn.Parameter(torch.ones(n, k)), nn.Parameter(torch.ones(k, m))
        self.u2, self.v2 = nn.Parameter(torch.ones(m, k)), nn.Parameter(torch.ones(k, n))
        self.b1, self.b2 = nn.Parameter(torch.zeros(m)), nn.Parameter(torch.zeros(n))
        self.gamma, self.beta = nn.Parameter(torch.ones(n)), nn.Parameter(torch.zeros(n))

    def bottleneck(self, h, core):
        return torch.sigmoid(materialised_map(h, self.u1, core, self.v1, self.b1))

    def forward(self, h, core):
        u = materialised_map(self.bottleneck(h, core), self.u2, core, self.v2, self.b2)
        norm = (u - u.mean(0)) / torch.sqrt(u.var(0) + EPS)
        return h + self.gamma * norm + self.beta


def _adam_steps(module, parameters, step_fn, steps=5):
    optimizer = torch.optim.Adam(parameters, lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        step_fn(module).backward()
        optimizer.step()


def test_all_ones_factors_keep_the_bottleneck_units_identical_copies():
    """Read from the public code, confirmed here: with U = V = 1 every bottleneck unit gets the
    same activation and the same gradient, so Adam keeps them copies (effective width 1); dwc's
    random factors give distinct units that stay distinct."""
    g = _gen(3)
    n, m, k, batch = 6, 4, 3, 16
    h = torch.randn(batch, n, generator=g, dtype=torch.float64)
    core = torch.rand(batch, k, k, generator=g, dtype=torch.float64)
    target = torch.randn(batch, n, generator=g, dtype=torch.float64)
    domain = torch.zeros(batch, dtype=torch.long)

    port = PortStyleCell(n, m, k).double()
    _adam_steps(port, port.parameters(), lambda c: ((c(h, core) - target) ** 2).mean())
    s = port.bottleneck(h, core)
    assert torch.equal(s, s[:, :1].expand_as(s))  # every unit the same, still
    assert torch.equal(port.v1, port.v1[:, :1].expand_as(port.v1))
    assert torch.equal(port.u2, port.u2[:1].expand_as(port.u2))

    torch.manual_seed(0)
    mine = _DwcHamurAdapter(n, m, rank=k, domains=1).double()
    _adam_steps(mine, mine.parameters(), lambda c: ((c(h, core, domain) - target) ** 2).mean())
    s = torch.sigmoid(_dwc_hamur_map(h, mine.u_down, core, mine.v_down, mine.bias_down))
    assert (s - s[:, :1]).abs().amax(0)[1:].min() > 1e-3  # every unit differs from the first


@pytest.mark.filterwarnings("ignore:var\\(\\)")  # the variance of one sample: the point
def test_whole_batch_norm_is_nan_at_batch_one_and_dwc_is_batch_independent():
    """The public code's norm takes the unbiased variance of the batch even at inference: one
    sample gives NaN. dwc's eval norm uses each domain's running statistics."""
    g = _gen(4)
    h = torch.randn(7, 6, generator=g, dtype=torch.float64)
    core = torch.rand(7, 3, 3, generator=g, dtype=torch.float64)
    port = PortStyleCell(6, 4, 3).double().eval()
    with torch.no_grad():
        assert torch.isnan(port(h[:1], core[:1])).all()
        alone_port = port(h[:2], core[:2])[:1]
        assert not torch.allclose(alone_port, port(h, core)[:1])  # depends on the batch
    layer = _DwcHamurAdapter(6, 4, rank=3, domains=2).double()
    domain = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    layer.train()(h, core, domain)  # running statistics off their start
    layer.eval()
    with torch.no_grad():
        full = layer(h, core, domain)
        for i in range(7):
            alone = layer(h[i:i + 1], core[i:i + 1], domain[i:i + 1])
            assert torch.isfinite(alone).all()
            torch.testing.assert_close(alone, full[i:i + 1])


# ---------------------------------------------------------------- the generated module

REFERENCE_SPEC = """
model hamur_ref
feature a : categorical(vocab = 30, dim = 6)
feature b : categorical(vocab = 20, dim = 4)
feature d : categorical(vocab = 3, dim = 2) scenario
feature p : categorical(vocab = 2, dim = 2) scenario
scenarios d * p
condition z = concat(a, b, d)
h = concat(a, b)
core = hamur_hypernet(by = z, rank = 5, hidden = [7])
a1 = hamur(h, by = core, domain = d, bottleneck = 4)
a2 = hamur(mlp(a1, [8]), by = core, domain = scenario, bottleneck = 3)
output y = identity(linear(a2, 1)) loss = mse
"""


@pytest.mark.parametrize("training", [False, True])
def test_generated_module_matches_the_clean_room_reference(training):
    """Two cells sharing one hyper-network (its H in both maps of both cells), float64, weights
    copied: eval (running statistics) and training (batch statistics per domain)."""
    _, cls = compile_text(REFERENCE_SPEC)
    model = cls().double()
    g = _gen(5)
    layers = random_hypernet([12, 7, 25], g)
    p1, p2 = random_cell(10, 4, 5, 3, g), random_cell(8, 3, 5, 6, g)
    copy_hypernet(model.core_hypernet, layers)
    copy_cell(model.a1_adapter, p1)
    copy_cell(model.a2_adapter, p2)
    model.train(training)
    inputs = cls.example_inputs(50, _gen(6))
    d, cells = inputs["d"], inputs["d"] * 2 + inputs["p"]
    with torch.no_grad():
        h = torch.cat([model.a_embedding(inputs["a"]), model.b_embedding(inputs["b"])], dim=1)
        z = torch.cat([h, model.d_embedding(d)], dim=1)
        core = hypernet(z, layers, training).reshape(-1, 5, 5)
        a1 = cell(h, core, p1, d, training)
        expected = model.y(cell(torch.relu(model.a2_fc0(a1)), core, p2, cells, training))
        actual = model(inputs)["y"]
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-12)


def test_every_parameter_gets_a_gradient():
    """The loss reaches the hyper-network, both maps' factors and biases, and the norm."""
    _, cls = compile_text(REFERENCE_SPEC)
    torch.manual_seed(0)
    model = cls().double().train()
    inputs = cls.example_inputs(32, _gen(7))
    model.loss(inputs, cls.example_targets(32, _gen(8))).backward()
    for owner in (model.core_hypernet, model.a1_adapter, model.a2_adapter):
        for name, p in owner.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_a_cell_with_its_own_hypernetwork():
    """`by = z` gives the cell a hyper-network of its own (named after the cell)."""
    text = REFERENCE_SPEC.replace("a2 = hamur(mlp(a1, [8]), by = core,",
                                  "a2 = hamur(mlp(a1, [8]), by = z, rank = 2, hidden = [3],")
    result, cls = compile_text(text)
    hypers = [op for op in result.model_graph.ops if isinstance(op, HamurHyperNetwork)]
    assert [(op.module, op.rank, op.hidden) for op in hypers] == [
        ("core_hypernet", 5, (7,)), ("a2_hypernet", 2, (3,))]
    model = cls()
    assert model.a2_hypernet.linears[1].out_features == 4
    assert model(cls.example_inputs(3))["y"].shape == (3, 1)


# ---------------------------------------------------------------- costs

ALI_CCP = """
model ali
feature u : categorical(vocab = 100, dim = 16)
feature i : categorical(vocab = 100, dim = 16)
feature d : categorical(vocab = 3, dim = 16) scenario
scenarios d
condition z = concat(u, i, d)
h6 = mlp(concat(u, i, d), [64])
core = hamur_hypernet(by = z, rank = 65, hidden = [64])
a1 = hamur(h6, by = core, domain = scenario)
h7 = mlp(a1, [64])
a2 = hamur(h7, by = core, domain = scenario)
output y = sigmoid(linear(a2, 1)) loss = bce
"""


def _costs(text: str):
    model, _, inference, _ = optimize(check_source(SourceFile("c.dw", text)), level=2,
                                      verify_each=True)
    return ({c.name: c.cost for c in explain(model)},
            {c.name: c.cost for c in explain(inference)}, inference)


def test_costs_follow_the_closed_forms_at_ali_ccp_sizes():
    """Hyper-network (hidden 64) 64 d_x + 192 + 67 K², each cell 2K(N + M) + M + 3N (at
    inference 2K(N + M) + M + N + 2ND, the domain norm folded); at Ali-CCP
    (K = 65, N = 64, M = 32): 64 d_x + 283,267 and 25,408 for both cells. The factored cell costs
    4(NK + K² + KM) FLOPs for its maps (20,930 multiply-adds), run once, not once per domain."""
    train, inference, _ = _costs(ALI_CCP)
    dx, k, n, m = 48, 65, 64, 32
    assert train["core"].params == 64 * dx + 192 + 67 * k * k == 64 * dx + 283_267
    assert train["a1"].params + train["a2"].params == 2 * (2 * k * (n + m) + m + 3 * n) == 25_408
    assert train["core"].generated_per_sample == k * k
    assert train["core"].flops_per_sample == 2 * (dx * 64 + 64 * k * k) + 5 * (64 + k * k)
    assert train["core"].generator_flops_per_sample == train["core"].flops_per_sample
    maps = 4 * (n * k + k * k + k * m)
    assert maps == 2 * 20_930
    assert train["a1"].flops_per_sample == maps + m + 5 * n
    # inference: the batch norms merged into the linears (BN fold); each cell's domain norm one
    # scale and shift per domain (D = 3), its maps unchanged
    assert inference["core"].params == 64 * dx + 64 + 65 * k * k
    assert inference["core"].flops_per_sample == 2 * (dx * 64 + 64 * k * k) + 64 + k * k
    assert inference["a1"].params == 2 * k * (n + m) + m + n + 2 * n * 3
    assert inference["a1"].flops_per_sample == maps + m + 3 * n


@pytest.mark.parametrize(("k", "folded"), [(8, True), (2, False)])
def test_a_scenario_only_core_folds_per_cell_when_that_is_cheaper(k, folded):
    """H a per-cell table; each cell's maps multiplied out (2 N M + M + N per cell, the norm
    folded in) when N M < N K + K² + K M, else the factors kept, reading the table."""
    text = ("model s\nfeature a : categorical(vocab = 30, dim = 12)\n"
            "feature d : categorical(vocab = 3, dim = 2) scenario\nscenarios d\n"
            "condition z = concat(d)\n"
            f"core = hamur_hypernet(by = z, rank = {k}, hidden = [5])\n"
            "h = hamur(a, by = core, domain = scenario, bottleneck = 4)\n"
            "output y = sigmoid(linear(h, 1)) loss = bce\n")
    _, costs, inference = _costs(text)
    n, m, cells = 12, 4, 3
    assert (n * m < n * k + k * k + k * m) is folded
    kinds = [op.kind for op in inference.ops]
    if folded:
        assert "scenario_table" not in kinds and "hamur_hypernet" not in kinds
        assert costs["h"].params == cells * (2 * n * m + m + n)
        assert costs["h"].flops_per_sample == 4 * n * m + m + n
    else:
        assert costs["core"].params == cells * k * k and "scenario_table" in kinds
        # the factors kept; the domain norm one scale and shift per domain (3 domains)
        assert costs["h"].params == 2 * k * (n + m) + m + n + 2 * n * 3
    assert costs["h"].generated_per_sample == 0


def test_the_full_model_in_the_docs_checks_and_costs_what_it_says():
    """docs/models.md's seven-layer Ali-CCP model: it checks, its hyper-network and cells have the
    closed-form parameters, and lint reports its K² >= N M on both cells (DW521)."""
    import re

    from dwc.lint import LintConfig, lint_source
    from tests.conftest import ROOT

    docs = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    text = re.search(r"```\n(model hamur_ali_ccp\n.*?)```", docs, re.S).group(1)
    train, _, _ = _costs(text)
    assert train["core"].params == 64 * 48 + 283_267
    assert train["a6"].params + train["a7"].params == 25_408
    found = lint_source(SourceFile("ali.dw", text), LintConfig())
    assert [d.code for d in found] == ["DW521", "DW521"]


# ---------------------------------------------------------------- diagnostics and lint

HEADER = """model m
feature a : categorical(vocab = 10, dim = 8)
feature d : categorical(vocab = 3, dim = 2) scenario
scenarios d
condition z = concat(a, d)
core = hamur_hypernet(by = z, rank = 4)
x = linear(a, 8)
"""
OUT = "output y = sigmoid(linear(h, 1)) loss = bce\n"


@pytest.mark.parametrize(("line", "code", "label"), [
    ("h = hamur(a, by = x, domain = d)\n", "DW328", "a network value"),
    ("c2 = hamur_hypernet(by = self, rank = 2)\nh = hamur(a, by = c2, domain = d)\n", "DW328",
     "no layer input here"),
    ("h = hamur(a, by = core, domain = d, rank = 3)\n", "DW329", "set on the cell"),
    ("h = hamur(a, by = core, domain = d, hidden = [4])\n", "DW329", "set on the cell"),
    ("h = hamur(a, by = z, domain = d)\n", "DW302", "missing argument"),
    ("h = hamur(a, by = a, domain = d, rank = 2)\n", "DW309", "a feature"),
    ("h = hamur(a, by = core, domain = a)\n", "DW307", "not a scenario id"),
    ("e = experts(a, 2, [4])\nh = hamur(e, by = core, domain = d)\n", "DW307",
     "is experts[2; 4]"),
])
def test_misuse_is_a_coded_diagnostic(line, code, label):
    (diagnostic,) = diagnostics_of(HEADER + line + OUT)
    assert diagnostic.code == code and diagnostic.primary.message == label
    assert diagnostic.help


def test_the_valid_forms_check():
    assert diagnostics_of(HEADER + "h = hamur(a, by = core, domain = d)\n" + OUT) == []
    assert diagnostics_of(HEADER + "h = hamur(a, by = z, domain = scenario, rank = 2, "
                          "bottleneck = 4, hidden = [3])\n" + OUT) == []


def test_ops_verify_their_shapes():
    from dwc.ir.ops import Slot, VerificationError
    from dwc.ir.types import IdsType, VecType

    gen = HamurHyperNetwork(result="g", inputs=("z",), type=VecType(9), in_features=4,
                            hidden=(3,), rank=3, slots=(Slot("core", 0, (3, 3)),))
    gen.verify((VecType(4),), {})
    assert gen.retyped(FoldedHamurHyperNetwork).params() == 4 * 3 + 3 + 3 * 9 + 9
    cell_op = HamurAdapter(result="c", inputs=("h", "g", "d"), type=VecType(5), bottleneck=2,
                           rank=3, domains=2, core=gen.core)
    cell_op.verify((VecType(5), VecType(9), IdsType(2)), {"g": gen})
    for op, ins in ((gen, (VecType(5),)), (cell_op, (VecType(4), VecType(9), IdsType(2))),
                    (cell_op, (VecType(5), VecType(9), IdsType(3)))):
        with pytest.raises(VerificationError):
            op.verify(ins, {"g": gen})


_LINT = ("model m\nfeature a : categorical(vocab = 50, dim = 16)\n"
         "feature s : categorical(vocab = 4, dim = 4) scenario\nscenarios s\n"
         "condition z = concat(a, s)\nh = mlp(a, [16])\n")
_LINT_OUT = "output y = sigmoid(linear(c, 1)) loss = bce\n"

# code -> (failing spec, (line, column) of the finding, passing spec): tests/lint/test_rules.py
LINT_CASES = {
    "DW520": (_LINT + "c = hamur(h, by = z, domain = scenario, rank = 8, bottleneck = 8)\n"
              + _LINT_OUT, (7, 5),
              _LINT + "c = hamur(h, by = z, domain = scenario, rank = 6, bottleneck = 8)\n"
              + _LINT_OUT),
    "DW521": (_LINT + "k = hamur_hypernet(by = z, rank = 12)\n"
              "c = hamur(h, by = k, domain = scenario, bottleneck = 8)\n" + _LINT_OUT, (8, 5),
              _LINT + "k = hamur_hypernet(by = z, rank = 6)\n"
              "c = hamur(h, by = k, domain = scenario, bottleneck = 8)\n" + _LINT_OUT),
}


def test_lint_rules_name_the_rank_and_do_not_double_report():
    from dwc.lint import LintConfig, lint_source

    text, _, _ = LINT_CASES["DW521"]
    found = lint_source(SourceFile("m.dw", text), LintConfig())
    (finding,) = [d for d in found if d.code in ("DW520", "DW521")]
    assert finding.code == "DW521" and "at most 11" in finding.help
    assert [label.message for label in finding.secondary] == ["rank 12 set here"]
