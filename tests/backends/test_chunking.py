"""Large batches in chunks: the inference form of a model that materialises thousands of floats
per sample runs a large batch chunk by chunk, computing exactly what the whole batch does; light
forms and forms that group the batch by cell never chunk; tracing and export see one batch."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch

from dwc import cost
from tests.conftest import ROOT, compile_example, compile_text


def _peer_case(name: str) -> str:
    """A spec of benchmarks/peer_cases.py (the peers benchmark's cases), read from its file."""
    spec = importlib.util.spec_from_file_location("peer_cases", ROOT / "benchmarks" /
                                                  "peer_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


# the peers case whose APG condition reads a user id: every sample generates its cores
APG_USER = _peer_case("APG_USER")


def test_chunk_rows_follow_what_a_sample_materialises():
    apg_user, _ = compile_text(APG_USER, "apg_user_bench.dw")
    per_sample = cost.total(apg_user.inference).activation_floats_per_sample
    rows = cost.chunk_rows(apg_user.inference)
    assert per_sample > 1792  # the generated cores count
    assert rows == 2048 and rows * per_sample <= cost.CHUNK_BUDGET_FLOATS < 2 * rows * per_sample
    can, _ = compile_example(ROOT / "examples" / "can.dw")
    # 50 steps of micro-MLP activations per sample (its input batch norm folded away)
    per_sample = cost.total(can.inference).activation_floats_per_sample
    rows = cost.chunk_rows(can.inference)
    assert rows == 1024 and rows * per_sample <= cost.CHUNK_BUDGET_FLOATS < 2 * rows * per_sample
    for light in ("ctr_mlp", "ppnet", "star", "m2m"):  # star and m2m group the batch by cell
        result, _ = compile_example(ROOT / "examples" / f"{light}.dw")
        assert cost.chunk_rows(result.inference) is None, light
        assert "CHUNK_ROWS" not in result.files["model.py"], light


@pytest.fixture(scope="module")
def can():
    _, cls = compile_example(ROOT / "examples" / "can.dw")
    torch.manual_seed(0)
    served = cls().eval().for_inference()
    assert served.CHUNK_ROWS == 1024
    return cls, served


@pytest.mark.parametrize("tail", [37, 1])  # a ragged last chunk, a last chunk of one row
def test_a_chunked_batch_computes_what_the_whole_batch_does(can, tail):
    cls, served = can
    batch = 2 * served.CHUNK_ROWS + tail
    inputs = cls.example_inputs(batch, torch.Generator().manual_seed(3))
    inputs["request_id"] = "r-17"  # a key the model does not read passes through unsliced
    with torch.no_grad():
        chunked = served(inputs)
        whole, _ = served._forward(inputs)
        rows = [served._forward({k: v[i:i + 1] for k, v in inputs.items()})[0]
                for i in (0, served.CHUNK_ROWS, batch - 1)]  # a row alone, in each chunk
    assert chunked.keys() == whole.keys()
    for name, value in chunked.items():
        assert value.shape == whole[name].shape == (batch, 1)
        torch.testing.assert_close(value, whole[name], rtol=1e-5, atol=1e-6)
        for row, index in zip(rows, (0, served.CHUNK_ROWS, batch - 1), strict=True):
            torch.testing.assert_close(value[index:index + 1], row[name], rtol=1e-5, atol=1e-6)


def test_bad_inputs_are_rejected_before_any_chunk_runs(can, monkeypatch):
    cls, served = can
    batch = 3 * served.CHUNK_ROWS
    calls = []
    original = served._forward
    monkeypatch.setattr(served, "_forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    inputs = cls.example_inputs(batch, torch.Generator().manual_seed(4))
    inputs["item_id"] = inputs["item_id"].clone()
    inputs["item_id"][-1] = 5000  # vocab 5000: out of range, in the last chunk only
    with pytest.raises(ValueError, match="item_id"):
        served(inputs)
    inputs = cls.example_inputs(batch, torch.Generator().manual_seed(4))
    inputs["category"] = inputs["category"][:-1]  # one row short
    with pytest.raises(ValueError,
                       match=rf"'category' has {batch - 1} rows, the inputs before it {batch}"):
        served(inputs)
    inputs["category"] = inputs["category"].tolist()
    with pytest.raises(ValueError, match="'category' must be a tensor, got list"):
        served(inputs)
    assert not calls  # nothing ran


def test_training_mode_runs_the_whole_batch(can, monkeypatch):
    cls, served = can
    batch = 2 * served.CHUNK_ROWS + 9
    inputs = cls.example_inputs(batch, torch.Generator().manual_seed(6))
    for module, expected in ((copy.deepcopy(served).train(), [batch]),
                             (copy.deepcopy(served), [served.CHUNK_ROWS] * 2 + [9])):
        rows = []  # the batch size of every _forward call
        original = module._forward
        monkeypatch.setattr(module, "_forward",
                            lambda part, *a, f=original, seen=rows, **k:
                            seen.append(len(part["user_id"])) or f(part, *a, **k))
        with torch.no_grad():
            module(inputs)
        assert rows == expected, module.training


def test_export_sees_one_unchunked_batch(can):
    cls, served = can
    from dwc.backends.export import InferenceModel, export_program

    served.validate_inputs = False
    try:
        im = InferenceModel(served, cls, list(cls.INPUTS), list(cls.OUTPUTS), "test")
        program = export_program(im, 8192)
    finally:
        served.validate_inputs = True
    batch = 2 * served.CHUNK_ROWS + 5
    inputs = cls.example_inputs(batch, torch.Generator().manual_seed(5))
    with torch.no_grad():
        exported = program.module()(*(inputs[n] for n in cls.INPUTS))[0]
        expected = served(inputs)["ctr"]
    # the batch stayed symbolic (no guard on the chunking's row test), so the program runs a
    # batch the chunked forward would have split, and agrees with it
    torch.testing.assert_close(exported, expected, rtol=1e-5, atol=1e-5)
