"""`dwc fmt`: canonical, idempotent, AST-preserving, comment-preserving."""

from __future__ import annotations

import dataclasses

import pytest

from dwc.fmt import format_spec
from dwc.parse import parse
from dwc.source import Span
from tests.conftest import EXAMPLES, example_ids, source_of


def _strip_spans(node):
    """The AST with spans and comments erased, for structural comparison."""
    if isinstance(node, Span):
        return None
    if dataclasses.is_dataclass(node):
        return (type(node).__name__,) + tuple(
            _strip_spans(getattr(node, f.name)) for f in dataclasses.fields(node)
            if f.name != "comments")
    if isinstance(node, tuple | list):
        return tuple(_strip_spans(n) for n in node)
    return node


def fmt(text: str) -> str:
    source = source_of(text)
    return format_spec(parse(source), source)


@pytest.mark.parametrize("path", EXAMPLES, ids=example_ids())
def test_examples_are_canonical_and_round_trip(path):
    text = path.read_text()
    assert fmt(text) == text
    assert _strip_spans(parse(source_of(fmt(text)))) == _strip_spans(parse(source_of(text)))


def test_messy_spec_is_normalised_and_idempotent():
    messy = (
        "# header\n\n\n\nmodel   m   # the model\nfeature a:categorical(vocab=1_000,dim=4)\n"
        "feature longer_name : numeric scenario\nx=mlp(a,[8,\n  # inside\n 4],act=tanh)"
        "  dynamic( by=z )\noutput y=sigmoid(linear(x,1))   loss=bce\n"
    )
    once = fmt(messy)
    assert once == (
        "# header\n\nmodel m  # the model\n"
        "feature a           : categorical(vocab = 1_000, dim = 4)\n"
        "feature longer_name : numeric scenario\n"
        "# inside\nx = mlp(a, [8, 4], act = tanh) dynamic(by = z)\n"
        "output y = sigmoid(linear(x, 1)) loss = bce\n"
    )
    assert fmt(once) == once
    assert _strip_spans(parse(source_of(once))) == _strip_spans(parse(source_of(messy)))


def test_every_comment_survives():
    text = "# a\nmodel m  # b\n# c\nx = f(y)  # d\n# e\n"
    out = fmt(text)
    for mark in "abcde":
        assert f"# {mark}" in out


@pytest.mark.parametrize("path", EXAMPLES, ids=example_ids())
def test_resolved_spec_compiles_to_the_same_model(path):
    """`dwc fmt --resolved` writes out every default: the result checks, is formatted, and
    compiles to the same code (one statement per line, so the line comments agree; only the
    header's spec hash differs)."""
    from dwc.driver import compile_source
    from dwc.fmt import resolve
    from dwc.source import SourceFile

    source = source_of(path.read_text(), path.name)
    resolved = format_spec(resolve(parse(source)), source)
    again = SourceFile(source.name, resolved)
    assert format_spec(parse(again), again) == resolved
    def code(src):  # the header names the spec's own hash, which differs by construction
        text = compile_source(src).files["model.py"]
        return [line for line in text.splitlines() if "sha256" not in line.lower()]

    assert code(again) == code(source)
    if path.stem == "apg":
        assert "act = relu, last_act = true, norm = none, dropout = 0.0" in resolved
        assert "apg(rank = [32, 16, 8], overparam = 4x, share = true" in resolved


def test_resolved_uses_the_defaults_line_and_refuses_check(tmp_path, capsys):
    from dwc.cli import main

    spec = tmp_path / "m.dw"
    spec.write_text("model m\nfeature a : categorical(vocab = 10, dim = 4)\n"
                    "feature s : categorical(vocab = 3, dim = 2) scenario\n"
                    "condition z = concat(s)\ndefaults dynamic(hidden = [8])\n"
                    "h = linear(a, 4) dynamic(by = z)\noutput y = sigmoid(linear(h, 1)) loss = bce\n")
    assert main(["fmt", "--resolved", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "h = linear(a, 4, bias = true) dynamic(by = z, hidden = [8], act = relu" in out
    assert spec.read_text().count("bias") == 0  # printed, never rewritten
    assert main(["fmt", "--resolved", "--check", str(spec)]) == 2
