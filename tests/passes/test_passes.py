"""Passes: Before/Expected IR for each pass, verification after every pass, exact folds."""

from __future__ import annotations

import pytest
import torch

from dwc.cost import explain
from dwc.driver import check_source, compile_source, optimize
from dwc.ir import ops as ir
from dwc.ir.printer import print_graph
from dwc.ir.verify import verify
from dwc.passes import PassError, parse_pipeline
from dwc.passes.base import PIPELINES
from tests.conftest import EXAMPLES, ROOT, compile_example, compile_text, example_ids, source_of

APG_ONE = """
model one
feature a : categorical(vocab = 50, dim = {n})
feature s : categorical(vocab = 6, dim = {dz}) scenario
scenarios s
condition z = concat(s)
h = linear(a, {m}) dynamic(by = z) apg(rank = {k}, overparam = {p})
output y = identity(h) loss = mse
"""


def run_passes(spec: str, pipeline: str):
    """Lower `spec`, then run `pipeline` pass by pass; returns (before, after) printed IR lines
    of the ops whose text changed."""
    graph = check_source(source_of(spec))
    after = graph
    for p in parse_pipeline(pipeline):
        after = p.run(after).graph
        verify(after)
    return graph, after


def op_line(graph, result: str) -> str:
    return next(line for line in print_graph(graph).splitlines() if line.startswith(f"%{result}:"))


SPEC = APG_ONE.format(n=16, m=12, dz=4, k=3, p=6)


