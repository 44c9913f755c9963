"""The compiler driver: runs the pipeline stages in order and writes artifacts atomically.

Everything the CLI does goes through here, so library users get the same behaviour:
`check_source` (parse + sema + lower + verify), `compile_source` (and the torch backend), and
`write_artifacts` (temporary directory + rename: a failure leaves the destination untouched).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dwc.diagnostics import Diagnostic, DiagnosticError
from dwc.ir.graph import Graph
from dwc.ir.verify import verify
from dwc.manifest import manifest
from dwc.parse import parse
from dwc.parse.ast import Spec
from dwc.passes import PassManager, PassRecord, pipeline_for
from dwc.sema.data import DataSpec
from dwc.sema.elaborate import elaborate, elaborate_with_data
from dwc.source import SourceFile

if TYPE_CHECKING:
    from dwc.backends.tvm_tune import TuneOptions

TARGETS = ("torch", "onnx", "tvm", "aoti")


@dataclass(frozen=True)
class ExportOptions:
    """Options of the deployable targets (onnx, tvm, aoti)."""

    weights: str | None = None
    opset: int = 17
    triton: bool = False
    device: str = "cpu"
    arch: str | None = None
    max_batch: int = 8192
    wrapper_opt: str = "O1"
    """aoti: the optimisation level of the package's C++ wrapper (O0 builds faster)."""
    prepack: bool = True
    """aoti: with max_batch >= PREPACKED_FROM, also build the package prepacked for large
    batches (dwc.backends.aoti_export)."""
    tune: TuneOptions | None = None
    """tvm cpu: MetaSchedule tuning of bucketed batch sizes (`--tune`)."""


@dataclass(frozen=True)
class CompileResult:
    source: SourceFile
    graph: Graph
    """The training graph after the pipeline (what the generated module's forward computes)."""
    inference: Graph
    """The folded inference graph (what `for_inference()` and exported artifacts compute)."""
    model_graph: Graph
    """The graph after the model passes only: the parameters every optimisation level shares."""
    records: list[PassRecord]
    files: dict[str, str]
    """Artifact file name -> contents."""


def load_source(path: str | os.PathLike[str]) -> SourceFile:
    """Read a spec file. Raises DiagnosticError(DW401) when it cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        name = str(path)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise DiagnosticError([Diagnostic.file_level(
            "DW401", f"cannot read '{name}': {reason}",
            help="check the path; specs are UTF-8 text files")]) from None
    return SourceFile(str(path), text)


def check_source(source: SourceFile, spec: Spec | None = None) -> Graph:
    """Parse, check and lower a spec to verified IR. Raises DiagnosticError on spec errors.

    `spec`: the source's AST when the caller has parsed it already (the language server)."""
    graph = elaborate(parse(source) if spec is None else spec, source)
    verify(graph)
    return graph


def check_data_source(source: SourceFile) -> tuple[Graph, DataSpec]:
    """`check_source`, and the spec's data options (dwc.sema.data: how `dwc data prepare`
    reads each input and target from a raw log)."""
    graph, data = elaborate_with_data(parse(source), source)
    verify(graph)
    return graph, data


def tabulated_graph(train: Graph, records: list[PassRecord]) -> Graph:
    """The graph fold-scenario-table tabulated: its generators are what for_inference()
    evaluates per cell (the training graph when no fold ran)."""
    before = train
    for record in records:
        if record.name.startswith("fold-scenario-table"):
            break
        before = record.graph
    return before


def optimize(graph: Graph, level: int = 2, passes: str | None = None, verify_each: bool = False,
             on_pass: Callable[[PassRecord], None] | None = None
             ) -> tuple[Graph, Graph, Graph, list[PassRecord]]:
    """Run the pass pipeline: returns (model graph, training graph, inference graph, records).

    Raises PassError for a malformed `passes` string.
    """
    pipeline = pipeline_for(level, passes)
    manager = PassManager(verify_each=verify_each, on_pass=on_pass)
    model = manager.run(graph, pipeline.model, "model")
    train = manager.run(model, pipeline.train, "train")
    inference = manager.run(train, pipeline.inference, "inference")
    verify(train)  # cheap, and a broken pass must never reach a backend
    verify(inference)
    return model, train, inference, manager.records


