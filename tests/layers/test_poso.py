"""POSO (docs/models.md, 'POSO'): the runtime gates against the equations, the generated module
against a clean-room reference written from the equations (float64, weights copied, 1e-6
relative), the parameter closed forms, the inference folds (folded == unfolded at B = 1, 7, 2000
on mixed user groups), the diagnostics and the lint rules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dwc.cost import explain
from dwc.layers.poso.runtime import _DwcExpertGates
from tests.conftest import ROOT, compile_example, compile_text, diagnostics_of, source_of

EXAMPLE = ROOT / "examples" / "poso.dw"
CELLS = 2 * 4  # new_user x activity


def test_expert_gates_scale_each_expert_by_its_own_gate_on_the_code():
    """e_k * gamma * sigmoid(relu(z W1_k + b1_k) W2_k + b2_k), per expert k and element."""
    gates = _DwcExpertGates(n_in=2, hidden=3, count=2, width=2, gamma=2.0)
    torch.manual_seed(3)
    for p in gates.parameters():
        nn.init.normal_(p)
    z = torch.tensor([[1.0, -2.0], [0.5, 3.0], [0.0, 1.0]])
    experts = torch.arange(12, dtype=torch.float32).reshape(3, 2, 2) / 5
    w1, b1, w2, b2 = gates.hidden_weight, gates.hidden_bias, gates.out_weight, gates.out_bias
    expected = torch.stack([experts[:, k] * 2 * torch.sigmoid(torch.relu(z @ w1[k] + b1[k])
                                                                @ w2[k] + b2[k])
                            for k in range(2)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(gates(experts, z), expected)
        values = gates.gates(z)
        assert 0 < values.min() and values.max() < 2  # the range (0, gamma)


# --- the clean-room reference, from the equations ----------------------------------------------

class RefGate(nn.Module):
    """g(pc) = C sigmoid(relu(pc W1 + b1) W2 + b2)."""

    def __init__(self, p, n, hidden, c):
        super().__init__()
        self.fc1, self.fc2, self.c = nn.Linear(p, hidden), nn.Linear(hidden, n), c

    def forward(self, pc):
        return self.c * torch.sigmoid(self.fc2(torch.relu(self.fc1(pc))))


class RefPosoMlp(nn.Module):
    """POSO-MLP: h_l = g_l(pc) * relu(h_{l-1} W_l + b_l), every layer its own gate."""

    def __init__(self, n_in, widths, p, hidden=32, c=2.0):
        super().__init__()
        dims = [n_in, *widths]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:], strict=False))
        self.gates = nn.ModuleList(RefGate(p, n, hidden, c) for n in widths)

    def forward(self, x, pc):
        for linear, gate in zip(self.linears, self.gates, strict=True):
            x = gate(pc) * torch.relu(linear(x))
        return x


class RefPosoMmoe(nn.Module):
    """POSO(MMoE): e_k = g_k(pc) * Expert_k(x); z_t = sum_k softmax(x Wt_t + bt_t)_k e_k."""

    def __init__(self, n_in, count, widths, p, tasks, hidden=32, c=2.0):
        super().__init__()
        dims = [n_in, *widths]
        self.experts = nn.ModuleList(
            nn.Sequential(*[m for a, b in zip(dims, dims[1:], strict=False)
                            for m in (nn.Linear(a, b), nn.ReLU())]) for _ in range(count))
        self.gates = nn.ModuleList(RefGate(p, widths[-1], hidden, c) for _ in range(count))
        self.task_gates = nn.ModuleList(nn.Linear(n_in, count) for _ in range(tasks))

    def forward(self, x, pc):
        e = torch.stack([g(pc) * f(x) for f, g in zip(self.experts, self.gates, strict=True)], 1)
        return [torch.einsum("be,beh->bh", torch.softmax(t(x), dim=1), e) for t in self.task_gates]


def _copy(linear: nn.Linear, weight_in_out, bias):
    linear.weight.copy_(weight_in_out.T)
    linear.bias.copy_(bias)


def _reference_of(model):
    """The example's towers as references carrying the dwc module's weights."""
    mmoe = RefPosoMmoe(40, 4, [32, 16], 8, tasks=2).double()
    tower = RefPosoMlp(16, [16, 8], 8).double()
    with torch.no_grad():
        for k in range(4):
            for layer in range(2):
                _copy(mmoe.experts[k][2 * layer], model.e_experts.weights[layer][k],
                      model.e_experts.biases[layer][k])
            g = model.e_gates
            _copy(mmoe.gates[k].fc1, g.hidden_weight[k], g.hidden_bias[k])
            _copy(mmoe.gates[k].fc2, g.out_weight[k], g.out_bias[k])
        for t, mix in enumerate((model.click_gate, model.like_gate)):
            mmoe.task_gates[t].load_state_dict(mix.gate.state_dict())
        for i in range(2):
            tower.linears[i].load_state_dict(getattr(model, f"click_fc{i}").state_dict())
            tower.gates[i].fc1.load_state_dict(getattr(model, f"click_gate{i}").hidden.state_dict())
            tower.gates[i].fc2.load_state_dict(getattr(model, f"click_gate{i}").out.state_dict())
    return mmoe, tower


def _example_reference(model, mmoe, tower, inputs):
    """ctr and ltr of the example: the per-user-group head on the POSO-MLP tower over task 1's
    mixture, a plain tower on task 2's."""
    x = torch.cat([model.user_id_embedding(inputs["user_id"]),
                   model.item_id_embedding(inputs["item_id"]),
                   model.category_embedding(inputs["category"])], dim=1)
    pc = torch.cat([model.new_user_embedding(inputs["new_user"]),
                    model.activity_embedding(inputs["activity"])], dim=1)
    z_click, z_like = mmoe(x, pc)
    cell = inputs["new_user"] * 4 + inputs["activity"]
    h = tower(z_click, pc)
    ctr = (h.unsqueeze(1) @ model.ctr.weight[cell]).squeeze(1) + model.ctr.bias[cell]
    ltr = model.ltr(torch.relu(model.like_fc0(z_like)))
    return {"ctr": torch.sigmoid(ctr), "ltr": torch.sigmoid(ltr)}


