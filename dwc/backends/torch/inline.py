"""Runtime helpers written as real Python (`dwc/layers/<kind>/runtime.py`), inlined into model.py.

A helper module is ordinary, importable, unit-testable code: a docstring, its imports, then the
definitions the generated file needs. The generated file must import only torch, so what is
inlined is everything after the imports; an import *from another helper module* declares that
this helper calls that one (its definitions are inlined too), which is the one way a helper says
what it needs.
"""

from __future__ import annotations

import ast
import importlib.util
from functools import cache
from pathlib import Path


@cache
def helper_source(module: str) -> tuple[str, tuple[str, ...]]:
    """(the code to inline, the helper modules it imports from) of the helper module `module`."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, module
    text = Path(spec.origin).read_text(encoding="utf-8")
    tree = ast.parse(text)
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the module docstring describes the helper module, not the model
    needs: list[str] = []
    while body and isinstance(body[0], ast.Import | ast.ImportFrom):
        node = body.pop(0)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dwc."):
            needs.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue  # the generated file has its own
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names]
            root = node.module if isinstance(node, ast.ImportFrom) else names[0]
            assert root.split(".")[0] == "torch", f"{module}: helpers import only torch ({root})"
    assert body, f"{module} defines nothing"
    first = body[0]
    start = min([first.lineno, *(d.lineno for d in getattr(first, "decorator_list", ()))])
    code = "\n".join(text.splitlines()[start - 1:]).rstrip("\n")
    return code, tuple(needs)


@cache
def init_parameters(module: str, cls: str) -> tuple[str, ...]:
    """The parameter names of `cls.__init__` in the helper module `module` (without `self`), so
    generated code can pass a helper's settings by keyword."""
    code, _ = helper_source(module)
    for node in ast.parse(code).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    return tuple(a.arg for a in item.args.args[1:])
            return ()
    raise AssertionError(f"{module} defines no class {cls}")
