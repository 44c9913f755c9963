"""MLoRA against a clean-room reference written from its equations, its fold, costs, codes and
lint rules.

Per layer: y = act(Dropout(x W + b) + (x A[d]) B[d] + c[d]), d each sample's own domain; B and c
start at 0, so step 0 is the shared MLP; for_inference() merges W + A[d] B[d] where the merged
weights fit fold-mlora's ceiling and keeps the factors elsewhere.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dwc.backends.torch.helpers.per_domain import _dwc_domain_rows
from dwc.backends.torch.inline import helper_source
from dwc.cost import explain
from dwc.layers.mlora.op import MergedMloraLinear, MloraLinear
from dwc.layers.mlora.runtime import _DwcMloraLinear
from dwc.passes import PIPELINES
from tests.conftest import ROOT, compile_text, diagnostics_of

HEAD = """model m
feature user : categorical(vocab = 50, dim = 8)
feature item : categorical(vocab = 40, dim = 8)
feature d : categorical(vocab = {domains}, dim = 8) scenario
"""
SPEC = HEAD + """h = mlora(concat(user, item, d), {widths}, by = d{options})
output y = sigmoid(linear(h, 1)) loss = bce
"""


def spec(widths="[16, 8]", domains=3, options=""):
    return SPEC.format(widths=widths, domains=domains, options=options)


FACTORED = PIPELINES[2].replace("fold-mlora", "fold-mlora{ceiling_mib=0}")
"""-O2 with a ceiling of 0: only layers whose merged weights are no larger than their factors
merge."""


def mixed(cls, batch, seed=1):
    """Inputs with every domain present (for B >= domains), in a shuffled order."""
    inputs = cls.example_inputs(batch, torch.Generator().manual_seed(seed))
    domains = cls.VOCABULARIES["d"]
    inputs["d"] = torch.arange(batch) % domains
    inputs["d"] = inputs["d"][torch.randperm(batch, generator=torch.Generator().manual_seed(seed))]
    return inputs


def adapted(model):
    """Move every adapter off its zero start (B and c), as training would."""
    torch.manual_seed(5)
    with torch.no_grad():
        for layer in model.modules():
            if hasattr(layer, "domain_b"):
                layer.domain_b.normal_(0, 0.3)
                layer.domain_bias.normal_(0, 0.3)
                layer.bias.normal_(0, 0.1)
    return model


# --- the runtime layer ----------------------------------------------------------------------

X = torch.tensor([[1.0, 2.0, 0.5], [0.5, -1.0, 1.0], [-2.0, 0.0, 3.0], [3.0, 1.0, -1.0]])
DOMAIN = torch.tensor([1, 0, 1, 2])


def _hand_set_layer():
    layer = _DwcMloraLinear(3, 2, domains=3, rank=1, dropout=0.5).eval()
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]])
    a = torch.tensor([[[1.0], [0.0], [1.0]], [[0.0], [2.0], [0.0]], [[1.0], [1.0], [1.0]]])
    b = torch.tensor([[[1.0, 1.0]], [[0.5, -1.0]], [[0.0, 2.0]]])
    c = torch.tensor([[0.0, 0.0], [1.0, -1.0], [0.5, 0.5]])
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(torch.tensor([0.1, 0.2]))
        layer.domain_a.copy_(a)
        layer.domain_b.copy_(b)
        layer.domain_bias.copy_(c)
    return layer, w, a, b, c


@pytest.mark.parametrize("side_by_side", [False, True])
@pytest.mark.parametrize("grouped", [False, True])
def test_mlora_linear_is_the_shared_linear_plus_each_samples_own_adapter(grouped, side_by_side):
    """Per domain present (grouped in eager mode, side by side when traced) or every domain's
    adapter side by side with a mask; one domain alone takes its factors directly."""
    layer, w, a, b, c = _hand_set_layer()
    layer.side_by_side = side_by_side
    expected = torch.stack([X[i] @ w + torch.tensor([0.1, 0.2]) + (X[i] @ a[d]) @ b[d] + c[d]
                            for i, d in enumerate(DOMAIN)])
    for take in (slice(None), DOMAIN == 1):
        rows = _dwc_domain_rows(DOMAIN[take]) if grouped else None
        torch.testing.assert_close(layer(X[take], DOMAIN[take], rows), expected[take])


def test_side_by_side_when_every_adapter_costs_no_more_than_the_shared_product():
    assert _DwcMloraLinear(256, 256, domains=8, rank=16, dropout=0.5).side_by_side
    assert not _DwcMloraLinear(256, 256, domains=9, rank=16, dropout=0.5).side_by_side


@pytest.mark.parametrize("side_by_side", [False, True])
def test_dropout_is_on_the_shared_path_only(side_by_side):
    layer, *_ = _hand_set_layer()
    layer.side_by_side = side_by_side
    layer.train()
    with torch.no_grad():
        adapter_only = _DwcMloraLinear(3, 2, domains=3, rank=1, dropout=0.5)
        adapter_only.load_state_dict(layer.state_dict())
        adapter_only.side_by_side = side_by_side
        adapter_only.weight.zero_()
        adapter_only.bias.zero_()
    eval_out = adapter_only.eval()(X, DOMAIN, None)
    torch.testing.assert_close(adapter_only.train()(X, DOMAIN, None), eval_out)  # no dropout
    with torch.no_grad():
        layer.domain_b.zero_()
        layer.domain_bias.zero_()
    torch.manual_seed(0)
    shared = layer(X, DOMAIN, None)
    kept = shared != 0
    assert kept.any() and not kept.all()  # some units dropped, the rest scaled by 1 / (1 - p)
    torch.testing.assert_close(shared[kept], 2 * (X @ layer.weight + layer.bias)[kept])


def test_initialisation_follows_the_port():
    """W, A Glorot-uniform with Keras' fans (A is D x n x r: fans n D and r D); b, B, c zero."""
    torch.manual_seed(0)
    n, m, domains, r = 64, 48, 4, 8
    layer = _DwcMloraLinear(n, m, domains, r, 0.5)
    for tensor, bound in ((layer.weight, math.sqrt(6 / (n + m))),
                          (layer.domain_a, math.sqrt(6 / (domains * (n + r))))):
        assert tensor.abs().max() <= bound
        assert tensor.abs().max() > 0.95 * bound  # uniform over the whole range
        assert abs(tensor.std().item() - bound / math.sqrt(3)) < 0.05 * bound
    for zero in (layer.bias, layer.domain_b, layer.domain_bias):
        assert not zero.any()
    assert _DwcMloraLinear.dwc_scenario_parameters == ("domain_a", "domain_b", "domain_bias")


