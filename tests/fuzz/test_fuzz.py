"""Property-based fuzzing of the front end, the checker, the linter and the torch backend.

Over 10,000 specs per run (the counts are asserted below): mutated examples, generated valid
specs, and hostile names and comments. Every outcome must be a success or coded diagnostics, never
an uncaught exception; every generated module must compile, and a sample of them must run.
"""

from __future__ import annotations

import keyword
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dwc.diagnostics import CODES, DiagnosticError
from dwc.driver import compile_source
from dwc.lint import LintConfig, lint_source
from dwc.source import SourceFile
from tests.conftest import EXAMPLES, load_module

pytestmark = pytest.mark.slow

SPECS = [p.read_text() for p in EXAMPLES]
TOKEN = re.compile(r"\s+|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|\d+x|\d+/\d+|[\d_.]+|.", re.S)
POOL = sorted({t for s in SPECS for t in TOKEN.findall(s) if t.strip()}) + [
    "self", "scenario", "dynamic(by = z)", "apg(rank = 2)", "-1", "0", "1e309", "1/0", "0x",
    "[]", "()", ",", "=", "forward", "class", "__init__", "torch", "import", "\n", '"', "'",
    "\\", "$", "é", "\t",
]
RUNS = {"mutated": 0, "generated": 0, "hostile": 0, "executed": 0}
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def outcome(text: str):
    """Compile and lint; returns the generated source or None. Fails on any non-diagnostic error."""
    source = SourceFile("fuzz.dw", text)
    try:
        result = compile_source(source)
    except DiagnosticError as error:
        for d in error.diagnostics:
            assert d.code in CODES and d.help, (d.code, d.message)
        result = None
    for d in lint_source(source, LintConfig()):
        assert d.code in CODES
    return None if result is None else result.files["model.py"]


@settings(max_examples=7200, **SETTINGS)
@given(spec=st.sampled_from(SPECS), edits=st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 2), st.sampled_from(POOL)),
    min_size=1, max_size=4))
def test_mutated_examples(spec, edits):
    RUNS["mutated"] += 1
    tokens = TOKEN.findall(spec)
    for position, action, token in edits:
        i = position % len(tokens)
        if action == 0:
            del tokens[i]
        elif action == 1:
            tokens[i] = token
        else:
            tokens.insert(i, token + " ")
    outcome("".join(tokens))


NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda n: n not in {"model", "feature", "scenario", "scenarios", "condition", "output",
                        "defaults", "dynamic", "apg", "loss", "weight", "self"})
LAYERS = st.sampled_from([
    "mlp({x}, [{w}])", "linear({x}, {w})", "mlp({x}, [{w}, 4]) dynamic(by = z)",
    "linear({x}, {w}) dynamic(by = z, hidden = [3])",
    "mlp({x}, [{w}, 4]) dynamic(by = z) apg(rank = 2, overparam = 2x)",
    "mlp({x}, [{w}]) dynamic(by = self) apg(rank = 1/2)",
    "linear({x}, {w}) dynamic(by = concat(self, z)) apg(rank = 2, share = false)",
    # stacked self-wise layers (a polynomial of degree 4 per unshared APG layer): their default
    # generator init must keep a stack of them finite
    "mlp({x}, [{w}, 4]) dynamic(by = self) apg(rank = 2, share = false)",
    "mlp({x}, [{w}, 6]) dynamic(by = concat(self, z))",
    "ppnet({x}, [{w}], by = z, placement = post_activation)", "gate({x}, by = z)",
    "lhuc(mlp({x}, [{w}]), by = scenario)", "star({x}, [{w}], by = scenario)",
    "partitioned_norm({x}, by = s)", "layer_norm({x})", "dropout({x}, 0.2)",
    "add({x}, {x})", "stop_gradient({x})", "activation({x}, tanh)",
    "meta_attention(experts({x}, 2, [{w}]), by = z)",
])


