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
