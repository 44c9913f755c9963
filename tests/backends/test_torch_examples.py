"""Every example compiles to a standalone torch module that runs, trains and serves."""

from __future__ import annotations

import ast as pyast
import subprocess
import sys

import pytest
import torch

from tests.conftest import EXAMPLES, ROOT, compile_example, example_ids

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(params=EXAMPLES, ids=example_ids())
def example(request):
    return compile_example(request.param)


def test_generated_code_imports_only_torch(example):
    result, _ = example
    tree = pyast.parse(result.files["model.py"])
    imported = set()
    for node in pyast.walk(tree):
        if isinstance(node, pyast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, pyast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"torch", "__future__"}


@pytest.mark.parametrize("batch", [1, 37])
def test_forward_at_any_batch_size(example, batch):
    result, cls = example
    torch.manual_seed(0)
    model = cls()
    model.eval()
    outputs = model(cls.example_inputs(batch, torch.Generator().manual_seed(1)))
    assert set(outputs) == {o.name for o in result.graph.outputs}
    for out in result.graph.outputs:
        value = outputs[out.name]
        assert value.shape == (batch, out.width)
        assert torch.isfinite(value).all()
        if out.head == "sigmoid":
            assert ((value > 0) & (value < 1)).all()


def test_one_optimizer_step_reduces_the_loss(example):
    _, cls = example
    torch.manual_seed(0)
    model = cls()
    g = torch.Generator().manual_seed(2)
    inputs, targets = cls.example_inputs(16, g), cls.example_targets(16, g)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    model.train()
    with torch.random.fork_rng():
        torch.manual_seed(3)
        before = model.loss(inputs, targets)
    before.backward()
    optimizer.step()
    with torch.random.fork_rng():
        torch.manual_seed(3)  # same dropout mask, so only the parameters changed
        after = model.loss(inputs, targets)
    assert after.item() < before.item()


def test_eval_output_of_a_sample_does_not_depend_on_its_batch(example):
    _, cls = example
    torch.manual_seed(0)
    model = cls()
    inputs = cls.example_inputs(9, torch.Generator().manual_seed(4))
    model.train()
    model.loss(inputs, cls.example_targets(9))  # moves any running statistics off their init
    model.eval()
    with torch.no_grad():
        full = model(inputs)
        alone = model({k: v[3:4] for k, v in inputs.items()})
    for name in full:
        torch.testing.assert_close(full[name][3:4], alone[name], rtol=1e-5, atol=1e-6)


def test_compiling_twice_is_byte_identical():
    for path in EXAMPLES:
        first, _ = compile_example(path)
        second, _ = compile_example(path)
        assert first.files == second.files


