"""`dwc graph`: every example draws in every format; nodes and edges match the IR; scenario marks;
the folded inference form; escaping; coded diagnostics and atomic writes; the pictures in docs/."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dwc import graph_render
from dwc.cli import main
from dwc.driver import load_source, optimize
from dwc.graph import Edge, ModelGraph, Node, build
from dwc.graph_render import render, to_dot, to_html, to_svg
from dwc.ir import ops as ir
from dwc.parse import ast, parse
from dwc.sema.elaborate import elaborate
from tests.conftest import EXAMPLES, ROOT

SVG = "{http://www.w3.org/2000/svg}"


def svg_groups(svg: str, cls: str) -> list[ET.Element]:
    """The <g> elements of an SVG whose class list contains every word of `cls`."""
    want = set(cls.split())
    return [g for g in ET.fromstring(svg.encode()).iter(f"{SVG}g")
            if want <= set(g.get("class", "").split())]


def texts(element: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in element.iter(f"{SVG}text")]


@pytest.fixture(scope="module")
def pictures():
    """Each example's training and inference pictures at -O2, built once for the module."""
    return {(path.stem, inference): build(load_source(path), inference=inference)
            for path in EXAMPLES for inference in (False, True)}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_draws_in_every_format(path, pictures):
    for inference in (False, True):
        picture = pictures[(path.stem, inference)]
        dot = to_dot(picture)
        assert dot.count("[id=\"node_") == len(picture.nodes)
        assert dot.count(" -> ") == len(picture.edges)
        svg = to_svg(picture)
        nodes = {g.get("id"): g for g in svg_groups(svg, "node dwc_node")}
        assert sorted(nodes) == sorted(n.id for n in picture.nodes)
        for node in picture.nodes:
            group = nodes[node.id]
            assert node.name in texts(group)[0]  # the bold first line names the binding
            assert f"{node.params:,} params, {node.flops:,} FLOPs" in texts(group)
        assert len(svg_groups(svg, "edge dwc_edge")) == len(picture.edges)
        page = to_html(picture)
        assert page.count('class="node dwc_node') == len(picture.nodes)
        assert page.count("<tr data-node=") == len(picture.nodes) - sum(
            n.name not in {row["name"] for row in picture.report["layers"]} for n in picture.nodes)


@pytest.mark.parametrize("level", [0, 1])
def test_every_example_draws_at_every_level(level):
    for path in EXAMPLES:
        source = load_source(path)
        train, inference = (build(source, level, inference=f) for f in (False, True))
        for picture in (train, inference):
            assert picture.level == f"-O{level}" and all(n.name for n in picture.nodes)
            assert to_dot(picture).count('[id="node_') == len(picture.nodes)
        if level == 0:  # no inference pass runs at -O0: both forms are the same graph
            assert [n.name for n in inference.nodes] == [n.name for n in train.nodes]
            assert inference.folded_away == ()


def _lowered(path: Path):
    source = load_source(path)
    return source, parse(source), elaborate(parse(source), source)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_nodes_and_generator_edges_match_the_ir(path, pictures):
    source, spec, lowered = _lowered(path)
    _, train, _, _ = optimize(lowered)
    picture = pictures[(path.stem, False)]
    by_role = {role: {n.name for n in picture.nodes if n.role == role}
               for role in ("feature", "condition", "output", "scenario")}
    declared = {kind: {s.name.text for s in spec.statements if isinstance(s, kind)}
                for kind in (ast.FeatureDecl, ast.ConditionDecl, ast.OutputDecl)}
    # every feature the training graph has an op of (an input, or a table a sequence shares)
    assert by_role["feature"] == declared[ast.FeatureDecl] & {op.binding for op in train}
    assert {op.binding for op in train if isinstance(op, ir.Input)} <= by_role["feature"]
    assert by_role["condition"] == declared[ast.ConditionDecl] & {op.binding for op in train}
    assert by_role["output"] == {o.name for o in train.outputs} == declared[ast.OutputDecl]
    assert by_role["scenario"] == ({"scenario"} if any(
        isinstance(op, ir.ScenarioIndex) for op in train) else set())
    assert {n.name for n in picture.nodes} == {op.binding for op in train}
    # each generator reading a condition of another binding: one "generates" edge from it
    ids = {n.name: n.id for n in picture.nodes}
    producers = train.producers()
    expected = {(ids[producers[op.inputs[0]].binding], ids[op.binding]) for op in train
                if op.generates() and op.inputs and producers[op.inputs[0]].binding != op.binding}
    generates = {(e.source, e.target) for e in picture.edges if e.kind == "generates"}
    assert expected <= generates
    # every dynamic linear layer is drawn as dynamic, with the generating edge into it
    for op in train:
        if isinstance(op, ir.DynamicLinear):
            node = picture.node(op.binding)
            assert node.dynamic and any(t == node.id for _, t in generates), op.binding


