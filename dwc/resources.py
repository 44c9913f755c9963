"""Package resources: where the grammar and the code templates live.

`grammar/` and `templates/` sit at the top of the repository (the product layout) and are mapped
into the wheel as `dwc/_data/grammar` and `dwc/_data/templates` (see pyproject.toml). This one helper
resolves them in both places, so nothing else in dwc knows how it was installed.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def resource_dir(name: str) -> Path:
    """Return the directory of the resource `name` ("grammar" or "templates").

    Raises:
        FileNotFoundError: when neither the installed nor the checkout location exists, which
            means dwc was installed from a broken build.
    """
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"dwc resource directory {name!r} not found next to {_PACKAGE_DIR}")


def grammar_path() -> Path:
    """The path of `dwc.lark`, the single source of the language's syntax."""
    return resource_dir("grammar") / "dwc.lark"


def templates_dir() -> Path:
    """The directory of the Jinja2 templates for generated code."""
    return resource_dir("templates")
