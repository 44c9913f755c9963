"""Malformed specs: each gives its expected code at the expected line and column, no traceback."""

from __future__ import annotations

import pytest

from tests.conftest import diagnostics_of, source_of

HEADER = "model m\nfeature a : categorical(vocab = 10, dim = 4)\n"
VALID_TAIL = "\noutput y = sigmoid(linear(a, 1)) loss = bce\n"

# (id, spec text, code, line, column) -- line/column of the primary span, 1-based.
CASES = [
    ("missing-comma-args", "model m\nfeature a : categorical(vocab = 3 dim = 4)\n", "DW103", 2, 35),
    ("missing-comma-list", HEADER + "h = mlp(a, [8 4])\n", "DW103", 3, 15),
    ("unmatched-paren", HEADER + "h = linear(a, 4))\n", "DW104", 3, 17),
    ("unmatched-bracket", HEADER + "h = mlp(a, [8]])\n", "DW104", 3, 15),
    ("unexpected-char", HEADER + "h = linear(a, 4) $\n", "DW101", 3, 18),
    ("unexpected-eof", HEADER + "h = linear(a, 4\n", "DW102", 3, 15),
    ("missing-equals", HEADER + "h linear(a, 4)\n", "DW105", 3, 3),
    ("reserved-word-let", HEADER + "model = linear(a, 4)\n", "DW106", 3, 1),
    ("reserved-word-feature", "model m\nfeature output : numeric\n", "DW106", 2, 9),
    ("statement-expected", HEADER + "42\n", "DW107", 3, 1),
    ("empty-option", HEADER + "h = linear(a, out = )\n", "DW100", 3, 21),
    ("unknown-name", HEADER + "h = linear(b, 4)" + VALID_TAIL, "DW201", 3, 12),
    ("did-you-mean", HEADER + "h = linear(aa, 4)" + VALID_TAIL, "DW201", 3, 12),
    ("duplicate-name", HEADER + "h = linear(a, 4)\nh = linear(a, 2)" + VALID_TAIL, "DW202", 4, 1),
    ("use-before-def", HEADER + "g = linear(h, 4)\nh = linear(a, 4)" + VALID_TAIL, "DW203", 3, 12),
    ("no-model", "feature a : numeric\noutput y = sigmoid(linear(a, 1))\n", "DW204", 1, 1),
    ("unknown-layer", HEADER + "h = mpl(a, [4])" + VALID_TAIL, "DW205", 3, 5),
    ("unknown-feature-kind", "model m\nfeature a : categorial(vocab = 3, dim = 2)\n", "DW205", 2, 13),
    ("unknown-option", HEADER + "h = mlp(a, [4], activation = relu)" + VALID_TAIL, "DW206", 3, 17),
    ("no-outputs", HEADER + "h = linear(a, 4)\n", "DW207", 1, 7),
    ("input-collision", "model m\nfeature a : categorical(vocab = 3, dim = 2)\n"
     "feature s : sequence(a, max_len = 4)\nfeature s_len : numeric" + VALID_TAIL, "DW208", 4, 9),
    ("wrong-type", HEADER + "h = linear(a, relu)" + VALID_TAIL, "DW301", 3, 15),
    ("missing-argument", "model m\nfeature a : categorical(vocab = 3)" + VALID_TAIL, "DW302", 2, 13),
    ("too-many-args", HEADER + "h = linear(a, 4, 5)" + VALID_TAIL, "DW303", 3, 18),
    ("out-of-range", "model m\nfeature a : categorical(vocab = 0, dim = 4)" + VALID_TAIL, "DW304", 2, 33),
    ("dropout-range", HEADER + "h = mlp(a, [4], dropout = 1.0)" + VALID_TAIL, "DW304", 3, 27),
    ("invalid-choice", HEADER + "h = mlp(a, [4], act = rleu)" + VALID_TAIL, "DW305", 3, 23),
    # prelu needs a learned slope no runtime helper has: it once ran silently as the identity
    ("no-prelu", HEADER + "h = mlp(a, [4], act = prelu)" + VALID_TAIL, "DW305", 3, 23),
    ("width-mismatch", HEADER + "h = add(a, linear(a, 3))" + VALID_TAIL, "DW306", 3, 12),
    ("slice-past-the-end", HEADER + "output y = sigmoid(slice(linear(a, 2), 2)) loss = bce\n",
     "DW304", 3, 40),
    ("softmax-one", HEADER + "output y = softmax(linear(a, 1)) loss = ce\n", "DW306", 3, 20),
    ("sequence-of-numeric", "model m\nfeature n : numeric\nfeature s : sequence(n, max_len = 3)"
     + VALID_TAIL.replace("(a", "(n"), "DW313", 3, 22),
    ("scenario-not-marked", HEADER + "scenarios a" + VALID_TAIL, "DW308", 3, 11),
    ("by-not-condition", HEADER + "h = linear(a, 4) dynamic(by = a)" + VALID_TAIL, "DW309", 3, 31),
    ("output-not-head", HEADER + "output y = linear(a, 1)\n", "DW310", 3, 12),
    ("unknown-loss", HEADER + "output y = sigmoid(linear(a, 1)) loss = bec\n", "DW310", 3, 41),
    ("modifier-on-concat", HEADER + "condition z = concat(a)\n", "DW314", 3, 15),
    ("dynamic-on-concat", "model m\nfeature a : categorical(vocab = 10, dim = 4) scenario\n"
     "condition z = concat(a)\nh = concat(a) dynamic(by = z)" + VALID_TAIL, "DW311", 4, 15),
    ("duplicate-option", HEADER + "h = linear(a, 4, bias = true, bias = false)" + VALID_TAIL,
     "DW312", 3, 31),
    ("share-dim-mismatch", HEADER + "feature b : categorical(share = a, dim = 8)" + VALID_TAIL,
     "DW313", 3, 42),
]


