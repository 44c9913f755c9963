"""DW515: stacked self-wise layers whose generators start with init = default or hyperfan (their
scale compounds from layer to layer); the default for self-wise generators (residual) is clean."""

from __future__ import annotations

import pytest

from dwc.lint import LintConfig, lint_source
from dwc.source import SourceFile
from tests.conftest import diagnostics_of
from tests.lint.test_rules import BASE, OUT


def dw515(body: str):
    text = BASE + body + OUT
    assert diagnostics_of(text) == [], body
    source = SourceFile("case.dw", text)
    return source, [d for d in lint_source(source, LintConfig()) if d.code == "DW515"]


@pytest.mark.parametrize("body", [
    "h = mlp(concat(a, b), [8, 8]) dynamic(by = self, init = default)\n",
    "h = mlp(concat(a, b), [8, 8, 8]) dynamic(by = self, init = hyperfan)\n",
    "h = mlp(concat(a, b), [8, 8]) dynamic(by = concat(self, z), init = hyperfan)\n",  # mix-wise
    "h = mlp(concat(a, b), [8, 8]) dynamic(by = self, init = default) apg(rank = 2)\n",
    "h = mlp(concat(a, b), [8, 8]) dynamic(by = self, init = hyperfan) apg(rank = 2, share = false)\n",
])
def test_fires_on_a_stack_in_one_statement(body):
    source, [found] = dw515(body)
    init = "default" if "init = default" in body else "hyperfan"
    depth = body.count(", 8") + 1
    assert found.message.startswith(f"'h' stacks {depth} self-wise layers with init = {init}: ")
    assert source.text[found.span.start:found.span.end] == f"init = {init}"
    assert f"drop 'init = {init}'" in found.help and "'init = residual'" in found.help


@pytest.mark.parametrize("body", [
    "h = mlp(concat(a, b), [8, 8]) dynamic(by = self)\n",                       # the default
    "h = mlp(concat(a, b), [8, 8]) dynamic(by = self, init = residual)\n",
    "h = mlp(concat(a, b), [8, 8]) dynamic(by = concat(self, z))\n",
    "h = mlp(concat(a, b), [8, 8]) dynamic(by = self) apg(rank = 2)\n",
    "h = linear(concat(a, b), 8) dynamic(by = self, init = default)\n",         # one layer
    "h = mlp(concat(a, b), [8, 8], norm = layer) dynamic(by = self, init = default)\n",  # bounded
    "h = mlp(concat(a, b), [8, 8]) dynamic(by = z, init = default)\n",          # group-wise
    "h1 = linear(concat(a, b), 8) dynamic(by = self)\n"                         # residual below
    "h = linear(h1, 8) dynamic(by = self, init = default)\n",
])
def test_silent_on_the_default_and_on_what_is_not_a_stack(body):
    assert dw515(body)[1] == []


def test_a_stack_over_statements_is_reported_at_each_written_init():
    body = ("h1 = linear(concat(a, b), 8) dynamic(by = self, init = hyperfan)\n"
            "h2 = linear(h1, 8) dynamic(by = self, init = hyperfan) apg(rank = 2)\n"
            "h = linear(h2, 8) dynamic(by = self, init = default)\n")
    source, found = dw515(body)
    assert [source.location(d.span.start)[0] for d in found] == [7, 8, 9]
    assert found[0].message.startswith("'h1' is in a stack of 3 self-wise layers ('h1', 'h2', "
                                       "'h') with init = default or hyperfan: ")
    # following the advice everywhere leaves no finding
    assert dw515(body.replace(", init = hyperfan", "").replace(", init = default", ""))[1] == []


def test_an_init_from_defaults_points_at_both():
    source, found = dw515("defaults dynamic(init = hyperfan)\n"
                          "h1 = linear(concat(a, b), 8) dynamic(by = self)\n"
                          "h = linear(h1, 8) dynamic(by = self)\n")
    assert len(found) == 2
    assert source.text[found[1].span.start:found[1].span.end] == "dynamic(by = self)"
    assert [source.text[lab.span.start:lab.span.end] for lab in found[1].secondary] == [
        "init = hyperfan"]
    assert "drop 'init = hyperfan' from 'defaults'" in found[1].help


def test_the_warning_is_what_training_would_meet():
    """The measured case: 5 self-wise layers on numeric inputs of scale 100 give NaN at the first
    forward with init = default, and stay finite with the default (residual)."""
    torch = pytest.importorskip("torch")
    from tests.conftest import compile_text

    spec = ("model m\nfeature n : numeric(width = 16)\nfeature c : categorical(vocab = 10, dim = 16)"
            "\nh = mlp(concat(n, c), [32, 32, 32, 32, 32]) dynamic(by = self INIT)\n"
            "output y = identity(linear(h, 1)) loss = mse\n")
    for init, finite in ((", init = default", False), ("", True)):
        text = spec.replace("INIT", init)
        found = [d for d in lint_source(SourceFile("m.dw", text), LintConfig()) if d.code == "DW515"]
        assert bool(found) != finite
        _, cls = compile_text(text)
        torch.manual_seed(0)
        inputs = cls.example_inputs(256, torch.Generator().manual_seed(0))
        inputs["n"] = inputs["n"] * 100
        with torch.no_grad():
            assert bool(torch.isfinite(cls()(inputs)["y"]).all()) == finite, init