def test_mlora_helper_inlines_without_its_imports():
    code, needs = helper_source("dwc.layers.mlora.runtime")
    assert code.startswith("class _DwcMloraLinear(nn.Module):") and "import" not in code
    assert needs == ("dwc.backends.torch.helpers.per_domain",)


# --- against the clean-room reference -------------------------------------------------------


class ReferenceMlora(nn.Module):
    """The layers written from the equations: for each sample i of domain d_i,
    h_i <- act(h_i W + b + (h_i A[d_i]) B[d_i] + c[d_i]) (eval: no dropout)."""

    def __init__(self, layers):
        super().__init__()
        self.layers = layers

    def forward(self, x, d):
        h = x
        for w, b, a, bb, c in self.layers:
            low = torch.einsum("bi,bir->br", h, a[d])
            h = torch.relu(h @ w + b + torch.einsum("br,bro->bo", low, bb[d]) + c[d])
        return h


def _reference_of(model):
    layers = [tuple(p.detach().clone() for p in (f.weight, f.bias, f.domain_a, f.domain_b,
                                                 f.domain_bias))
              for f in (model.h_fc0, model.h_fc1)]
    return ReferenceMlora(layers)


def _embedded(model, inputs):
    return torch.cat([model.user_embedding(inputs["user"]), model.item_embedding(inputs["item"]),
                      model.d_embedding(inputs["d"])], dim=1)


@pytest.mark.parametrize("passes", [None, FACTORED])
def test_matches_the_reference_in_float64_with_mixed_domains(passes):
    _, cls = compile_text(spec(), passes=passes)
    torch.manual_seed(0)
    model = adapted(cls()).double().eval()
    reference = _reference_of(model)
    inputs = mixed(cls, 37)
    with torch.no_grad():
        expected = torch.sigmoid(model.y(reference(_embedded(model, inputs), inputs["d"])))
        for form in (model, model.for_inference()):
            torch.testing.assert_close(form(inputs)["y"], expected, rtol=1e-6, atol=0)


