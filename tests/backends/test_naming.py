"""The namespace helper: identifiers never collide with Python, torch or the generated file."""

from __future__ import annotations

import keyword

import torch
from torch import nn

from dwc.backends.torch.naming import NN_MODULE_ATTRIBUTES, Namespace, attribute_namespace
from tests.conftest import compile_text


def test_nn_module_attribute_list_covers_installed_torch():
    public = {n for n in dir(nn.Module()) if not n.startswith("_")}
    assert public <= NN_MODULE_ATTRIBUTES


def test_keywords_builtins_and_module_attributes_are_renamed():
    ns = attribute_namespace()
    for hint in ["class", "forward", "training", "to", "print", "torch", "self", "_modules"]:
        name = ns.create(hint)
        assert name.isidentifier() and not keyword.iskeyword(name)
        assert name not in NN_MODULE_ATTRIBUTES and not name.startswith("_")


def test_same_key_same_name_and_no_duplicates():
    ns = Namespace()
    assert ns.create("h.fc0", key="a") == ns.create("h.fc0", key="a")
    assert ns.create("h_fc0", key="b") != ns["a"]


HOSTILE = """
model class
feature forward : categorical(vocab = 5, dim = 2)
feature self    : categorical(vocab = 3, dim = 2) scenario
feature torch   : numeric(width = 2)
feature import  : sequence(forward, max_len = 3)
condition training = concat(self)
to     = concat(forward, torch, import)
lambda = mlp(to, [4], act = tanh) dynamic(by = training)
output return = sigmoid(linear(lambda, 1))
"""


def test_spec_names_that_collide_with_python_still_compile_and_run():
    result, cls = compile_text(HOSTILE)
    model = cls()
    out = model(cls.example_inputs(5))
    assert out["return"].shape == (5, 1)
    keys = set(model.state_dict())
    assert "forward_embedding.weight" in keys and "lambda_generator.0.weight" in keys
    loss = model.loss(cls.example_inputs(5), cls.example_targets(5))
    loss.backward()
    assert torch.isfinite(loss)