def edges_named(picture: ModelGraph, kind: str) -> set[tuple[str, str]]:
    names = {n.id: n.name for n in picture.nodes}
    return {(names[e.source], names[e.target]) for e in picture.edges if e.kind == kind}


def test_m2m_training_form(pictures):
    picture = pictures[("m2m", False)]
    assert edges_named(picture, "generates") == {("s", "r1"), ("s", "t1"), ("s", "r2"),
                                                 ("s", "t2")}
    assert edges_named(picture, "shares") == {("industry", "history")}
    assert edges_named(picture, "selects") == set()
    assert picture.node("s").role == "condition" and picture.node("s").shape == "vec[16]"
    t1 = picture.node("t1")
    assert t1.dynamic and t1.ops == ("generator", "dynamic_linear", "add", "activation")
    assert (t1.params, t1.flops) == (4_624, 9_248)  # `dwc explain examples/m2m.dw`'s t1 row
    assert "generates 272 numbers/sample" in t1.notes
    assert picture.node("e").shape == "experts[4; 16]"


def test_scenario_features_are_marked(pictures):
    for path in EXAMPLES:
        picture = pictures[(path.stem, False)]
        source, _, lowered = _lowered(path)
        marked = {spec.name for spec in lowered.inputs if spec.scenario}
        drawn = {n.name for n in picture.nodes if n.role == "feature" and n.scenario}
        assert drawn == marked & {n.name for n in picture.nodes}, path.stem
    svg = to_svg(pictures[("m2m", False)])
    marked = svg_groups(svg, "dwc_node feature scenario")
    assert sorted(texts(g)[0] for g in marked) == ["channel", "region"]
    assert all("[scenario]" in texts(g) for g in marked)
    unmarked = [g for g in svg_groups(svg, "dwc_node feature")
                if "scenario" not in g.get("class").split()]
    assert len(unmarked) == 4 and not any("[scenario]" in texts(g) for g in unmarked)


def test_inference_form_shows_the_folded_tables():
    m2m = build(load_source(ROOT / "examples" / "m2m.dw"), inference=True)
    assert m2m.form == "inference" and m2m.folded_away == ("s",)
    assert edges_named(m2m, "generates") == set()
    assert edges_named(m2m, "selects") == {("scenario", v) for v in ("r1", "t1", "r2", "t2")}
    assert m2m.node("scenario").kind == "scenarios channel * region"
    assert m2m.node("scenario").shape == "ids[24]"
    assert m2m.node("r1").ops == ("scenario_meta_attention",)
    assert m2m.node("t1").ops == ("scenario_linear", "add", "activation")
    for name in ("r1", "t1", "r2", "t2"):
        assert m2m.node(name).notes == ("24 weight sets, one per cell", "tabulated from s")
    assert m2m.node("channel").shape == "ids[4]"  # its embedding only fed the folded condition
    assert (m2m.node("r1").params, m2m.node("r1").flops) == (13_088, 4_480)  # explain: inference
    star = build(load_source(ROOT / "examples" / "star.dw"), inference=True)
    assert star.node("h").ops == ("indexed_linear", "activation")
    assert star.node("main").notes == ("8 weight sets, one per cell",)
    assert edges_named(star, "selects") == {("scenario", "x"), ("scenario", "h"),
                                            ("scenario", "main")}
    svg = to_svg(m2m)
    assert "m2m: inference form at -O2; folded away: s" in "".join(
        texts(ET.fromstring(svg.encode())))


def test_levels_change_what_is_drawn():
    source = load_source(ROOT / "examples" / "m2m.dw")
    unfolded = build(source, level=0, inference=True)  # -O0 runs no inference fold
    assert unfolded.folded_away == () and len(edges_named(unfolded, "generates")) == 4
    assert unfolded.level == "-O0"
    explicit = build(source, passes="fuse-generators,fold-scenario-table", inference=True)
    assert explicit.level == "--passes fuse-generators,fold-scenario-table"
    assert "tabulated from s" in explicit.node("r1").notes  # tables, not yet per-cell layers


