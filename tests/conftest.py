"""Shared fixtures: example specs, compiling and importing generated modules, golden files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dwc.backends.export import load_generated
from dwc.diagnostics import DiagnosticError
from dwc.driver import check_source, compile_source
from dwc.source import SourceFile

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.dw"))
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite golden files from the current output (review the diff!)")


@pytest.fixture
def golden(request):
    """`golden(relative_path, text)`: compare with (or, with --update-golden, rewrite) a file."""

    def check(relative: str, text: str) -> None:
        path = GOLDEN / relative
        if request.config.getoption("--update-golden"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        assert path.exists(), f"missing golden file {path}; run pytest --update-golden"
        assert text == path.read_text(encoding="utf-8"), (
            f"output differs from {path}; if the change is intended, rerun with --update-golden "
            "and review the diff"
        )

    return check


def source_of(text: str, name: str = "test.dw") -> SourceFile:
    return SourceFile(name, text)


def diagnostics_of(text: str):
    """The diagnostics a spec produces (parse + sema); [] when it is valid."""
    try:
        check_source(source_of(text))
    except DiagnosticError as error:
        return error.diagnostics
    return []


def load_module(source: str, name: str = "generated"):
    """Import generated model.py source as a module (the fuzz test picks classes itself)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_loader(f"_dwc_test_{name}", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def compile_text(text: str, name: str = "test.dw", **options):
    """Compile spec text; returns (CompileResult, the training model class)."""
    result = compile_source(source_of(text, name), **options)
    return result, load_generated(result.files["model.py"], Path(name).stem)


def compile_example(path: Path, **options):
    return compile_text(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), **options)


def example_ids():
    return [p.stem for p in EXAMPLES]
