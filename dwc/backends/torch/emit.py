"""Render the view model through templates/torch and validate the result before anyone sees it.

The Jinja2 environment is strict (undefined names fail), templates only loop over the view model,
and the rendered source is parsed and `compile()`d here: a template bug becomes an internal error
at compile time, never a broken file on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import jinja2

from dwc.backends.torch.view import FileView, build_view
from dwc.ir.graph import Graph
from dwc.resources import templates_dir
from dwc.source import SourceFile


@dataclass(frozen=True)
class GeneratedModule:
    """The generated `model.py`: its source and the name of the model class in it."""

    source: str
    class_name: str
    view: FileView


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env


def generate(model: Graph, train: Graph, inference: Graph, source: SourceFile | None = None,
             level: str = "-O2", before_table: Graph | None = None) -> GeneratedModule:
    """Generate model.py: the training class (parameters of `model`, forward of `train`) and the
    inference class (`inference`); `before_table` is the graph fold-scenario-table tabulated."""
    view = build_view(model, train, inference, source, level, before_table or train)
    text = _environment().get_template("torch/model.py.j2").render(v=view)
    compile(text, "model.py", "exec")  # a SyntaxError here is a dwc bug (reported as DW900)
    return GeneratedModule(text, view.training.name, view)