@st.composite
def valid_specs(draw):
    names = draw(st.lists(NAMES, min_size=3, max_size=6, unique=True))
    lines = ["model " + names[0],
             "feature s : categorical(vocab = 3, dim = 2) scenario",
             f"feature {names[1]} : categorical(vocab = {draw(st.integers(1, 50))}, "
             f"dim = {draw(st.integers(1, 6))})",
             f"feature {names[2]} : numeric(width = {draw(st.integers(1, 3))})",
             "scenarios s", "condition z = concat(s)",
             f"v0 = concat({names[1]}, {names[2]})"]
    current = "v0"
    for i, layer in enumerate(draw(st.lists(LAYERS, min_size=1, max_size=4)), start=1):
        width = draw(st.integers(2, 9))
        lines.append(f"v{i} = " + layer.format(x=current, w=width))
        current = f"v{i}"
    head = draw(st.sampled_from(["sigmoid(linear({x}, 1)) loss = bce",
                                 "exp(linear({x}, 1)) loss = poisson",
                                 "softmax(linear({x}, 3)) loss = ce",
                                 "identity(linear({x}, 2)) loss = mse"]))
    lines.append("output " + names[3 % len(names)] + "_out = " + head.format(x=current))
    return "\n".join(lines) + "\n"


@settings(max_examples=2800, **SETTINGS)
@given(spec=valid_specs(), run=st.integers(0, 19))
def test_generated_specs_compile_and_run(spec, run):
    RUNS["generated"] += 1
    generated = outcome(spec)
    if generated is None:
        return  # e.g. a rank that does not fit: a diagnostic is a fine outcome
    if run == 0:  # execute one in twenty: forward and backward at two batch sizes
        RUNS["executed"] += 1
        module = load_module(generated, "fuzz")
        cls = next(v for v in vars(module).values() if hasattr(v, "for_inference")
                   and isinstance(v, type) and v.__module__ == module.__name__)
        torch.manual_seed(0)  # reproducible, so hypothesis can replay a failure
        model = cls()
        for batch in (1, 5):
            g = torch.Generator().manual_seed(batch)
            loss = model.loss(cls.example_inputs(batch, g), cls.example_targets(batch, g))
            assert torch.isfinite(loss)
            loss.backward()
        model.eval()
        x = cls.example_inputs(3, torch.Generator().manual_seed(3))
        with torch.no_grad():
            a, b = model(x), model.for_inference()(x)
        for k in a:  # relative: an exp (Poisson) head magnifies float reassociation
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)


HOSTILE = st.sampled_from([
    "self", "torch", "nn", "F", "forward", "inputs", "outputs", "logits", "total", "to", "type",
    "training", "cuda", "parameters", "state_dict", "print", "exec", "eval", "__import__", "os",
    "sys", "_modules", "__class__", "__dict__", "v_self", "INPUTS", "OUTPUTS", "loss", "l", "I",
    *keyword.kwlist, *keyword.softkwlist, "example_inputs", "check_inputs", "for_inference",
])


@settings(max_examples=700, **SETTINGS)
@given(a=HOSTILE, b=HOSTILE, c=HOSTILE, comment=st.sampled_from([
    '"""; import os; os.system("echo pwned")', "\\'; raise SystemExit", "\x00", "# nested",
    "'''", "{{ v }}", "{% raw %}", "\u202e reversed"]))
def test_hostile_names_and_comments(a, b, c, comment):
    RUNS["hostile"] += 1
    if len({a, b, c}) < 3:
        return
    spec = (f"# {comment}\nmodel {a}  # {comment}\n"
            f"feature {b} : categorical(vocab = 5, dim = 2) scenario\n"
            f"feature {c} : numeric\ncondition zz = concat({b})\n"
            f"h = mlp(concat({b}, {c}), [3]) dynamic(by = zz)  # {comment}\n"
            f"output out_{a} = sigmoid(linear(h, 1))\n")
    generated = outcome(spec)
    if generated is None:
        return  # a reserved word: rejected with a diagnostic
    assert "pwned" not in generated and "SystemExit" not in generated and "{%" not in generated
    compile(generated, "<fuzz>", "exec")


def test_ran_more_than_ten_thousand_specs():
    """Runs last in this module (pytest keeps file order): the counts above add up."""
    total = RUNS["mutated"] + RUNS["generated"] + RUNS["hostile"]
    if total == 0:
        pytest.skip("run together with the fuzz tests above")
    assert total >= 10_000, RUNS
    assert RUNS["executed"] >= 50, RUNS
