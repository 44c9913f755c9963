"""The data options of the language (column, encoding, min_count, fill, splitter, an output's
column): checked with coded diagnostics, kept by `dwc fmt` and `--resolved`, and never part of the
compiled model."""

from __future__ import annotations

import re

import pytest

from dwc.diagnostics import DiagnosticError
from dwc.driver import check_data_source, compile_source
from dwc.fmt import format_spec, resolve
from dwc.parse import parse
from dwc.source import SourceFile

PLAIN = """\
model m

feature user_id : categorical(vocab = 100, dim = 8)
feature other   : categorical(share = user_id)
feature clicks  : sequence(user_id, max_len = 5)
feature price   : numeric(width = 2)
feature country : categorical(vocab = 4, dim = 2) scenario

scenarios country

condition z = concat(country)

x = concat(user_id, other, clicks, price)
h = mlp(x, [8]) dynamic(by = z)
output ctr = sigmoid(linear(h, 1)) loss = bce
"""

WITH_OPTIONS = PLAIN.replace(
    "categorical(vocab = 100, dim = 8)",
    'categorical(vocab = 100, dim = 8, column = "uid # not a comment", encoding = hash)').replace(
    "max_len = 5)", 'max_len = 5, splitter = "\\t", column = "seq")').replace(
    "numeric(width = 2)", 'numeric(width = 2, fill = -1.5)').replace(
    "categorical(vocab = 4, dim = 2)", "categorical(vocab = 4, dim = 2, min_count = 3)").replace(
    "loss = bce", 'loss = bce column = "click"')


def _model_py(text: str) -> str:
    source = compile_source(SourceFile("m.dw", text)).files["model.py"]
    # the spec's name and sha256 (of its text) are the only lines allowed to differ
    return re.sub(r'SPEC_SHA256 = "[0-9a-f]+"', "", re.sub(r"Spec: .*\n", "", source))


def test_data_options_do_not_change_the_compiled_model():
    assert WITH_OPTIONS != PLAIN
    assert _model_py(WITH_OPTIONS) == _model_py(PLAIN)


def test_the_data_spec_collects_the_options():
    _, data = check_data_source(SourceFile("m.dw", WITH_OPTIONS))
    user, other, clicks, price, country = data.features
    assert (user.column, user.encoding, user.vocabulary) == ("uid # not a comment", "hash",
                                                             "user_id")
    assert (other.column, other.encoding, other.vocabulary) == ("other", "hash", "user_id")
    assert (clicks.column, clicks.splitter, clicks.max_len, clicks.vocabulary) == (
        "seq", "\t", 5, "user_id")
    assert (price.fill, price.width) == (-1.5, 2)
    assert country.min_count == 3 and country.scenario
    assert [(t.name, t.column, t.loss, t.width) for t in data.targets] == [
        ("ctr", "click", "bce", 1)]
    assert set(data.vocabularies) == {"user_id", "country"}


def test_fmt_and_resolved_keep_the_options():
    source = SourceFile("m.dw", WITH_OPTIONS)
    formatted = format_spec(parse(source), source)
    assert 'column = "uid # not a comment"' in formatted and 'splitter = "\\t"' in formatted
    assert formatted.count("# not a comment") == 1  # a '#' in a string is not a comment
    assert 'loss = bce column = "click"' in formatted
    again = SourceFile("m.dw", formatted)
    assert format_spec(parse(again), again) == formatted
    resolved = format_spec(resolve(parse(source)), source)
    assert 'splitter = "\\t"' in resolved and "fill = -1.5" in resolved
    assert "encoding = vocabulary, min_count = 3" in resolved.replace(
        "min_count = 3, frozen = false, encoding = vocabulary", "encoding = vocabulary, "
        "min_count = 3")
    plain = format_spec(resolve(parse(SourceFile("p.dw", PLAIN))), SourceFile("p.dw", PLAIN))
    assert 'splitter = "^"' in plain and "fill = 0.0" in plain
    assert "categorical(share = user_id, frozen = false)" in plain  # the table's options
    _, data = check_data_source(SourceFile("r.dw", resolved))
    assert data == check_data_source(source)[1]
    assert _model_py(resolved) == _model_py(PLAIN)


@pytest.mark.parametrize("change, code, marked", [
    (('column = "uid"', 'column = ""'), "DW342", '""'),
    (('column = "uid"', "column = uid"), "DW301", "uid"),
    (("dim = 2)", 'dim = 2, splitter = "^")'), "DW206", "splitter"),
    (("categorical(share = user_id)", "categorical(share = user_id, encoding = vocabulary)"),
     "DW343", "vocabulary"),
    (("vocab = 4, dim = 2)", "vocab = 1, dim = 2, encoding = hash)"), "DW344", "1"),
    (('column = "uid"', 'column = "uid", min_count = 5'), "DW345", "5"),
    (("loss = bce", 'loss = bce column = "uid"'), "DW346", '"uid"'),
    (("loss = bce", 'loss = bce column = ""'), "DW342", '""'),
    (("max_len = 5)", "max_len = 5, splitter = 3)"), "DW301", "3"),
])
def test_bad_data_options_are_coded_with_spans(change, code, marked):
    text = PLAIN.replace("categorical(vocab = 100, dim = 8)",
                         'categorical(vocab = 100, dim = 8, column = "uid", encoding = hash)')
    text = text.replace(*change)
    assert text != PLAIN
    with pytest.raises(DiagnosticError) as caught:
        check_data_source(SourceFile("m.dw", text))
    found = [d for d in caught.value.diagnostics if d.code == code]
    assert found, [d.code for d in caught.value.diagnostics]
    span = found[0].span
    assert text[span.start:span.end] == marked
    assert found[0].help


def test_strings_are_no_network_values():
    text = PLAIN.replace("h = mlp(x, [8])", 'h = mlp("x", [8])')
    with pytest.raises(DiagnosticError) as caught:
        check_data_source(SourceFile("m.dw", text))
    assert [d.code for d in caught.value.diagnostics] == ["DW307"]


def test_column_is_a_reserved_word():
    with pytest.raises(DiagnosticError) as caught:
        parse(SourceFile("m.dw", PLAIN.replace("h = mlp", "column = mlp").replace(
            "linear(h,", "linear(column,")))
    assert caught.value.diagnostics[0].code == "DW106"


def test_a_suppression_inside_a_string_suppresses_nothing():
    from dwc.lint import lint_source
    from dwc.lint.runner import LintConfig

    unused = PLAIN.replace("feature price", 'feature spare   : numeric(column = "# dwc: ignore")\n'
                           "feature price")
    codes = [d.code for d in lint_source(SourceFile("m.dw", unused), LintConfig())]
    assert "DW501" in codes  # 'spare' is unused, and the '#' is part of its column's name
    quiet = unused.replace('"# dwc: ignore")', '")  # dwc: ignore[DW501]').replace(
        'column = ")', 'column = "x")')
    assert "DW501" not in [d.code for d in lint_source(SourceFile("m.dw", quiet), LintConfig())]