@pytest.mark.parametrize(("spec", "code", "line", "column"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_spec_reports_code_at_location(spec, code, line, column):
    diagnostics = diagnostics_of(spec)
    assert diagnostics, "expected a diagnostic"
    first = diagnostics[0]
    assert first.code == code, f"{first.code}: {first.message}"
    assert first.location(source_of(spec)) == (line, column), first.message
    assert first.help, "every diagnostic carries a help line"


def test_at_least_twenty_distinct_cases():
    assert len({c[2] for c in CASES}) >= 20


def test_did_you_mean_suggests_closest_name():
    (d,) = diagnostics_of(HEADER + "h = linear(aa, 4)" + VALID_TAIL)
    assert d.help == "did you mean 'a'?"


def test_independent_errors_are_all_reported():
    spec = HEADER + "h = linear(b, 4)\ng = mlp(a, [4], act = rleu)" + VALID_TAIL
    assert [d.code for d in diagnostics_of(spec)] == ["DW201", "DW305"]


def test_a_failed_statement_does_not_cascade_into_its_users():
    spec = HEADER + "h = linear(a, relu)\ng = mlp(h, [4])\noutput y = sigmoid(linear(g, 1))\n"
    assert [d.code for d in diagnostics_of(spec)] == ["DW301"]


def test_file_level_defaults_apply_and_are_checked():
    from tests.conftest import compile_text

    spec = ("model m\nfeature a : categorical(vocab = 10, dim = 8)\n"
            "feature s : categorical(vocab = 3, dim = 2) scenario\n"
            "defaults dynamic(hidden = [5]) apg(rank = 2)\ncondition z = concat(s)\n"
            "h = mlp(a, [6, 4]) dynamic(by = z) apg(overparam = 2x)\n"
            "output y = sigmoid(linear(h, 1))\n")
    result, _ = compile_text(spec)
    gens = [op for op in result.graph.ops if op.kind == "generator"]
    assert [g.hidden for g in gens] == [(5,), (5,)]
    assert [op.rank for op in result.graph.ops if op.kind == "lowrank_dynamic_linear"] == [2, 2]
    bad = spec.replace("hidden = [5]", "hiden = [5]")
    (d,) = diagnostics_of(bad)
    assert d.code == "DW206" and d.help == "did you mean 'hidden'?"