def test_each_sample_uses_its_own_domain_not_the_first_samples():
    """MLoRA's code looks up domain_indicator[0, 0] for the whole batch; dwc adapts each sample
    by its own domain: a mixed batch gives every sample what it gets alone."""
    _, cls = compile_text(spec())
    torch.manual_seed(0)
    model = adapted(cls()).double().eval()
    inputs = mixed(cls, 12)
    reference = _reference_of(model)
    with torch.no_grad():
        full = model(inputs)["y"]
        alone = torch.cat([model({k: v[i:i + 1] for k, v in inputs.items()})["y"]
                           for i in range(12)])
        first = torch.full_like(inputs["d"], int(inputs["d"][0]))
        port = torch.sigmoid(model.y(reference(_embedded(model, inputs), first)))
    torch.testing.assert_close(full, alone, rtol=1e-9, atol=0)
    other = inputs["d"] != inputs["d"][0]
    assert other.any() and not torch.allclose(full[other], port[other])
    torch.testing.assert_close(full[~other], port[~other], rtol=1e-9, atol=0)


def test_step_zero_is_the_shared_mlp():
    """With B and c at their zero start, mlora is `mlp` with the same W and b (eval)."""
    _, cls = compile_text(spec())
    _, plain_cls = compile_text(HEAD.format(domains=3) + "h = mlp(concat(user, item, d), [16, 8])\n"
                                "output y = sigmoid(linear(h, 1)) loss = bce\n")
    torch.manual_seed(0)
    model, plain = cls().eval(), plain_cls().eval()
    with torch.no_grad():
        for name in ("user_embedding", "item_embedding", "d_embedding", "y"):
            getattr(plain, name).load_state_dict(getattr(model, name).state_dict())
        for i in range(2):
            fc = getattr(model, f"h_fc{i}")
            getattr(plain, f"h_fc{i}").weight.copy_(fc.weight.T)
            getattr(plain, f"h_fc{i}").bias.copy_(fc.bias)
    inputs = mixed(cls, 64)
    with torch.no_grad():
        expected = plain(inputs)["y"]
        torch.testing.assert_close(model(inputs)["y"], expected)
        torch.testing.assert_close(model.for_inference()(inputs)["y"], expected)


def test_gradients_reach_only_the_domains_present_and_a_only_once_b_moves():
    _, cls = compile_text(spec())
    torch.manual_seed(0)
    model = cls().eval()
    inputs = mixed(cls, 16)
    inputs["d"] = inputs["d"].clamp(max=1)  # domain 2 absent
    model.loss(inputs, cls.example_targets(16, torch.Generator().manual_seed(2))).backward()
    fc = model.h_fc0
    assert not fc.domain_a.grad.any()  # B = 0: x A[d] does not reach the output yet
    for grad in (fc.domain_b.grad, fc.domain_bias.grad):
        assert grad[:2].abs().sum(dim=tuple(range(1, grad.dim()))).all()  # domains 0 and 1
        assert not grad[2].any()  # no sample of domain 2
    model.zero_grad()
    adapted(model)
    model.loss(inputs, cls.example_targets(16, torch.Generator().manual_seed(2))).backward()
    assert fc.domain_a.grad[:2].any() and not fc.domain_a.grad[2].any()


# --- the fold -------------------------------------------------------------------------------


def _inference_ops(result):
    return [op for op in result.inference.ops if isinstance(op, MloraLinear | MergedMloraLinear)]