def _perturbed(cls):
    torch.manual_seed(0)
    model = cls().double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def _inputs(cls, batch, seed):
    """Example inputs with mixed user groups, numerics in float64 (the models run in it)."""
    inputs = cls.example_inputs(batch, torch.Generator().manual_seed(seed))
    return {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}


def _close(actual, expected):
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-6, atol=0)


@pytest.mark.parametrize("batch", [1, 7, 2000])
def test_example_equals_the_reference_and_its_folds_equal_the_training_form(batch):
    """Training form == clean-room reference; the served form (user-group tables, the last
    gate multiplied into the per-group head) == both, on every user group mixed in one batch."""
    result, cls = compile_example(EXAMPLE)
    model = _perturbed(cls)
    served = model.for_inference()
    mmoe, tower = _reference_of(model)
    inputs = _inputs(cls, batch, batch)
    if batch == 2000:
        assert len(set((inputs["new_user"] * 4 + inputs["activity"]).tolist())) == CELLS
    with torch.no_grad():
        expected = _example_reference(model, mmoe, tower, inputs)
        _close(model(inputs), expected)
        _close(served(inputs), expected)


def test_example_folds_gates_into_tables_and_the_head():
    result, _ = compile_example(EXAMPLE)
    kinds = {op.result: type(op).__name__ for op in result.inference}
    assert kinds["e"] == "ScenarioExpertGates" and kinds["click.gated"] == "ScenarioGate"
    assert "click.gated.2" not in kinds and kinds["ctr.linear"] == "GatedIndexedLinear"
    assert not any(op.binding == "pc" for op in result.inference)  # the code's MLP never runs
    served = {op.result: op.params() for op in result.inference}
    assert served["e"] == CELLS * 4 * 16 and served["ctr.linear"] == CELLS * (8 + 1)


def test_served_outputs_do_not_depend_on_the_batch():
    _, cls = compile_example(EXAMPLE)
    served = _perturbed(cls).for_inference()
    inputs = cls.example_inputs(2000, torch.Generator().manual_seed(5))
    with torch.no_grad():
        whole = served(inputs)
        for i in (0, 999, 1999):
            alone = served({k: v[i:i + 1] for k, v in inputs.items()})
            for name in whole:
                torch.testing.assert_close(alone[name], whole[name][i:i + 1], rtol=1e-9, atol=0)