# --- escaping ---------------------------------------------------------------------------------

ODD = "a\"b<c>&d'e\\f\n</script><script>alert(1)</script> é"


def odd_picture() -> ModelGraph:
    nodes = (Node("node_0", ODD, "feature", "categorical", "vec[8]", ("table", "lookup"), 8, 0,
                  scenario=True),
             Node("node_1", "x&y", "layer", ODD, "vec[4]", ("linear",), 36, 64, dynamic=True,
                  notes=(ODD,)),
             Node("node_2", "out", "output", "sigmoid", "vec[1]", ("head",), 0, 1))
    edges = (Edge("node_0", "node_1", "generates"), Edge("node_1", "node_2", "data"))
    cost = {"params": 1, "generated_per_sample": 0, "flops_per_sample": 2,
            "generator_flops_per_sample": 0, "activation_floats_per_sample": 0,
            "activation_bytes": 0}
    report = {"layers": [{"name": n.name, "ops": list(n.ops), "training": cost,
                          "inference": cost} for n in nodes],
              "total": {"training": cost, "inference": cost},
              "passes": [{"pass": ODD, "stage": "", "changed": True, "total": cost}]}
    return ModelGraph(f"m{ODD}", "training", "-O2", nodes, edges, (), report)


def test_odd_names_are_escaped_in_dot_and_svg():
    picture = odd_picture()
    dot = to_dot(picture)
    assert dot.startswith('digraph "ma\\"b<c>&d\'e\\\\f </script><script>alert(1)</script>  " {')
    labels = re.findall(r"label=<(.*?)>, (?:fillcolor|id)=", dot)
    assert len(labels) == 4  # the caption and three nodes: HTML-like labels, entities only
    for label in labels:  # without dwc's own markup, only text and character entities remain
        text = re.sub(r'</?(?:b|br/|font)(?: [a-z-]+="[#0-9a-z]*")*>', "", label)
        assert not re.search(r"[<>\"']|&(?!#\d+;)", text), text
    assert "a&#34;b&#60;c&#62;&#38;d&#39;e\\f&#10;&#60;/script&#62;" in labels[1]
    assert "&#233;" in labels[1] and "é" not in dot
    svg = to_svg(picture)  # graphviz-pure accepts the DOT, and the SVG is well-formed XML
    root = ET.fromstring(svg.encode())
    groups = {g.get("id"): texts(g) for g in svg_groups(svg, "dwc_node")}
    assert "".join(groups["node_0"][0].split()) == "".join(ODD.split())  # the name, verbatim
    assert groups["node_1"][0] == "x&y" and "".join(ODD.split()) in "".join(
        "".join(groups["node_1"]).split())
    titles = [a.get("{http://www.w3.org/1999/xlink}title") for a in root.iter(f"{SVG}a")]
    assert any(t and t.startswith('feature a"b<c>&d\'e\\f </script>') for t in titles)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.cells: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_odd_names_are_escaped_in_html():
    page = to_html(odd_picture())
    parsed = _Page()
    parsed.feed(page)
    assert parsed.tags.count("script") == 1  # the page's own; no name opened another
    assert ODD in parsed.cells and "x&y" in parsed.cells


def test_the_html_page_is_self_contained(pictures):
    page = to_html(pictures[("m2m", True)])
    assert "<script src" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
    assert page.count("<svg") == 1 and "<?xml" not in page


# --- the command: formats, diagnostics, atomic writes -----------------------------------------

M2M = str(ROOT / "examples" / "m2m.dw")


@pytest.mark.parametrize("name, marker", [("m.dot", "digraph"), ("m.gv", "digraph"),
                                          ("m.svg", "<svg"), ("m.html", "<!DOCTYPE html>"),
                                          ("m.HTM", "<!DOCTYPE html>")])
def test_the_extension_gives_the_format(tmp_path, capsys, name, marker):
    assert main(["graph", M2M, "-o", str(tmp_path / name)]) == 0
    assert marker in (tmp_path / name).read_text()[:400]
    assert "dwc: drew m2m (training form, 15 nodes, 18 edges)" in capsys.readouterr().err


