"""Packaging: grammar/ and templates/ work from a built wheel in a fresh venv, not only the checkout."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_wheel_compiles_an_example_in_a_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(ROOT)], check=True, capture_output=True)
    (wheel,) = dist.glob("dwc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dwc/_data/grammar/dwc.lark" in names
    assert "dwc/_data/templates/torch/model.py.j2" in names
    assert "dwc/_data/templates/graph/page.html.j2" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", str(wheel)], check=True, capture_output=True)
    # dwc's own dependencies (lark, jinja2) come from the test environment's site-packages
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True).stdout
    Path(site.strip(), "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "work"
    work.mkdir()
    spec = work / "m.dw"
    spec.write_text((ROOT / "examples" / "dw_mlp.dw").read_text())
    proc = subprocess.run([str(venv / "bin" / "dwc"), "compile", "m.dw", "-o", "out"], cwd=work,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    where = subprocess.run([str(python), "-c", "import dwc.resources as r; "
                            "print(r.grammar_path()); print(r.templates_dir())"], cwd=work,
                           capture_output=True, text=True, check=True).stdout.split()
    assert all("site-packages/dwc/_data" in w for w in where)
    assert (work / "out" / "model.py").read_text().startswith('"""DwMlp')
    # `dwc graph`'s page template ships too; graphviz-pure is the test environment's (on PATH)
    env = {"PATH": f"{sysconfig.get_path('scripts')}:/usr/bin:/bin"}
    proc = subprocess.run([str(venv / "bin" / "dwc"), "graph", "m.dw", "-o", "m.html"], cwd=work,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "<svg" in (work / "m.html").read_text()