def test_gates_at_one_give_the_base_model_and_the_code_acts_only_through_them():
    """With every gate's last layer zero, g = C sigmoid(0) = 1: the model is the plain MMoE and
    MLP, and the personalisation code's embeddings get no gradient (pc reaches the prediction
    through the gates alone) while the gates' last layers do; with live gates pc's do too."""
    _, cls = compile_example(EXAMPLE)
    model = _perturbed(cls)
    with torch.no_grad():
        for gate in (model.click_gate0.out, model.click_gate1.out):
            gate.weight.zero_()
            gate.bias.zero_()
        model.e_gates.out_weight.zero_()
        model.e_gates.out_bias.zero_()
    mmoe, tower = _reference_of(model)
    for gate in (*mmoe.gates, *tower.gates):  # the base model: no gates at all
        gate.forward = lambda pc: torch.ones((), dtype=torch.float64)
    inputs = cls.example_inputs(64, torch.Generator().manual_seed(1))
    targets = {k: v.double() for k, v in cls.example_targets(64, torch.Generator()).items()}
    with torch.no_grad():
        _close(model(inputs), _example_reference(model, mmoe, tower, inputs))
    model.train().loss(inputs, targets).backward()
    assert model.new_user_embedding.weight.grad.abs().max() == 0
    assert model.e_gates.out_bias.grad.abs().max() > 0
    assert model.click_gate1.out.bias.grad.abs().max() > 0
    live = _perturbed(cls).train()
    live.loss(inputs, targets).backward()
    assert live.new_user_embedding.weight.grad.abs().max() > 0


# --- parameter counts: the closed forms ----------------------------------------------------------

def _fc(n_in, n_out, p, hidden=32):
    """POSO-FC: n_in n_out + n_out + (hidden p + hidden + hidden n_out + n_out)."""
    return n_in * n_out + n_out + hidden * p + hidden + hidden * n_out + n_out


def _mmoe_experts(d_x, count, widths, p, hidden=32):
    """E P_expert + E (hidden p + hidden + hidden d_e + d_e)."""
    dims = [d_x, *widths]
    expert = sum(a * b + b for a, b in zip(dims, dims[1:], strict=False))
    return count * expert + count * (hidden * p + hidden + hidden * widths[-1] + widths[-1])


BRIEF_SIZES = """model sizes
feature a : categorical(vocab = 50, dim = 24)
feature s : categorical(vocab = 3, dim = 4) scenario
feature age : numeric(width = 2) scenario
scenarios s
condition pc = concat(s, age)
h = poso(a, [64, 32], by = pc)
e = poso_experts(a, 4, [64, 32], by = pc)
t = mix(e, a)
output y = sigmoid(linear(h, 1)) loss = bce
output v = sigmoid(linear(t, 1)) loss = bce
"""


def _layer_params(graph, name):
    return next(c.cost.params for c in explain(graph) if c.name == name)


def test_parameter_counts_are_the_closed_forms():
    result, cls = compile_example(EXAMPLE)
    p, d_x = 8, 40
    assert _layer_params(result.model_graph, "e") == _mmoe_experts(d_x, 4, [32, 16], p) == 10_624
    mix = d_x * 4 + 4  # T (d_x E + E), one task gate per mix
    assert _layer_params(result.model_graph, "click") == mix + _fc(16, 16, p) + _fc(16, 8, p)
    # inference: the gates become per-group tables; the last one is multiplied into the head
    experts = _mmoe_experts(d_x, 4, [32, 16], p) - 4 * (32 * p + 32 + 32 * 16 + 16)
    assert _layer_params(result.inference, "e") == experts + CELLS * 4 * 16
    assert _layer_params(result.inference, "click") == mix + 16 * 16 + 16 + CELLS * 16 + 16 * 8 + 8
    assert sum(p.numel() for p in cls().parameters()) == sum(
        c.cost.params for c in explain(result.model_graph))
    sized, _ = compile_text(BRIEF_SIZES)  # the sizes of docs/models.md; pc = 4 + 2, continuous
    assert _layer_params(sized.model_graph, "h") == _fc(24, 64, 6) + _fc(64, 32, 6)
    assert _layer_params(sized.model_graph, "e") == _mmoe_experts(24, 4, [64, 32], 6)
    assert _layer_params(sized.inference, "e") == _mmoe_experts(24, 4, [64, 32], 6)
    flops = {c.name: c.cost.flops_per_sample for c in explain(sized.graph)}
    # per POSO-FC 2 [n_in n_out + 32 p + 32 n] plus the n gating multiplies
    assert flops["h"] == sum(2 * (a * b + 32 * 6 + 32 * b) + 2 * b for a, b in ((24, 64), (64, 32)))


