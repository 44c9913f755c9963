"""The lint rules, one module per rule (ruff's layout): `unused_feature.py` holds DW501's check and,
as its class docstring, the documentation docs/lint.md is generated from (What it does / Why is
this bad? / Example / Use instead). `base.py` holds what rules share: `LintContext`, the `Rule`
base class and helpers over the AST and the IR.

Rules see the parsed AST, the lowered IR and the IR after the model passes (so the cost model
knows APG ranks), and the settings (`[tool.dwc]` in pyproject.toml, CLI flags).

`RULES` (code -> rule, in code order) is found by importing every module here: a new rule is one
new module, named after its code's registered name (dwc/diagnostics/codes.py, dashes as
underscores), holding one `Rule` subclass. A layer kind's own rules live in its folder
(`dwc/layers/<kind>/lint.py`, listed in its `Kind.lint_rules`) and join `RULES` too.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Mapping

from dwc.diagnostics.codes import CODES
from dwc.layers import MergedOnFirstUse
from dwc.lint.rules.base import LintContext, Rule

__all__ = ["RULES", "LintContext", "Rule"]

_SHARED = {"base"}


def _discover() -> dict[str, Rule]:
    found: list[Rule] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name in _SHARED or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        classes = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
                   if issubclass(cls, Rule) and cls.__module__ == module.__name__]
        assert len(classes) == 1, f"{module.__name__} must define one Rule subclass: {classes}"
        rule = classes[0]()
        assert rule.code in CODES, f"{module.__name__}: {rule.code} is not in dwc/diagnostics/codes.py"
        expected = CODES[rule.code].name.replace("-", "_")
        assert info.name == expected, f"{rule.code}'s module is {expected}.py, not {info.name}.py"
        found.append(rule)
    from dwc.layers import kinds

    for kind in kinds().values():  # a layer kind's own rules (`Kind.lint_rules`, its lint.py)
        for cls in kind.lint_rules:
            rule = cls()
            assert rule.code in CODES, f"{kind.name}: {rule.code} is not a registered code"
            found.append(rule)
    rules = {rule.code: rule for rule in sorted(found, key=lambda r: r.code)}
    assert len(rules) == len(found), "two lint rules with the same code"
    return rules


RULES: Mapping[str, Rule] = MergedOnFirstUse(_discover)
"""Every lint rule by code, discovered on first use: a layer kind's lint.py imports `Rule` from
here while the kinds are being imported, before their rules can be read."""