class TestApgPasses:
    def test_lowered_form_is_full_rank(self):
        graph, _ = run_passes(SPEC, "")
        assert op_line(graph, "h.generated") == (
            "%h.generated: vec[204] = generator(%z) {hidden=[], act=relu, init=default, "
            "slots=[w@0:16x12, b@192:12]} @h_generator")
        assert op_line(graph, "h").startswith("%h: vec[12] = dynamic_linear(%a, %h.generated) "
                                              "{in=16, out=12, weight=w, bias=generated")

    def test_lowrank(self):
        _, after = run_passes(SPEC, "lowrank")
        assert op_line(after, "h.generated") == (
            "%h.generated: vec[105] = generator(%z) {hidden=[], act=relu, init=default, "
            "slots=[u@0:16x3, s@48:3x3, v@57:3x12, b@93:12]} @h_generator")
        assert op_line(after, "h") == (
            "%h: vec[12] = lowrank_dynamic_linear(%a, %h.generated) {in=16, out=12, rank=3, "
            "share=false, overparam=None, decompose=false, bias=generated, core=s, u=u, v=v, "
            "bias_slot=b}")

    def test_share(self):
        _, after = run_passes(SPEC, "lowrank,share")
        assert op_line(after, "h.generated") == (
            "%h.generated: vec[21] = generator(%z) {hidden=[], act=relu, init=default, "
            "slots=[s@0:3x3, b@9:12]} @h_generator")
        assert op_line(after, "h") == (
            "%h: vec[12] = lowrank_dynamic_linear(%a, %h.generated) {in=16, out=12, rank=3, "
            "share=true, overparam=None, decompose=false, bias=generated, core=s, "
            "bias_slot=b} @h_fc")

    def test_overparam_and_fold(self):
        _, after = run_passes(SPEC, "lowrank,share,overparam")
        assert "overparam=6," in op_line(after, "h")
        _, folded = run_passes(SPEC, "lowrank,share,overparam,fold-overparam")
        assert "overparam=None," in op_line(folded, "h")
        assert type(folded.op("h")) is ir.FoldedLowRankDynamicLinear  # the fold's marker

    def test_decompose(self):
        _, after = run_passes(SPEC, "lowrank,share,decompose")
        assert "decompose=true" in op_line(after, "h")

    def test_explicit_rank_applies_to_unmarked_layers(self):
        spec = SPEC.replace(" apg(rank = 3, overparam = 6)", "")
        _, untouched = run_passes(spec, "lowrank")
        assert untouched.op("h").kind == "dynamic_linear"
        _, factored = run_passes(spec, "lowrank{rank=5},share,overparam{width=10}")
        op = factored.op("h")
        assert (op.kind, op.rank, op.share, op.overparam) == ("lowrank_dynamic_linear", 5, True, 10)

    def test_fold_scenario_table(self):
        _, after = run_passes(SPEC, "lowrank,share,fold-scenario-table,dce")
        assert op_line(after, "h.generated") == (
            "%h.generated: vec[21] = scenario_table(%scenario.cell) {cells=6, "
            "generator=h.generated} @h_generator_table")
        assert "s.table" not in print_graph(after)  # the condition's subgraph is gone

    def test_fold_star(self):
        spec = ("model m\nfeature a : categorical(vocab = 9, dim = 4)\n"
                "feature d : categorical(vocab = 3, dim = 2) scenario\n"
                "h = star(a, [5], by = d)\noutput y = identity(h)\n")
        before, after = run_passes(spec, "fold-star")
        assert op_line(before, "h.fc0").startswith("%h.fc0: vec[5] = star_linear(%a, %d.ids)")
        assert op_line(after, "h.fc0") == (
            "%h.fc0: vec[5] = indexed_linear(%a, %d.ids) {in=4, out=5, domains=3} @h_fc0")

    def test_fuse_generators(self):
        spec = ("model m\nfeature a : categorical(vocab = 9, dim = 4)\n"
                "feature d : categorical(vocab = 3, dim = 2) scenario\ncondition z = concat(d)\n"
                "h = mlp(a, [5, 3]) dynamic(by = z) apg(rank = 2)\noutput y = identity(h)\n")
        _, after = run_passes(spec, "lowrank,share,fuse-generators")
        assert op_line(after, "z.generated") == (
            "%z.generated: vec[16] = fused_generator(%z) {parts=[h_generator0, h_generator1]} "
            "@z_generator")
        assert "core=h_generator1.s" in op_line(after, "h.fc1")

    def test_fuse_gates(self):
        spec = ("model m\nfeature a : categorical(vocab = 9, dim = 4)\n"
                "feature u : categorical(vocab = 7, dim = 3) scenario\n"
                "feature d : categorical(vocab = 3, dim = 2) scenario\n"
                "condition p = concat(stop_gradient(a), u)\ncondition q = concat(d)\n"
                "h = ppnet(a, [5, 6], by = p, gate_hidden = 8)\n"
                "g = gate(h, by = q)\noutput y = identity(g)\n")
        before, after = run_passes(spec, "fuse-gates")
        assert op_line(after, "p.gate_hidden") == (
            "%p.gate_hidden: vec[16] = gate_hidden(%p) {parts=[h_gate0:8, h_gate1:8]} "
            "@p_gate_hidden")
        assert "hidden_offset" not in op_line(before, "h.gated")
        assert op_line(after, "h.gated").endswith("hidden_offset=0} @h_gate0")
        assert op_line(after, "h.gated.2") == (
            "%h.gated.2: vec[5] = gate(%h.act0, %p.gate_hidden) {hidden=8, gamma=2.0, "
            "granularity=element, hidden_offset=8} @h_gate1")
        assert op_line(after, "g") == op_line(before, "g")  # alone on its condition: unfused
        # the stacked first layer owns what the gates no longer do: parameters are conserved
        assert sum(op.params() for op in after) == sum(op.params() for op in before)

    def test_strip_training_and_dce(self):
        spec = ("model m\nfeature a : categorical(vocab = 9, dim = 4)\n"
                "feature unused : categorical(vocab = 9, dim = 4)\n"
                "h = dropout(stop_gradient(a), 0.5)\noutput y = identity(linear(h, 1))\n")
        before, after = run_passes(spec, "strip-training,dce")
        assert [op.kind for op in before] == ["table", "table", "input", "lookup",
                                              "stop_gradient", "dropout", "linear", "head"]
        assert [op.kind for op in after] == ["table", "input", "lookup", "linear", "head"]
        assert after.op("y.linear").inputs == ("a",)


def test_pipeline_strings():
    passes = parse_pipeline("lowrank{rank=8}, share ,dce")
    assert [p.spelling() for p in passes] == ["lowrank{rank=8}", "share", "dce"]
    for bad, message in [("nope", "unknown pass 'nope'"), ("lowrank{k=1}", "no option 'k'"),
                         ("lowrank{rank=x}", "expects"), ("dce{", "cannot parse")]:
        with pytest.raises(PassError, match=message):
            parse_pipeline(bad)


