"""The layer registry: every kind found, complete, and its runtime helpers inlinable."""

from __future__ import annotations

import copy
import re

import pytest
import torch

from dwc import layers
from dwc.backends.torch.helpers import CORE
from dwc.backends.torch.inline import helper_source
from dwc.sema.signatures import SIGNATURES


def test_every_folder_is_a_registered_kind():
    import pkgutil

    folders = {i.name for i in pkgutil.iter_modules(layers.__path__) if i.ispkg}
    assert folders == set(layers.kinds()) and "lhuc" in folders


@pytest.mark.parametrize("name", sorted(layers.kinds()))
def test_a_kind_is_complete(name):
    kind = layers.kinds()[name]
    for sig in kind.signatures:
        assert SIGNATURES[sig.name] is sig
        assert sig.context in ("modifier", "feature") or sig.name in kind.lower, sig.name
        assert sig.context != "modifier" or sig.name in kind.modifiers, sig.name
    for op in kind.ops:
        assert op in kind.torch, f"{op.__name__} has no torch emitter"
    for helper, module in kind.helpers.items():
        code, needs = helper_source(module)
        compile(code, f"<{helper}>", "exec")
        known = {*layers.helper_modules().values(), *CORE.values()}
        assert all(n in known for n in needs), needs
    from dwc.diagnostics import CODES
    from dwc.lint import RULES

    for code in kind.codes:  # a kind's own codes and rules are in the registries
        assert CODES[code.code] is code
    for rule in kind.lint_rules:
        assert type(RULES[rule.code]) is rule


def test_kind_passes_place_themselves_in_the_pipeline(monkeypatch):
    """A pass with `after` joins -O2 right after that pass, behind passes placed there before
    it; fold-star and fuse-gates (kinds' passes) are placed that way. A pass following one not
    registered yet (fold-mlora, imported before fold-star) waits for it."""
    from dataclasses import dataclass

    from dwc.passes import base

    names = base.PIPELINES[2].split(",")
    assert names.index("fold-star") == names.index("fold-overparam") + 1
    assert names.index("fuse-gates") == names.index("fold-scenario-layers") + 1
    monkeypatch.setitem(base.PIPELINES, 2, "a,b,c")
    monkeypatch.setattr(base, "PASSES", dict(base.PASSES))
    monkeypatch.setattr(base, "_WAITING", [])

    def register(name, after):
        base.register(dataclass(frozen=True)(type(name, (base.Pass,), {
            "name": name, "stage": "inference", "after": after,
            "run": lambda self, graph: None})))

    register("after-second", "second-after-a")  # waits for its pass
    for name in ("first-after-a", "second-after-a"):
        register(name, "a")
    assert base.PIPELINES[2] == "a,first-after-a,second-after-a,after-second,b,c"
    register("lost", "nowhere")
    with pytest.raises(AssertionError, match="lost: 'after = nowhere' is not an -O2 pass"):
        base.pipeline_for(2)


def test_a_helper_module_is_real_python_and_inlines_without_its_imports():
    from dwc.layers.lhuc.runtime import _DwcLhuc

    gate = _DwcLhuc(conditions=3, width=4)
    x = torch.randn(5, 4)
    torch.testing.assert_close(gate(x, torch.tensor([0, 1, 2, 0, 1])), x)  # every gate starts at 1
    code, needs = helper_source("dwc.layers.lhuc.runtime")
    assert code.startswith("class _DwcLhuc(nn.Module):") and "import" not in code
    assert needs == ()


def test_lhuc_gates_the_table_or_the_gathered_rows_alike():
    from dwc.layers.lhuc.runtime import _DwcLhuc

    torch.manual_seed(0)
    table_first = _DwcLhuc(conditions=24, width=8)
    with torch.no_grad():
        table_first.scale.normal_()
    gather_first = copy.deepcopy(table_first)
    gather_first.TABLE_FIRST = 0  # as for a large table (an id feature)
    x, ids = torch.randn(37, 8), torch.randint(0, 24, (37,))
    a, b = table_first(x, ids), gather_first(x, ids)
    assert torch.equal(a, b)  # the same elementwise sigmoid of the same values
    a.square().sum().backward()
    b.square().sum().backward()
    torch.testing.assert_close(table_first.scale.grad, gather_first.scale.grad, rtol=1e-6,
                               atol=1e-7)


@pytest.mark.parametrize("module", ["dwc.layers.lhuc", "dwc.layers", "dwc.ir.ops", "dwc.sema.params",
                                    "dwc.sema.values", "dwc.cli", "dwc.lint", "dwc.layers.apg",
                                    "dwc.layers.apg.passes", "dwc.passes", "dwc.layers.star.passes",
                                    "dwc.layers.meta_attention", "dwc.layers.experts",
                                    "dwc.ir.dynamic", "dwc.ir.op", "dwc.sema.elaborate",
                                    "dwc.sema.stacks", "dwc.backends.torch.view",
                                    "dwc.backends.torch.folds"])
def test_any_module_imports_first_in_a_fresh_interpreter(module):
    """Layer kinds and the signature table import each other's parts: no order may cycle."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", f"import {module}; from dwc.ir import ops; "
                           "ops.Lhuc"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("name", sorted(CORE))
def test_a_core_helper_is_importable_python(name):
    import importlib

    module = importlib.import_module(CORE[name])
    code, needs = helper_source(CORE[name])
    compile(code, f"<{name}>", "exec")
    assert all(n in CORE.values() for n in needs) and "import " not in code.split("\n")[0]
    defined = re.findall(r"^(?:def|class) (\w+)", code, re.M)
    assert defined and all(callable(getattr(module, n)) for n in defined), defined
