"""`dwc graph`, stage 2: the picture's view model (dwc.graph) -> DOT, SVG or a self-contained HTML
page.

DOT is written here: every label is an HTML-like label whose text goes through `_html` (entities
for `&<>"'` and for anything outside printable ASCII), every quoted attribute through `_quoted`.
Node names in DOT are the view model's `node_K` ids, never spec text. SVG is laid out by
graphviz-pure, a self-contained build of Graphviz's `dot` that the `graphviz-pure` wheel (a
dependency of dwc) installs beside the interpreter: no system Graphviz is needed, and it writes
the same bytes on every platform, so the pictures in docs/ regenerate identically. The HTML page
(templates/graph/page.html.j2, autoescaped) inlines that SVG, its CSS and its script, and shows
the `dwc explain` table beside the graph; it loads nothing from the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from dwc.diagnostics import Diagnostic, DiagnosticError
from dwc.graph import ModelGraph, Node

FORMATS = ("dot", "svg", "html")
LAYOUT_ENGINE = "graphviz-pure"

FILLS = {"feature": "#e3edfb", "scenario": "#ffd98a", "condition": "#efe1fa", "layer": "#f4f4f4",
         "output": "#e2f4e2"}
SCENARIO_FILL, DYNAMIC_FILL = "#ffe9b3", "#fde8d6"
_EDGE_STYLE = {
    "data": 'color="#444444"',
    "generates": 'style=dashed, color="#d95f02", fontcolor="#d95f02", penwidth=1.6, '
                 'label="generates"',
    "selects": 'style=dashed, color="#1f78b4", fontcolor="#1f78b4", penwidth=1.4, '
               'label="selects"',
    "shares": 'style=dotted, color="#888888", fontcolor="#666666", label="shares table"',
}
LEGEND = ("solid: data; dashed orange: a condition generates the weights; dashed blue: the cell "
          "or domain id selects a weight set; dotted: shares an embedding table")
_CAPTION_LEGEND = ("edges: solid = data, dashed orange = a condition generates the weights, "
                   "dashed blue = the cell or domain id selects a weight set, dotted = shares an "
                   "embedding table")


def _html(text: str) -> str:
    """Text for an HTML-like DOT label: markup characters and non-ASCII as entities."""
    out = []
    for ch in str(text):
        if ch in "&<>\"'" or not (" " <= ch <= "~"):
            out.append(f"&#{ord(ch)};")
        else:
            out.append(ch)
    return "".join(out)


def _quoted(text: str) -> str:
    """A DOT double-quoted string (escString): backslash and quote escaped, no raw newlines."""
    clean = "".join(ch if " " <= ch <= "~" else " " for ch in str(text))
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def title(graph: ModelGraph) -> str:
    """The picture's caption: model, form, level and what the folds removed."""
    text = f"{graph.model}: {graph.form} form at {graph.level}"
    if graph.folded_away:
        text += f"; folded away: {', '.join(graph.folded_away)}"
    return text


def _label(node: Node) -> str:
    """A node's HTML-like label: name (and scenario mark), kind and type, ops, notes, costs."""
    head = {"condition": "condition ", "output": "output "}.get(node.role, "")
    lines = [f"<b>{_html(head + node.name)}</b>"
             + (' <font color="#9a6700">[scenario]</font>' if node.scenario and node.role == "feature"
                else "")]
    kind = " -> ".join(x for x in (node.kind, node.shape) if x)
    lines.append(f'<font point-size="9" color="#333333">{_html(kind)}</font>')
    if node.ops and node.role not in ("feature", "scenario"):
        lines.append(f'<font point-size="8" color="#666666">{_html(", ".join(node.ops))}</font>')
    for note in node.notes:
        lines.append(f'<font point-size="8" color="#9a3412">{_html(note)}</font>')
    lines.append(f'<font point-size="8">{node.params:,} params, {node.flops:,} FLOPs</font>')
    return "<" + "<br/>".join(lines) + ">"


def tooltip(node: Node) -> str:
    """What hovering over a node shows (the SVG's link title)."""
    parts = [f"{node.role} {node.name}"]
    if node.line:
        parts.append(f"line {node.line}")
    if node.ops:
        parts.append("ops: " + ", ".join(node.ops))
    parts.append(f"{node.params:,} params, {node.flops:,} FLOPs per sample")
    return "; ".join(parts)