@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("path", EXAMPLES, ids=example_ids())
def test_every_example_verifies_after_every_pass(path, level):
    graph = check_source(source_of(path.read_text(), path.name))
    _, train, inference, records = optimize(graph, level, verify_each=True)
    assert records or level == 0 and not any(o.kind == "dynamic_linear" and o.apg for o in graph)
    verify(train)
    verify(inference)


def _trained(cls, steps: int = 3):
    """A module whose parameters moved off their (often neutral) initial values."""
    torch.manual_seed(0)
    model = cls()
    g = torch.Generator().manual_seed(0)
    inputs, targets = cls.example_inputs(64, g), cls.example_targets(64, g)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        model.loss(inputs, targets).backward()
        optimizer.step()
    return model.eval()


@pytest.mark.parametrize("path", EXAMPLES, ids=example_ids())
def test_inference_form_is_exact(path):
    """fold-overparam, fold-star, fold-scenario-table and strip-training change outputs <= 1e-5."""
    _, cls = compile_example(path)
    model = _trained(cls)
    folded = model.for_inference()
    inputs = cls.example_inputs(33, torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected, actual = model(inputs), folded(inputs)
    for name in expected:
        assert (expected[name] - actual[name]).abs().max().item() <= 1e-5, name


@pytest.mark.parametrize("limit", [None, 0])
def test_folded_apg_layers_multiply_v_into_each_cell_unless_too_large(limit):
    """APG scenario layers hold a K x K core per cell (small batches gather it) and S[c] V per
    cell (K x M, one GEMM per cell of a grouped batch); past max_cell_floats only the cores. Every
    path computes the training outputs."""
    option = "" if limit is None else f"{{max_cell_floats={limit}}}"
    passes = PIPELINES[2].replace("fold-scenario-layers", "fold-scenario-layers" + option)
    result, cls = compile_example(ROOT / "examples" / "apg.dw", passes=passes)
    layers = [op for op in result.inference if op.kind == "scenario_linear"]
    assert [op.v_shared for op in layers] == [limit == 0] * 3
    assert [op.cell_shape for op in layers] == (
        [(32, 32), (16, 16), (8, 8)] if limit == 0 else [(32, 256), (16, 128), (8, 64)])
    model = _trained(cls)
    folded = model.for_inference()
    assert (folded.h_fc0.weight is None) == (limit == 0)
    assert sum(p.numel() for p in folded.parameters()) == sum(
        c.cost.params for c in explain(result.inference))
    for batch in (1, 7, 300):  # one cell's matmul, per-sample gathers, grouped matmuls
        inputs = cls.example_inputs(batch, torch.Generator().manual_seed(batch))
        with torch.no_grad():
            torch.testing.assert_close(folded(inputs)["ctr"], model(inputs)["ctr"],
                                       rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("path", EXAMPLES, ids=example_ids())
def test_weights_travel_across_optimisation_levels(path):
    """Parameter names do not depend on -O: an -O2 state_dict loads strictly at -O0."""
    _, fast = compile_example(path, level=2)
    _, naive = compile_example(path, level=0)
    trained = _trained(fast)
    other = naive()
    other.load_state_dict(trained.state_dict(), strict=True)
    other.eval()
    inputs = fast.example_inputs(17, torch.Generator().manual_seed(4))
    with torch.no_grad():
        a, b = trained(inputs), other(inputs)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


def test_o0_and_o2_generate_different_code_for_apg():
    source = source_of((ROOT / "examples" / "apg.dw").read_text(), "apg.dw")
    o0 = compile_source(source, level=0, verify_each=True)
    o2 = compile_source(source, level=2, verify_each=True)
    assert o0.files["model.py"] != o2.files["model.py"]
    layers = [[op.decompose for op in r.graph if op.kind == "lowrank_dynamic_linear"]
              for r in (o0, o2)]
    assert layers == [[False] * 3, [True] * 3]  # -O0 materialises W = U S V per sample
    # the generators are fused, tabulated per cell, then each layer's cell weights folded
    assert [r.changed for r in o2.records if r.name in (
        "fuse-generators", "fold-scenario-table", "fold-scenario-layers")] == [True] * 3
    assert [op.kind for op in o2.inference if "scenario" in op.kind] == [
        "scenario_index", *["scenario_linear"] * 3]
    assert not any(op.kind in ("fused_generator", "scenario_table", "scenario_linear")
                   for op in o0.inference)


def test_m2m_meta_units_become_per_cell_layers():
    """M2M's meta units are generated from the scenario only: at -O2 each meta attention holds
    its cells' layers, and neither the scenario table nor the condition's MLP is left."""
    result, _ = compile_example(ROOT / "examples" / "m2m.dw")
    kinds = [op.kind for op in result.inference]
    assert kinds.count("scenario_meta_attention") == 2 and "meta_attention" not in kinds
    assert not {"scenario_table", "generator", "fused_generator", "linear"} & {
        op.kind for op in result.inference if op.binding == "s"}
    unit = next(op for op in result.inference if op.kind == "scenario_meta_attention")
    # the first layer reads the experts' 16 numbers (the task's 16 folded into its bias)
    assert unit.layer_shapes == [(16, 32)]
    assert unit.params() == 24 * (16 * 32 + 32) + 32


def test_a_meta_attention_alone_on_its_scenario_table_folds():
    """Found in review: with no other layer reading the scenario table, for_inference() still
    computes the table it folds the meta unit from (a method generated for it)."""
    spec = ("model m\nfeature a : categorical(vocab = 50, dim = 8)\n"
            "feature c : categorical(vocab = 4, dim = 8) scenario\nscenarios c\n"
            "condition s = mlp(concat(c), [6])\ne = experts(mlp(a, [8]), 3, [5])\n"
            "r = meta_attention(e, by = s)\noutput y = sigmoid(linear(r, 1)) loss = bce\n")
    result, cls = compile_text(spec)
    assert "scenario_meta_attention" in [op.kind for op in result.inference]
    model = cls().eval()
    x = cls.example_inputs(9)
    with torch.no_grad():
        torch.testing.assert_close(model.for_inference()(x)["y"], model(x)["y"])


SCENARIO_GATES = """
model sg
feature a : categorical(vocab = 50, dim = 6)
feature c : categorical(vocab = 4, dim = 3) scenario
feature p : categorical(vocab = 3, dim = 2) scenario
feature u : categorical(vocab = 30, dim = 4) scenario
scenarios c * p
condition z = mlp(concat(c, p), [5])
condition w = concat(u, stop_gradient(a))
e = fields(a, u)
h = ppnet(a, [8, 6], by = z, gate_hidden = 7)
g = gate(e, by = z, per = field)
k = ppnet(concat(h, g), [5], by = w)
output y = sigmoid(linear(k, 1)) loss = bce
"""


def test_gates_on_a_scenario_only_condition_become_per_cell_tables():
    """Gate NUs on z (scenario features only) serve gamma * sigmoid(...) from a table of the 12
    cells; the gates on w (a user id) keep running. Outputs equal the training form's at every
    batch size (small: per-sample gathers; large: grouped by cell)."""
    result, cls = compile_text(SCENARIO_GATES)
    kinds = {op.result: op.kind for op in result.inference}
    assert [kinds[r] for r in ("h.gated", "h.gated.2", "g")] == ["scenario_gate"] * 3
    assert kinds["k.gated"] == "gate"
    assert not any(op.binding == "z" for op in result.inference)  # z's MLP no longer runs
    assert next(op for op in result.inference if op.result == "g").params() == 12 * 10
    torch.manual_seed(0)
    model = cls().eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.5)
    served = model.for_inference()
    for batch in (1, 7, 2000):
        x = cls.example_inputs(batch, torch.Generator().manual_seed(batch))
        with torch.no_grad():
            torch.testing.assert_close(served(x)["y"], model(x)["y"])


def test_lowrank_at_full_rank_represents_the_original_layer():
    """W = U S V with K = min(N, M): choose U = I, V = I, S = W and compare with full rank."""
    spec = ("model m\nfeature a : categorical(vocab = 20, dim = 6)\n"
            "feature s : categorical(vocab = 4, dim = 3) scenario\ncondition z = concat(s)\n"
            "h = linear(a, 6) dynamic(by = z){apg}\noutput y = identity(h) loss = mse\n")
    _, full_cls = compile_text(spec.replace("{apg}", ""))
    _, low_cls = compile_text(spec.replace("{apg}", " apg(rank = 6)"))
    full, low = full_cls().eval(), low_cls().eval()
    with torch.no_grad():
        low.a_embedding.weight.copy_(full.a_embedding.weight)
        low.s_embedding.weight.copy_(full.s_embedding.weight)
        low.h_fc.u_weight.copy_(torch.eye(6))
        low.h_fc.v_weight.copy_(torch.eye(6))
        low.h_generator[0].weight.copy_(full.h_generator[0].weight)  # [W (36), b (6)] = [S, b]
        low.h_generator[0].bias.copy_(full.h_generator[0].bias)
    inputs = full_cls.example_inputs(21)
    with torch.no_grad():
        torch.testing.assert_close(full(inputs)["y"], low(inputs)["y"], rtol=1e-5, atol=1e-5)


def test_scenario_table_ahead_of_a_later_cell_index():
    """Found by fuzzing: a scenario-only generator before a STAR layer that computes the cell id
    must not read the id before it exists (the index moves ahead of the table)."""
    spec = ("model a\nfeature s : categorical(vocab = 3, dim = 2) scenario\n"
            "feature b : categorical(vocab = 4, dim = 2)\nscenarios s\ncondition z = concat(s)\n"
            "v1 = mlp(b, [2, 4]) dynamic(by = z)\nv2 = star(v1, [2], by = scenario)\n"
            "output y = sigmoid(linear(v2, 1)) loss = bce\n")
    result, cls = compile_text(spec)
    verify(result.inference)
    tabulated = next(r.graph for r in result.records if r.name == "fold-scenario-table")
    kinds = [op.kind for op in tabulated]
    assert kinds.index("scenario_index") < kinds.index("scenario_table")
    kinds = [op.kind for op in result.inference]
    assert kinds.index("scenario_index") < kinds.index("scenario_linear")
    model = cls().eval()
    x = cls.example_inputs(6)
    with torch.no_grad():
        torch.testing.assert_close(model(x)["y"], model.for_inference()(x)["y"])


@pytest.mark.parametrize("passes", ["lowrank{rank=2},share,decompose,dce",
                                    "lowrank{rank=2},share,overparam{width=4},decompose,dce,"
                                    "fold-overparam,strip-training,dce"])
def test_model_passes_named_in_a_pipeline_string_shape_the_parameters(passes):
    """`--passes 'lowrank{rank=2},...'` factors unmarked dynamic layers: the training form must
    declare the factored generator its forward reads (the model pass runs in the model stage)."""
    spec = (ROOT / "examples" / "dw_mlp.dw").read_text()
    result, cls = compile_text(spec, passes=passes)
    torch.manual_seed(0)
    model = cls()
    generated = next(c.cost for c in explain(result.graph) if c.name == "h").generated_per_sample
    assert generated < 664  # the rank-2 cores (and biases), not the full 664 numbers
    inputs, targets = cls.example_inputs(5), cls.example_targets(5)
    model.loss(inputs, targets).backward()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.for_inference()(inputs)["ctr"], model(inputs)["ctr"])