@pytest.mark.parametrize("batch", [1, 7, 2000])
def test_a_continuous_code_keeps_its_gates_with_their_first_layers_as_one_gemm(batch):
    """pc reads a numeric feature: no table; the POSO-MLP gates' first layers are fused (one
    GEMM), the expert gates run as they train. Served == training form."""
    result, cls = compile_text(BRIEF_SIZES)
    kinds = [type(op).__name__ for op in result.inference]
    assert "GateHidden" in kinds and "ExpertGates" in kinds
    assert "ScenarioGate" not in kinds and "ScenarioExpertGates" not in kinds
    model = _perturbed(cls)
    served = model.for_inference()
    inputs = _inputs(cls, batch, batch)
    with torch.no_grad():
        _close(served(inputs), model(inputs))


# --- fold-scenario-gates: where the cost model folds a gate table into the next layer ------------

HEADS = """model heads
feature a : categorical(vocab = 50, dim = 8)
feature g : categorical(vocab = 3, dim = 4) scenario
feature t : categorical(vocab = 2, dim = 2) scenario
scenarios g * t
condition pc = concat(g, t)
h = poso(a, [6, 5], by = pc, dropout = 0.2)
output y = sigmoid({head}) loss = bce
"""


def _served_kinds(head):
    result, _ = compile_text(HEADS.format(head=head))
    return result, [type(op).__name__ for op in result.inference]


@pytest.mark.parametrize("batch", [1, 7, 2000])
@pytest.mark.parametrize("head", ["linear(h, 1, per = scenario)",
                                  "linear(star(h, [2], by = scenario, last_act = false), 1)"])
def test_a_gate_table_folds_into_a_per_cell_layer_on_the_same_cells(head, batch):
    """diag(G[c]) W_c, after a per-cell linear's own fold (STAR's merge): exact on mixed cells."""
    result, cls = compile_text(HEADS.format(head=head))
    kinds = [type(op).__name__ for op in result.inference]
    assert kinds.count("ScenarioGate") == 1 and kinds.count("GatedIndexedLinear") == 1
    model = _perturbed(cls)
    inputs = _inputs(cls, batch, batch)
    with torch.no_grad():
        _close(model.for_inference()(inputs), model(inputs))


def test_a_gate_folded_away_whole_still_gets_its_table_method():
    """A PPNet gate on a scenario-only condition, folded into the STAR layer after it: no gate op
    is left in the inference graph, yet for_inference() reads the condition's per-cell table (the
    training class must still define its method; found by tests/fuzz)."""
    spec = ("model a\nfeature s : categorical(vocab = 3, dim = 2) scenario\n"
            "feature b : categorical(vocab = 1, dim = 1)\nfeature c : numeric(width = 1)\n"
            "scenarios s\ncondition z = concat(s)\nv0 = concat(b, c)\n"
            "v1 = ppnet(v0, [2], by = z, placement = post_activation)\n"
            "v2 = star(v1, [2], by = scenario)\noutput a_out = sigmoid(linear(v2, 1)) loss = bce\n")
    result, cls = compile_text(spec)
    kinds = [type(op).__name__ for op in result.inference]
    assert "ScenarioGate" not in kinds and "GatedIndexedLinear" in kinds
    model = _perturbed(cls)
    inputs = _inputs(cls, 7, 7)
    with torch.no_grad():
        _close(model.for_inference()(inputs), model(inputs))


def test_a_shared_next_layer_keeps_the_table_the_cost_model_says_why():
    """Folded into a shared layer, the gate would make it per cell: more parameters (for a
    width-1 head too once cells > n + 1) and per-cell execution (grouping copies) to save n
    multiplies per sample."""
    from dwc.ir import ops as ir
    from dwc.layers.poso.passes import cheaper

    result, kinds = _served_kinds("linear(h, 1)")
    assert kinds.count("ScenarioGate") == 2 and "GatedIndexedLinear" not in kinds
    ops = {op.result: op for op in result.inference}
    gate, head = ops["h.gated.2"], ops["y.linear"]
    per_cell = ir.IndexedLinear(result=head.result, inputs=(gate.inputs[0], gate.inputs[1]),
                                type=head.type, in_features=5, out_features=1, domains=6)
    assert per_cell.params() <= gate.params() + head.params()  # no more parameters, yet:
    assert not cheaper([gate, head], per_cell)
    inner = ops["h.fc1"]
    assert not cheaper([ops["h.gated"], inner], ir.IndexedLinear(
        result=inner.result, inputs=inner.inputs, type=inner.type, in_features=6,
        out_features=5, domains=6))
    result, kinds = _served_kinds("linear(h, 1, per = t)")  # another index: not the same cells
    assert "GatedIndexedLinear" not in kinds


