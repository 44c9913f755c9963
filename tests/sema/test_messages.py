"""Wording of semantic diagnostics (what a user reads under the carets)."""

from __future__ import annotations

import pytest

from tests.conftest import diagnostics_of

HEADER = "model m\nfeature a : categorical(vocab = 3, dim = 2)\n"


@pytest.mark.parametrize(("text", "label"), [
    (HEADER + "h = mpl(a, [4])\n", "not an operation"),
    ("model m\nfeature a : categorial(vocab = 3, dim = 2)\n", "not a feature kind"),
])
def test_unknown_call_label_uses_the_right_article(text, label):
    (diagnostic,) = [d for d in diagnostics_of(text) if d.code == "DW205"]
    assert diagnostic.primary.message == label


def test_a_model_without_parameters_is_an_error_not_a_crash_in_training():
    text = "model m\nfeature price : numeric\noutput o = identity(price) loss = mse\n"
    (diagnostic,) = diagnostics_of(text)
    assert diagnostic.code == "DW209" and "no parameters to train" in diagnostic.message
    assert diagnostic.help == "put a layer before the head, e.g. 'output o = identity(linear(price, 1))'"
