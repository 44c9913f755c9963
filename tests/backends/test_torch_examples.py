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

    def test_id_out_of_vocabulary_is_named(self):
        model, cls = self.model()
        inputs = cls.example_inputs(2)
        inputs["category"][0] = 200
        with pytest.raises(ValueError, match=r"'category' has ids outside \[0, 200\)"):
            model(inputs)

    def test_validation_can_be_switched_off(self):
        _, cls = self.model()
        model = cls(validate_inputs=False)
        model.eval()
        assert model(cls.example_inputs(3))["ctr"].shape == (3, 1)