# --- diagnostics ----------------------------------------------------------------------------------

HEADER = """model m
feature a : categorical(vocab = 10, dim = 4)
feature s : categorical(vocab = 3, dim = 2) scenario
condition pc = concat(s)
"""
TAIL = "\noutput y = sigmoid(linear(h, 1)) loss = bce\n"


@pytest.mark.parametrize(("body", "code", "column"), [
    ("h = poso(a, [4], by = scenario)", "DW336", 23),
    ("h = poso(a, [4], by = s)", "DW336", 23),
    ("h = poso(a, [4], by = pc, gamma = 0)", "DW337", 35),
    ("h = poso(a, [4], by = self)", "DW338", 23),
    ("h = poso(a, [4], by = concat(self, pc))", "DW338", 23),
    ("e = experts(a, 2, [4])\nh = poso(e, [4], by = pc)", "DW339", 10),
    ("e = poso_experts(a, 2, [4], by = pc)\nf = poso_experts(e, 2, [4], by = pc)\n"
     "h = mix(f, a)", "DW339", 18),
    ("e = poso_experts(a, 2, [4], by = pc, gamma = -1)\nh = mix(e, a)", "DW337", 46),
])
def test_misuse_is_a_coded_diagnostic_with_help(body, code, column):
    spec = HEADER + body + TAIL
    first = diagnostics_of(spec)[0]
    assert (first.code, first.location(source_of(spec))[1]) == (code, column), first.message
    assert first.help


def test_poso_ops_verify_their_inputs():
    from dwc.ir.ops import VerificationError
    from dwc.ir.types import ExpertsType, IdsType, VecType
    from dwc.layers.poso.op import ExpertGates

    t = ExpertsType(3, 4)
    gates = ExpertGates(result="e", inputs=("x", "z"), type=t, in_features=2, hidden=5)
    gates.verify((t, VecType(2)), {})
    table = gates.as_table("cell", 6, "e_table")
    table.verify((t, IdsType(6)), {})
    assert table.tabulated() == "z" and table.params() == 6 * 12
    for op, ins in ((gates, (ExpertsType(2, 4), VecType(2))), (gates, (t, VecType(3))),
                    (table, (t, IdsType(5)))):
        with pytest.raises(VerificationError):
            op.verify(ins, {})


def test_expert_gates_helper_inlines_without_its_imports():
    from dwc.backends.torch.inline import helper_source

    code, needs = helper_source("dwc.layers.poso.runtime")
    assert code.startswith("class _DwcExpertGates(nn.Module):") and "import" not in code
    assert needs == ()


# --- lint: code -> (failing spec, (line, column) of the finding, passing spec) -------------------

LINT_BASE = """model m
feature a : categorical(vocab = 100, dim = 8)
feature u : categorical(vocab = 500_000, dim = 8) scenario
feature s : categorical(vocab = 4, dim = 4) scenario
scenarios s
condition pc = concat(s)
"""
LINT_OUT = "output y = sigmoid(linear(h, 1)) loss = bce\n"
LINT_CASES = {
    "DW524": (LINT_BASE + "condition code = concat(u, s)  # dwc: ignore[DW505]\n"
              "h = poso(a, [8], by = code)\n" + LINT_OUT, (8, 18),
              LINT_BASE.replace("feature u : categorical(vocab = 500_000, dim = 8) scenario\n", "")
              + "h = poso(a, [8], by = pc)\n" + LINT_OUT),
    "DW525": (LINT_BASE.replace("feature u : categorical(vocab = 500_000, dim = 8) scenario\n", "")
              + "h = poso(a, [8, 8], by = pc, gamma = 1)\n" + LINT_OUT, (6, 30),
              LINT_BASE.replace("feature u : categorical(vocab = 500_000, dim = 8) scenario\n", "")
              + "h = poso(a, [8, 8], by = pc, gamma = 2)\n" + LINT_OUT),
}
