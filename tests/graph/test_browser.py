"""`dwc graph`'s HTML page in a real headless browser (Debian's chromium, which .ci/run installs):
the page's script runs and wires nodes to table rows, and the screenshot shows the drawn graph.

Without chromium the tests skip on a developer's machine, and fail under CI (CI=true), where
.ci/run installs it: the check must not silently vanish there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter

import pytest

from dwc.cli import main
from dwc.graph_render import FILLS, SCENARIO_FILL
from tests.conftest import ROOT

# A root user needs --no-sandbox; the network flags keep chromium off a closed network.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]
HIGHLIGHT = (0xE1, 0x1D, 0x48)  # the selected node's stroke (templates/graph/page.html.j2)
ROW_HIGHLIGHT = (0xFF, 0xF1, 0xBF)


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium for this test")
        pytest.skip("no chromium: `apt-get install -y chromium` (README, Setup)")
    return exe


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """m2m's inference picture as HTML, opened with node_9 (r1) selected by the address."""
    out = tmp_path_factory.mktemp("graph") / "m2m.html"
    assert main(["graph", str(ROOT / "examples" / "m2m.dw"), "--inference", "-o", str(out)]) == 0
    return out


def _run(tmp_path, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                         capture_output=True, timeout=180, check=False)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    return run


def test_the_page_script_links_nodes_and_rows(page, tmp_path):
    dom = _run(tmp_path, "--dump-dom", f"{page.as_uri()}#node_9").stdout.decode()
    nodes = re.findall(r'<g id="(node_\d+)" class="node dwc_node ([^"]*)"', dom)
    assert len(nodes) == 15
    assert [n for n, cls in nodes if "hl" in cls.split()] == ["node_9"]
    assert '<body data-selected="node_9">' in dom
    rows = re.findall(r'<tr data-node="(node_\d+)"( class="hl")?>', dom)
    assert len(rows) == 15 and [n for n, hl in rows if hl] == ["node_9"]
    assert re.search(r'<tr data-node="node_9" class="hl"><td>r1</td>', dom)


def test_the_screenshot_shows_the_graph(page, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    _run(tmp_path, "--window-size=1400,900", f"--screenshot={shot}", f"{page.as_uri()}#node_9")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 900)
    width, height = image.size
    graph, table = (Counter({colour: n for n, colour in image.crop(box).getcolors(width * height)})
                    for box in ((0, 0, width * 11 // 20, height),
                                (width * 11 // 20, 0, width, height)))
    busy = sum(n for colour, n in graph.items() if colour != (255, 255, 255))
    assert busy > 0.05 * sum(graph.values())  # not blank: nodes, edges and text cover the area
    # every kind of node the inference form has is drawn with its own fill (no condition is
    # left: m2m's folds tabulated it)
    fills = {role: FILLS[role] for role in ("feature", "scenario", "layer", "output")}
    for role, fill in {**fills, "scenario feature": SCENARIO_FILL}.items():
        rgb = tuple(int(fill[k:k + 2], 16) for k in (1, 3, 5))
        assert graph[rgb] > 300, (role, fill, graph[rgb])
    assert graph[HIGHLIGHT] > 100  # the selected node's outline: the script ran
    assert table[ROW_HIGHLIGHT] > 1000  # and its row in the explain table is highlighted