def test_generated_code_is_ruff_formatted(tmp_path):
    for path in EXAMPLES:
        result, _ = compile_example(path)
        (tmp_path / f"{path.stem}.py").write_text(result.files["model.py"])
    proc = subprocess.run([sys.executable, "-m", "ruff", "format", "--diff", "--line-length",
                           "100", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_golden_generated_code(golden):
    for path in EXAMPLES:
        result, _ = compile_example(path)
        golden(f"torch/{path.stem}.py", result.files["model.py"])


class TestInputValidation:
    def model(self):
        from tests.conftest import compile_text

        _, cls = compile_text((ROOT / "examples" / "ctr_mlp.dw").read_text())
        return cls(), cls

    def test_missing_feature_is_named(self):
        model, cls = self.model()
        inputs = cls.example_inputs(2)
        del inputs["item_id"]
        with pytest.raises(ValueError, match="missing input 'item_id'"):
            model(inputs)

    def test_wrong_dtype_is_named(self):
        model, cls = self.model()
        inputs = cls.example_inputs(2)
        inputs["price"] = inputs["price"].double()
        with pytest.raises(ValueError, match="'price' must be torch.float32"):
            model(inputs)

    def test_the_float_dtype_follows_conversions(self):
        """check_inputs keeps the module's float dtype between calls and reads it anew after
        `.double()` / `.float()`: a float64 module takes float64 numeric inputs, not float32."""
        model, cls = self.model()
        inputs = cls.example_inputs(2)
        model.check_inputs(inputs)  # the float32 dtype, now kept
        wide = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
        model.double()
        model.check_inputs(wide)
        with pytest.raises(ValueError, match="'price' must be torch.float64"):
            model.check_inputs(inputs)
        model.float()
        model.check_inputs(inputs)
        with pytest.raises(ValueError, match="'price' must be torch.float32"):
            model.check_inputs(wide)

    # a small CPU batch is range-checked in Python, a larger one by reductions: both paths
    @pytest.mark.parametrize("batch", [2, 64])
    @pytest.mark.parametrize("bad", [200, -1])
    def test_id_out_of_vocabulary_is_named(self, batch, bad):
        model, cls = self.model()
        inputs = cls.example_inputs(batch)
        inputs["category"][batch - 1] = bad
        with pytest.raises(ValueError, match=r"'category' has ids outside \[0, 200\)"):
            model(inputs)

    # a sequence's ids (B x max_len) on both paths, the bad id in the last sample's last slot
    @pytest.mark.parametrize("batch", [2, 64])
    @pytest.mark.parametrize("bad", [5000, -3])
    def test_sequence_id_out_of_vocabulary_is_named(self, batch, bad):
        model, cls = self.model()
        inputs = cls.example_inputs(batch)
        inputs["clicked"][batch - 1, -1] = bad
        with pytest.raises(ValueError, match=r"'clicked' has ids outside \[0, 5000\)"):
            model(inputs)

    @pytest.mark.parametrize("batch", [2, 64])
    def test_ids_at_the_vocabulary_edges_are_valid(self, batch):
        model, cls = self.model()
        inputs = cls.example_inputs(batch)
        inputs["category"][0], inputs["category"][-1] = 0, 199
        assert model.eval()(inputs)["ctr"].shape == (batch, 1)

    def test_validation_can_be_switched_off(self):
        _, cls = self.model()
        model = cls(validate_inputs=False)
        model.eval()
        assert model(cls.example_inputs(3))["ctr"].shape == (3, 1)

    @pytest.mark.parametrize("batch", [3, 64])
    @pytest.mark.parametrize("length", [-5, 21, 99])
    def test_sequence_length_outside_max_len_is_named(self, length, batch):
        model, cls = self.model()
        folded = model.eval().for_inference()
        inputs = cls.example_inputs(batch)
        inputs["clicked_len"][1] = length
        for form in (model, folded):
            with pytest.raises(ValueError, match=r"'clicked_len' has lengths outside 0 \.\. 20"):
                form(inputs)

    def test_sequence_lengths_zero_and_max_len_are_valid(self):
        model, cls = self.model()
        inputs = cls.example_inputs(2)
        inputs["clicked_len"] = torch.tensor([0, 20])
        assert torch.isfinite(model.eval()(inputs)["ctr"]).all()


@pytest.mark.parametrize("path", [ROOT / "examples" / n for n in ("apg.dw", "ctr_mlp.dw",
                                                                   "star.dw", "m2m.dw")],
                         ids=["apg", "ctr_mlp", "star", "m2m"])
def test_for_inference_keeps_the_dtype(path):
    """A float64 model folds to a float64 model: numeric inputs in float64 are accepted by both
    forms, and the folded weights are computed without a round trip through float32."""
    _, cls = compile_example(path)
    torch.manual_seed(0)
    model = cls().double().eval()
    inputs = cls.example_inputs(7, torch.Generator().manual_seed(1))
    inputs = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
    folded = model.for_inference()
    assert {p.dtype for p in folded.parameters()} == {torch.float64}
    with torch.no_grad():
        expected, actual = model(inputs), folded(inputs)
    for name, value in actual.items():
        assert value.dtype == torch.float64
        torch.testing.assert_close(value, expected[name], rtol=1e-10, atol=1e-12)


def test_line_comments_point_at_the_statement_they_name():
    """`# line N: name` sits above code lowered from spec line N, which defines or uses `name`
    (ops inserted by passes carry the span of the declaration they come from)."""
    import re

    for path in EXAMPLES:
        result, _ = compile_example(path)
        lines = path.read_text().splitlines()
        comments = re.findall(r"# line (\d+): (\w+)", result.files["model.py"])
        assert comments
        for number, name in comments:
            code = lines[int(number) - 1].split("#")[0]
            assert re.search(rf"\b{name}", code), (path.stem, number, name, lines[int(number) - 1])


@pytest.mark.parametrize("level", [0, 2])
def test_training_docstring_describes_the_code_after_it(level):
    """The resolved hyper-parameters are those of the optimised training graph the forward runs
    (-O2 decomposes APG's layers; -O0 keeps the naive form), not of the graph before the passes."""
    import re

    result, _ = compile_example(ROOT / "examples" / "apg.dw", level=level)
    training = result.files["model.py"].split("class ApgCtrInference")[0]
    docstring, code = training.split("def __init__", 1)
    documented = re.findall(r"decompose=(True|False)", docstring.split("Resolved")[1])
    called = re.findall(r"decompose=(True|False)", code)
    assert len(documented) == 3 and documented == called == [str(level > 0)] * 3


def test_apg_layers_with_a_static_bias_are_named_after_their_layer():
    from tests.conftest import compile_text

    spec = (ROOT / "examples" / "apg.dw").read_text().replace(
        "dynamic(by = z)", "dynamic(by = z, bias = static)")
    _, cls = compile_text(spec)
    model = cls()
    keys = set(model.state_dict())
    assert {"h_fc0.bias", "h_fc0.u_left", "h_fc2.v_right"} <= keys
    assert not any(k.startswith("h_bias") for k in keys)
    folded = set(model.eval().for_inference().state_dict())
    assert {"h_fc0.bias", "h_fc0.weight"} <= folded and not any("bias0" in k for k in folded)
    # a full-rank dynamic layer's static bias is a bare parameter: its name is unchanged
    dw = (ROOT / "examples" / "dw_mlp.dw").read_text().replace(
        "dynamic(by = z)", "dynamic(by = z, bias = static)")
    _, cls = compile_text(dw)
    model = cls()
    assert {"h_bias0", "h_bias1"} <= set(model.state_dict())
    assert {"h_fc0.weight", "h_fc0.bias"} <= set(model.eval().for_inference().state_dict())


def test_helpers_bring_the_helpers_they_call_transitively():
    from dwc.backends.torch.view import _helper_views

    assert [h.name for h in _helper_views({"mix"})] == ["mix", "softmax", "static"]
    assert [h.name for h in _helper_views({"scenario_linear"})] == [
        "per_domain", "scenario_linear", "static"]  # declared by importing them