def compile_source(source: SourceFile, target: str = "torch", level: int = 2,
                   passes: str | None = None, verify_each: bool = False,
                   on_pass: Callable[[PassRecord], None] | None = None,
                   export: ExportOptions | None = None) -> CompileResult:
    """Compile a spec for `target`; returns the artifact files without writing them."""
    if target not in TARGETS:
        raise DiagnosticError([Diagnostic.file_level(
            "DW404", f"unknown target '{target}'", help=f"targets: {', '.join(TARGETS)}")])
    graph = check_source(source)
    model, train, inference, records = optimize(graph, level, passes, verify_each, on_pass)
    from dwc.backends.torch import generate

    level_name = f"--passes {passes}" if passes is not None else f"-O{level}"
    module = generate(model, train, inference, source, level_name, tabulated_graph(train, records))
    files: dict[str, str | bytes] = {"model.py": module.source}
    result = CompileResult(source, train, inference, model, records, files)
    if target == "torch":
        files["spec.dw"] = source.text
        files["manifest.json"] = manifest(
            inference, records, {"kind": "torch", "class": module.class_name,
                                 "level": level_name}, {"module": "model.py", "spec": "spec.dw"},
            None, "none (a module to train)")
        return result
    from dwc.backends.artifacts import export_artifact

    exported = export_artifact(result, target, export or ExportOptions())
    return CompileResult(source, train, inference, model, records, exported)


def write_artifacts(files: dict[str, str | bytes], out_dir: str | os.PathLike[str],
                    what: str = "output directory with -o") -> Path:
    """Write `files` into `out_dir` atomically.

    The files are written into a temporary sibling directory first. A new `out_dir` is created by
    renaming that directory; an existing one gets each file moved in with `os.replace` (atomic per
    file; a symlinked file's target is replaced, the link kept), so a reader never sees half a
    file and other files in the directory are left alone.
    Directories and files get the permissions the umask gives new ones (0755 / 0644 under umask
    022); a file that replaces an existing one keeps that file's mode.
    """
    out = Path(out_dir)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".dwc-tmp", dir=parent))
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it 0700
    except OSError as error:
        raise _write_error(out, error, what) from None
    try:
        for name, content in sorted(files.items()):
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                with open(path, "w", encoding="utf-8", newline="\n") as handle:
                    handle.write(content)
        if not out.exists():
            os.replace(staging, out)
            return out
        if not out.is_dir():
            raise NotADirectoryError(20, "exists and is not a directory", str(out))
        for name in sorted(files):
            target = Path(os.path.realpath(out / name))  # a symlinked artifact: its target
            if target.exists() and not target.is_file():
                raise OSError(21, "exists and is not a regular file", str(target))
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_file():
                shutil.copymode(target, staging / name)
            os.replace(staging / name, target)
        return out
    except OSError as error:
        raise _write_error(out, error, what) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], what: str = "output file") -> Iterator[BinaryIO]:
    """A binary handle whose contents replace `path` only when the block succeeds.

    It writes a temporary file beside `path` and renames it over `path` at the end, so a reader
    (or a failed command) never leaves half a file. A symbolic link is followed (its target is
    replaced, the link kept); anything but a regular file there (a directory, a device such as
    /dev/null, a FIFO) is refused, since replacing it would destroy it. Missing parent
    directories are created, as `-o` does. The file gets the umask's permissions (0644 under
    umask 022), or keeps those of the file it replaces. Raises DiagnosticError(DW402) when `path`
    cannot be written; `what` says in the hint what to choose instead.
    """
    target = Path(os.path.realpath(path))
    try:
        if target.exists() and not target.is_file():
            kind = "a directory" if target.is_dir() else "not a regular file"
            raise OSError(21, f"is {kind}", str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(
            "wb", prefix=f".{target.name}.", suffix=".dwc-tmp", dir=target.parent or ".",
            delete=False)
    except OSError as error:
        raise _write_error(Path(path), error, what) from None
    try:
        with handle:
            yield handle
        if target.is_file():
            shutil.copymode(target, handle.name)
        else:
            os.chmod(handle.name, 0o666 & ~_umask())
        os.replace(handle.name, target)
    except OSError as error:
        raise _write_error(Path(path), error, what) from None
    finally:
        if os.path.exists(handle.name):
            os.unlink(handle.name)


def ensure_directory(path: str | os.PathLike[str], what: str) -> Path:
    """Create the output directory `path` (and its parents) up front, so that a command that
    writes there later fails before any work; DiagnosticError(DW402) when it cannot be."""
    out = Path(path)
    try:
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(20, "exists and is not a directory", str(out))
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied", str(out))
    except OSError as error:
        raise _write_error(out, error, what) from None
    return out


def missing_folders(path: str | os.PathLike[str]) -> list[Path]:
    """`path` and the folders above it that do not exist yet, the deepest first (what
    `ensure_directory` is about to create)."""
    missing = []
    path = Path(path).absolute()
    while not path.exists() and not path.is_symlink() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def remove_empty(folders: list[Path]) -> None:
    """After a failed command: remove the folders it created (`missing_folders`, the deepest
    first) while they are empty; a folder holding anything stays, with its parents."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _umask() -> int:
    """The process's umask, read without changing it where Linux reports it (setting and
    restoring it would race with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_error(out: Path, error: OSError, what: str = "output directory with -o") -> DiagnosticError:
    reason = error.strerror or str(error)
    return DiagnosticError([Diagnostic.file_level(
        "DW402", f"cannot write '{out}': {reason}",
        help=f"choose a writable {what}; nothing was written")])