def test_format_option_and_stdout(tmp_path, capsys):
    assert main(["graph", M2M, "--format", "dot", "-o", "-", "--inference", "-O2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('digraph "m2m" {') and "folded away: s" in out
    assert main(["graph", M2M, "--format", "SVG", "-o", str(tmp_path / "picture")]) == 0
    assert "<svg" in (tmp_path / "picture").read_text()


@pytest.mark.parametrize("argv, code", [
    (["-o", "m.png"], "DW420"), (["-o", "noext"], "DW420"), (["-o", "-"], "DW420"),
    (["--format", "png", "-o", "m.svg"], "DW420"), (["--format", "svg", "-o", "m.html"], "DW423"),
])
def test_bad_formats_are_coded_and_write_nothing(tmp_path, capsys, monkeypatch, argv, code):
    monkeypatch.chdir(tmp_path)
    assert main(["graph", M2M, *argv]) == 2
    err = capsys.readouterr().err
    assert f"error[{code}]" in err and "help:" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_unwritable_paths_are_coded(tmp_path, capsys):
    (tmp_path / "dir.svg").mkdir()
    assert main(["graph", M2M, "-o", str(tmp_path / "dir.svg")]) == 2
    assert "error[DW402]" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["graph", M2M, "-o", str(tmp_path / "file" / "m.svg")]) == 2
    assert "error[DW402]" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.svg", "file"]


def test_a_failed_layout_leaves_the_old_file(tmp_path, capsys, monkeypatch):
    target = tmp_path / "m.svg"
    target.write_text("old picture")
    broken = tmp_path / "engine"
    broken.write_text("#!/bin/sh\necho 'Error: syntax error in line 3' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(graph_render, "layout_engine", lambda: str(broken))
    assert main(["graph", M2M, "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert "error[DW422]: the SVG layout engine failed: Error: syntax error in line 3" in err
    monkeypatch.setattr(graph_render, "layout_engine", lambda: None)
    assert main(["graph", M2M, "-o", str(tmp_path / "m.html")]) == 2
    assert "error[DW421]" in capsys.readouterr().err
    assert main(["graph", M2M, "-o", str(tmp_path / "m.dot")]) == 0  # DOT needs no engine
    assert target.read_text() == "old picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine", "m.dot", "m.svg"]


def test_spec_errors_write_nothing(tmp_path, capsys):
    spec = tmp_path / "bad.dw"
    spec.write_text("model bad\nfeature a : categorical(vocab = 4, dim = 2)\n"
                    "output y = sigmoid(linear(contry, 1)) loss = bce\n")
    assert main(["graph", str(spec), "-o", str(tmp_path / "bad.svg")]) == 1
    assert "error[DW201]" in capsys.readouterr().err
    assert main(["graph", str(tmp_path / "missing.dw"), "-o", str(tmp_path / "m.svg")]) == 2
    assert "error[DW401]" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.dw"]


# --- the pictures in docs/ ----------------------------------------------------------------------

# docs/img/NAME -> the `dwc graph` arguments that draw it; docs/graph.md gives each command
DOCS_PICTURES = {
    "m2m.svg": ["examples/m2m.dw"],
    "m2m-inference.svg": ["examples/m2m.dw", "--inference"],
    "star.svg": ["examples/star.dw"],
}


@pytest.mark.parametrize("name", sorted(DOCS_PICTURES))
def test_docs_pictures_are_up_to_date(name, tmp_path, capsys, monkeypatch):
    args = DOCS_PICTURES[name]
    command = f"dwc graph {' '.join(args)} -o docs/img/{name}"
    assert command in (ROOT / "docs" / "graph.md").read_text(encoding="utf-8")
    assert f"img/{name}" in (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    monkeypatch.chdir(ROOT)
    assert main(["graph", *args, "-o", str(tmp_path / name)]) == 0
    assert (tmp_path / name).read_bytes() == (ROOT / "docs" / "img" / name).read_bytes(), (
        f"docs/img/{name} is stale: run `{command}`")


def test_pictures_are_deterministic(pictures):
    picture = pictures[("star", False)]
    assert to_svg(picture) == to_svg(build(load_source(ROOT / "examples" / "star.dw")))
    assert render(picture, "html") == render(picture, "html")