@pytest.mark.parametrize(("passes", "kind"), [(None, MergedMloraLinear), (FACTORED, MloraLinear)])
@pytest.mark.parametrize("batch", [1, 7, 2000])
def test_folded_equals_unfolded_with_mixed_domains(passes, kind, batch):
    """Both forms fold-mlora chooses from: merged W + A[d] B[d] (small layers) and the factors
    kept (ceiling 0, where the merged weights outgrow the factors)."""
    result, cls = compile_text(spec("[32, 16]", domains=6, options=", rank = 2"),
                               passes=passes)
    assert {type(op) for op in _inference_ops(result)} == {kind}
    torch.manual_seed(0)
    model = adapted(cls()).eval()
    served = model.for_inference()
    inputs = mixed(cls, batch)
    with torch.no_grad():
        torch.testing.assert_close(served(inputs)["y"], model(inputs)["y"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("passes", [None, FACTORED])
def test_served_outputs_do_not_depend_on_the_batch(passes):
    _, cls = compile_text(spec("[32, 16]", domains=6, options=", rank = 2"), passes=passes)
    torch.manual_seed(0)
    served = adapted(cls()).for_inference()
    inputs = mixed(cls, 2000)
    with torch.no_grad():
        full = served(inputs)["y"]
        for i in (0, 999, 1999):
            alone = served({k: v[i:i + 1] for k, v in inputs.items()})["y"]
            torch.testing.assert_close(full[i:i + 1], alone, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(served({k: v[:7] for k, v in inputs.items()})["y"], full[:7],
                                   rtol=1e-5, atol=1e-6)


def test_fold_mlora_merges_within_the_ceiling_and_keeps_the_factors_beyond():
    """Merged D (n m + m) against factored n m + m + D (r (n + m) + m); merged when no larger, or
    within ceiling_mib MiB of float32."""
    from dwc.layers.mlora.passes import merges

    def layer(n, m, domains, rank):
        return MloraLinear(result="h", inputs=("x", "d"), type=None, in_features=n,
                           out_features=m, domains=domains, rank=rank, dropout=0.0)

    big = layer(256, 256, 32, 16)  # merged 8.03 MiB, factored 0.8 MiB
    assert big.merged_params() == 32 * (256 * 256 + 256)
    assert big.params() == 256 * 256 + 256 + 32 * (16 * 512 + 256)
    assert not merges(big, 4) and not merges(big, 8) and merges(big, 9)
    on = layer(255, 256, 16, 16)  # 16 (255 * 256 + 256) floats: 4 MiB exactly
    assert merges(on, 4) and not merges(on, 3)
    assert merges(layer(24, 16, 2, 16), 0)  # merged no larger than the factors


def test_the_merged_layer_is_an_indexed_linear_marked_by_its_type():
    from dwc import layers
    from dwc.ir import ops as ir

    assert issubclass(MergedMloraLinear, ir.IndexedLinear) and MergedMloraLinear.kind == \
        "indexed_linear"
    assert MergedMloraLinear in layers.torch_folds() and ir.IndexedLinear not in layers.torch_folds()


def test_mlora_linear_verifies_its_inputs_rank_and_dropout():
    from dataclasses import replace

    from dwc.ir.ops import VerificationError
    from dwc.ir.types import IdsType, VecType

    op = MloraLinear(result="h", inputs=("x", "d"), type=VecType(3), in_features=2,
                     out_features=3, domains=4, rank=2, dropout=0.5)
    op.verify((VecType(2), IdsType(4)), {})
    for bad, ins in ((op, (VecType(2), IdsType(3))), (op, (VecType(5), IdsType(4))),
                     (replace(op, rank=3), (VecType(2), IdsType(4))),
                     (replace(op, rank=0), (VecType(2), IdsType(4))),
                     (replace(op, dropout=1.0), (VecType(2), IdsType(4)))):
        with pytest.raises(VerificationError):
            bad.verify(ins, {})


def test_two_stage_marks_the_adapters_as_scenario_parts():
    from dwc.train import scenario_parameters

    _, cls = compile_text(spec())
    model = cls()
    expected = [getattr(getattr(model, f"h_fc{i}"), name) for i in range(2)
                for name in ("domain_a", "domain_b", "domain_bias")]
    assert [id(p) for p in scenario_parameters(model)] == [id(p) for p in expected]


# --- costs ----------------------------------------------------------------------------------

PORT = """model movielens
feature user : categorical(vocab = 100, dim = 8)
feature item : categorical(vocab = 100, dim = 8)
feature d : categorical(vocab = 2, dim = 8) scenario
h = mlora(concat(user, item, d), [256, 128, 64], by = d)
output y = sigmoid(linear(h, 1)) loss = bce
"""


def test_parameters_follow_the_closed_form():
    """MLoRA's Movielens model (d_x = 24, D = 2, [256, 128, 64], reduce 16 -> r = 16, 8, 4):
    per layer n m + m shared and D (r (n + m) + m) per domain; the output Dense(1) is shared."""
    result, cls = compile_text(PORT)
    layers = [op for op in result.model_graph.ops if isinstance(op, MloraLinear)]
    assert [op.rank for op in layers] == [16, 8, 4]
    head = next(c.cost.params for c in explain(result.model_graph) if c.name == "y")
    assert sum(op.shared_params() for op in layers) + head == 47_617
    assert sum(op.domain_params() for op in layers) == 17_536
    h = next(c.cost for c in explain(result.model_graph) if c.name == "h")
    assert h.params == 47_617 - 65 + 17_536
    relu = 256 + 128 + 64
    assert h.flops_per_sample == relu + sum(2 * (n * m + r * (n + m)) for n, m, r in
                                            ((24, 256, 16), (256, 128, 8), (128, 64, 4)))
    served = next(c.cost for c in explain(result.inference) if c.name == "h")
    assert served.params == sum(2 * (n * m + m) for n, m in ((24, 256), (256, 128), (128, 64)))
    assert served.flops_per_sample == relu + 2 * (24 * 256 + 256 * 128 + 128 * 64)
    model = cls()
    assert sum(p.numel() for n, p in model.named_parameters() if n.startswith("h_")) == h.params


# --- diagnostics ----------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "code", "label"), [
    (", rank = 9", "DW332", "must be 1 .. 8"),
    (", rank = 0", "DW332", "must be 1 .. 16"),
    (", rank = [4, 2, 1]", "DW333", "2 layers"),
    (", rank = 4, reduce = 8", "DW334", "ignored when 'rank' is given"),
    (", rank = 1/2", "DW301", ""),
    (", reduce = 0", "DW304", "is 0"),
    (", dropout = 1.0", "DW304", "is 1.0"),
])
def test_misuse_is_a_coded_diagnostic(options, code, label):
    (diagnostic,) = diagnostics_of(spec(options=options))
    assert diagnostic.code == code and diagnostic.help
    assert diagnostic.primary.message == label


def test_by_must_be_a_domain():
    text = spec().replace("by = d", "by = user")
    (diagnostic,) = diagnostics_of(text)
    assert diagnostic.code == "DW307" and "'mlora' needs a categorical scenario feature" in \
        diagnostic.message


def test_the_example_checks_and_lints_clean():
    from dwc.lint import LintConfig, lint_source
    from dwc.source import SourceFile

    path = ROOT / "examples" / "mlora.dw"
    assert lint_source(SourceFile(str(path), path.read_text()), LintConfig()) == []


# code -> (failing spec, (line, column) of the finding, passing spec), for tests/lint
LINT_CASES = {
    "DW522": (spec("[16]", options=", rank = 12"), (5, 5), spec("[16]", options=", rank = 4")),
    "DW523": (spec(domains=1), (5, 5), spec(domains=2)),
}


def test_two_stage_training_of_the_example(tmp_path):
    """`dwc train --two-stage 1` on examples/mlora.dw: epoch 1 trains the shared layers with
    every A[d], B[d], c[d] at its start; epoch 2 (from the best epoch-1 weights) changes only
    them. The same run stopped after epoch 1 (`--max-steps`) shows stage 1's end."""
    import json

    from dwc.cli import main
    from tests.conftest import compile_example

    data = tmp_path / "d.npz"
    assert main(["data", "generate", str(data), "--rows", "3000"]) == 0
    example = ROOT / "examples" / "mlora.dw"
    argv = ["train", str(example), "--data", str(data), "--batch-size", "256", "--patience", "5",
            "--epochs", "2", "--two-stage", "1"]
    assert main([*argv, "--out", str(tmp_path / "full")]) == 0
    metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert [e["stage"] for e in metrics["history"]] == [1, 2]
    steps = str(metrics["history"][0]["steps"])
    assert main([*argv, "--out", str(tmp_path / "one"), "--max-steps", steps]) == 0
    _, cls = compile_example(example)
    torch.manual_seed(0)  # TrainConfig's seed: the model dwc train starts from
    start = cls(validate_inputs=False).state_dict()
    stage_one = torch.load(tmp_path / "one" / "last.pt", weights_only=True)["model"]
    final = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    adapters = [k for k in final if k.endswith(("domain_a", "domain_b", "domain_bias"))]
    assert len(adapters) == 9
    for key, value in final.items():
        if key in adapters:
            assert torch.equal(stage_one[key], start[key]), key  # frozen in stage 1
            assert not torch.equal(value, start[key]), key  # trained in stage 2
        else:
            assert not torch.equal(stage_one[key], start[key]), key  # trained in stage 1
            assert torch.equal(value, stage_one[key]), key  # frozen in stage 2