def to_dot(graph: ModelGraph) -> str:
    """The picture as Graphviz DOT (top to bottom: features first, outputs last)."""
    lines = [
        f"digraph {_quoted(graph.model)} {{",
        f'  graph [rankdir=TB, nodesep=0.25, ranksep=0.4, fontname="Helvetica", fontsize=10, '
        f'labelloc=b, label=<{_html(title(graph))}<br/><font point-size="8" color="#555555">'
        f'{_html(_CAPTION_LEGEND)}</font>>, id="dwc_graph"];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, '
        'color="#555555", margin="0.10,0.05"];',
        '  edge [fontname="Helvetica", fontsize=8, arrowsize=0.7];',
    ]
    for node in graph.nodes:
        fill = FILLS[node.role]
        extra = ""
        if node.role == "feature" and node.scenario:
            fill, extra = SCENARIO_FILL, ', color="#b7791f", penwidth=2'
        elif node.role == "scenario":
            extra = ', color="#b7791f", penwidth=2'
        elif node.dynamic:
            fill, extra = DYNAMIC_FILL, ', color="#d95f02", penwidth=1.6'
        if node.role in ("layer", "condition"):
            extra += ', style="filled"'
        classes = " ".join(["dwc_node", node.role] + (["scenario"] if node.scenario else [])
                           + (["dynamic"] if node.dynamic else []))
        lines.append(f'  "{node.id}" [id="{node.id}", class="{classes}", label={_label(node)}, '
                     f'fillcolor="{fill}", tooltip={_quoted(tooltip(node))}{extra}];')
    for role, rank in (("feature", "min"), ("output", "max")):
        members = " ".join(f'"{n.id}";' for n in graph.nodes if n.role == role)
        if members:
            lines.append(f"  {{ rank={rank}; {members} }}")
    for k, edge in enumerate(graph.edges):
        lines.append(f'  "{edge.source}" -> "{edge.target}" [id="edge_{k}", '
                     f'class="dwc_edge {edge.kind}", {_EDGE_STYLE[edge.kind]}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def layout_engine() -> str | None:
    """The graphviz-pure executable: beside this interpreter (a virtual environment's bin/, also
    when it is not activated), else on PATH."""
    name = LAYOUT_ENGINE + (".exe" if os.name == "nt" else "")
    folders = [sysconfig.get_path("scripts"), os.path.dirname(sys.executable)]
    if f"{os.name}_user" in sysconfig.get_scheme_names():  # pip install --user
        folders.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    for folder in folders:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(LAYOUT_ENGINE)


def to_svg(graph: ModelGraph) -> str:
    """The picture laid out by graphviz-pure. Raises DiagnosticError(DW421) when it is not
    installed, DW422 when it fails."""
    engine = layout_engine()
    if engine is None:
        raise DiagnosticError([Diagnostic.file_level(
            "DW421", f"the SVG layout engine '{LAYOUT_ENGINE}' is not installed",
            help="it is a dependency of dwc: reinstall dwc (`pip install -e .` in a checkout), "
            "or write DOT with `--format dot` and lay it out with Graphviz")])
    try:
        run = subprocess.run([engine, "-Tsvg"], input=to_dot(graph).encode("ascii"),
                             capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise _engine_failed(engine, str(error)) from None
    if run.returncode != 0 or b"<svg" not in run.stdout:
        reason = run.stderr.decode("utf-8", "replace").strip().splitlines()
        raise _engine_failed(engine, reason[-1] if reason else f"exit status {run.returncode}")
    return run.stdout.decode("utf-8")


def _engine_failed(engine: str, reason: str) -> DiagnosticError:
    return DiagnosticError([Diagnostic.file_level(
        "DW422", f"the SVG layout engine failed: {reason}",
        help=f"write DOT with `--format dot` instead, and report this with the spec ({engine})")])


def to_html(graph: ModelGraph) -> str:
    """One self-contained page: the inline SVG beside the `dwc explain` table (rows and nodes
    highlight each other on hover and click; `#node_K` in the address selects a node)."""
    import jinja2
    from markupsafe import Markup

    from dwc.resources import templates_dir

    svg = to_svg(graph)
    svg = svg[svg.index("<svg"):]  # inline: without the XML declaration and DOCTYPE
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "graph")),
                             undefined=jinja2.StrictUndefined, autoescape=True,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    ids = {n.name: n.id for n in graph.nodes}
    report = graph.report
    rows = [_row(layer["name"], layer["ops"], layer["training"], layer["inference"],
                 ids.get(layer["name"])) for layer in report["layers"]]
    total = _row("total", [], report["total"]["training"], report["total"]["inference"], None)
    passes = [{"name": p["pass"], "stage": p["stage"] or "-", "params": f"{p['total']['params']:,}",
               "generated": f"{p['total']['generated_per_sample']:,}",
               "flops": f"{p['total']['flops_per_sample']:,}",
               "changed": "yes" if p["changed"] else "no"} for p in report["passes"]]
    return env.get_template("page.html.j2").render(
        title=title(graph), legend=LEGEND, svg=Markup(svg), rows=rows, total=total,
        passes=passes, form=graph.form)


def _row(name: str, ops: list[str], train: dict, inference: dict, node: str | None) -> dict:
    return {"name": name, "ops": ", ".join(ops), "node": node,
            "params": f"{train['params']:,}", "params_inference": f"{inference['params']:,}",
            "generated": f"{train['generated_per_sample']:,}",
            "flops": f"{train['flops_per_sample']:,}",
            "generator_flops": f"{train['generator_flops_per_sample']:,}",
            "flops_inference": f"{inference['flops_per_sample']:,}"}


def render(graph: ModelGraph, fmt: str) -> str:
    """The picture in `fmt` (one of FORMATS)."""
    return {"dot": to_dot, "svg": to_svg, "html": to_html}[fmt](graph)
