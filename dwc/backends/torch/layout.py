"""Layout of generated code: calls laid out the way `ruff format` lays them out, literals made
from validated names, text made safe for docstrings. The generated files are formatted by
construction (a test runs ruff format over every example's output)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_KEYWORD = re.compile(r"[A-Za-z_]\w*=(?!=)")
"""An argument already written `name=value`."""

INDENT = 8
"""Indentation of statement lines inside the generated class's methods."""
WIDTH = 100
"""Line length of generated code (the project's ruff setting, which the tests check)."""


def q(name: str) -> str:
    """A double-quoted string literal for a validated identifier-like name."""
    assert all(part.isidentifier() and part.isascii() for part in name.split(".")), name
    return f'"{name}"'


@dataclass(frozen=True)
class Keyword:
    """A keyword argument whose value is a list literal given as its items (`name=[...]`)."""

    name: str
    items: list[str]


Arg = str | list[str] | Keyword
"""A call argument: an expression, a list literal given as its items, or a keyword list."""


def _flat(arg: Arg) -> str:
    if isinstance(arg, Keyword):
        return f"{arg.name}=[{', '.join(arg.items)}]"
    return arg if isinstance(arg, str) else f"[{', '.join(arg)}]"


def _is_list(arg: Arg) -> bool:
    return not isinstance(arg, str)


def call_lines(head: str, args: list[Arg], indent: int = INDENT) -> list[str]:
    """`head(args)` laid out the way ruff format lays it out at this indentation.

    `head` includes everything before the parenthesis (`x = torch.cat`). The result's first line
    has no indentation of its own; continuation lines are indented relative to it.
    """
    one = f"{head}({', '.join(_flat(a) for a in args)})"
    if indent + len(one) <= WIDTH:
        return [one]
    inner = ", ".join(_flat(a) for a in args)
    if indent + 4 + len(inner) <= WIDTH and not any(_is_list(a) and
                                                    indent + 4 + len(_flat(a)) > WIDTH
                                                    for a in args):
        return [f"{head}(", f"    {inner}", ")"]
    lines = [f"{head}("]
    for arg in args:
        if _is_list(arg) and indent + 4 + len(_flat(arg)) + 1 > WIDTH:
            items = arg.items if isinstance(arg, Keyword) else arg
            lines.append(f"    {arg.name}=[" if isinstance(arg, Keyword) else "    [")
            lines.extend(f"        {item}," for item in items)
            lines.append("    ],")
        else:
            lines.append(f"    {_flat(arg)},")
    lines.append(")")
    return lines


def py_tuple(items: list[str]) -> str:
    """A tuple literal without a magic trailing comma (ruff would explode it)."""
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def safe_doc(text: str) -> str:
    """Text safe inside a triple-quoted docstring (spec file names are user-controlled)."""
    return "".join(ch if ch.isalnum() or ch in " ._-/:+()[]=,<>*" else "_" for ch in text)