@pytest.mark.parametrize("example", ["fold_batch_norm", "adasparse", "can", "multitask"])
def test_batch_norms_fold_into_their_linear_layers_exactly(example):
    """fold-batch-norm: with running statistics and affine parameters far from their initial
    values, the folded layers compute what linear + eval batch norm compute (either order)."""
    path = (ROOT / "tests" / "passes" / "fixtures" / f"{example}.dw"
            if example == "fold_batch_norm" else ROOT / "examples" / f"{example}.dw")
    result, cls = compile_example(path)
    folded_ops = [op for op in result.inference.ops if isinstance(op, ir.NormFoldedLinear)]
    assert folded_ops
    if example == "fold_batch_norm":  # both orders occur
        assert {op.norm_first for op in folded_ops} == {False, True}
    torch.manual_seed(0)
    model = cls().eval()
    g = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            width = module.num_features
            module.running_mean.copy_(torch.randn(width, generator=g))
            module.running_var.copy_(torch.rand(width, generator=g) * 4 + 0.1)
            module.weight.data.copy_(torch.randn(width, generator=g))
            module.bias.data.copy_(torch.randn(width, generator=g))
    inference = model.for_inference()

    def norms(module):
        return sum(isinstance(m, torch.nn.BatchNorm1d) for m in module.modules())

    assert norms(inference) == norms(model) - len(folded_ops)  # the folded norms are gone
    inputs = cls.example_inputs(33, torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected, actual = model(inputs), inference(inputs)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-5, atol=2e-5)
