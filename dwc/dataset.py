"""The training-data contract of `dwc train` (docs/data.md), checked whole before the first step.

A data file is a NumPy `.npz` archive whose keys are `SPLIT/COLUMN`: `train/` and `valid/` are
required, `test/` is optional, other keys are ignored. Each split holds one column per input of the
compiled model (`Graph.inputs`: ids int64 [N], numerics float32 [N, w], sequences int64 [N, T] with
`NAME_len` int64 [N]) and one per output, named after it (float32 [N, width]; a `ce` output's
target is int64 class ids [N]).

`load_training_data` reads every split the model needs and checks every row of every column: a
problem becomes a coded diagnostic (DW601-DW608) naming the split, the column and the first
offending row, and all problems of a file are reported together. Columns come back in the dtypes
the model reads; a conversion that can lose precision (float64 -> float32) is reported as a DW609
note.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dwc.diagnostics import Diagnostic, DiagnosticError, did_you_mean
from dwc.ir.graph import Graph, InputSpec, OutputSpec

SPLITS = ("train", "valid", "test")
_SAVEZ_HINT = ("write the splits with numpy.savez(path, **{'train/NAME': array, ...}); "
               "docs/data.md has the layout")
REQUIRED_SPLITS = ("train", "valid")


@dataclass(frozen=True)
class Split:
    """One split, validated: model inputs and targets as the generated module reads them."""

    name: str
    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        return len(next(iter(self.inputs.values())))


@dataclass(frozen=True)
class TrainingData:
    path: str
    splits: dict[str, Split]
    notes: tuple[Diagnostic, ...] = ()
    """DW609 notes: the columns that were converted."""


def read_npz(path: str, wanted: set[str] | None = None
             ) -> dict[str, dict[str, np.ndarray | None]]:
    """The columns of every split in a .npz archive: {split: {column: array}}. With `wanted`,
    other columns are named (value None) but never read. DW601 if the file or a column cannot be
    read."""
    try:
        if Path(path).exists() and not Path(path).is_file() and not Path(path).is_dir():
            raise _error("DW601", f"cannot read '{path}': it is not a regular file (a pipe or a "
                         "device)", "a .npz archive is read by seeking: save it to a file")
        with open(path, "rb") as handle:
            magic = handle.read(6)
        if magic == b"\x93NUMPY":
            raise _error("DW601", f"'{path}' holds a single array (.npy), not a .npz archive of "
                         "columns", _SAVEZ_HINT)
        if not magic.startswith(b"PK"):
            what = "it is empty" if not magic else "it is not a zip archive"
            raise _error("DW601", f"'{path}' is not a .npz archive ({what})", _SAVEZ_HINT)
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise _error("DW601", f"cannot read '{path}': no such file",
                     "check the path; `dwc data generate FILE` writes a sample") from None
    except IsADirectoryError:
        raise _error("DW601", f"cannot read '{path}': it is a directory",
                     "pass the .npz file itself") from None
    except PermissionError:
        raise _error("DW601", f"cannot read '{path}': permission denied",
                     "check the file's permissions") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise _error("DW601", f"'{path}' is not a .npz archive ({_reason(error)})",
                     _SAVEZ_HINT) from None
    splits: dict[str, dict[str, np.ndarray | None]] = {}
    with archive:
        for key in archive.files:
            split, sep, column = key.partition("/")
            if not sep or split not in SPLITS:
                continue
            columns = splits.setdefault(split, {})
            if wanted is not None and column not in wanted:
                columns[column] = None  # a column the model does not read: named, never loaded
                continue
            try:
                value = archive[key]
            except MemoryError:
                raise _error("DW601", f"'{path}': column '{key}' does not fit in memory (its "
                             "header claims more data than there is room for)",
                             "rewrite the file with numpy.savez") from None
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
                pickled = "allow_pickle" in str(error)
                raise _error("DW601", f"'{path}': cannot read column '{key}' ({_reason(error)})",
                             "object (pickled) arrays are refused; store ids as integers and "
                             "values as floats" if pickled else "the archive member is damaged "
                             "or truncated: " + _SAVEZ_HINT) from None
            if not isinstance(value, np.ndarray):  # a zip member that is not .npy data
                raise _error("DW601", f"'{path}': column '{key}' is not a NumPy array",
                             _SAVEZ_HINT)
            columns[column] = value
    return splits


def load_training_data(path: str, graph: Graph, splits: tuple[str, ...] = SPLITS) -> TrainingData:
    """Read and check every row of the splits `graph`'s model needs (see the module docstring).

    Raises DiagnosticError with every problem found; the optional `test` split is read when
    present.
    """
    wanted = {spec.name for spec in graph.inputs} | {out.name for out in graph.outputs}
    columns = read_npz(path, wanted)
    problems: list[Diagnostic] = []
    notes: list[Diagnostic] = []
    checked: dict[str, Split] = {}
    for name in splits:
        if name not in columns or not columns[name]:
            if name in REQUIRED_SPLITS:
                present = ", ".join(f"{s}/" for s in sorted(columns)) or "no SPLIT/NAME keys"
                problems.append(Diagnostic.file_level(
                    "DW602", f"'{path}' has no '{name}' split (it has {present})",
                    help="keys are SPLIT/COLUMN, e.g. 'train/user_id'; train/ and valid/ are "
                         "required"))
            continue
        split = _SplitChecker(path, name, columns[name], problems, notes).check(graph)
        if split is not None:
            checked[name] = split
    if problems:
        raise DiagnosticError(problems)
    return TrainingData(path, checked, tuple(notes))


def scenario_cells(inputs: dict[str, np.ndarray], graph: Graph) -> np.ndarray | None:
    """Each row's scenario cell, numbered row-major over `scenarios a * b` (a's id times b's
    vocabulary plus b's id), as the generated module numbers them; None without `scenarios`."""
    if not graph.scenario:
        return None
    vocab = {spec.name: spec.vocab for spec in graph.inputs}
    cells = np.zeros(len(inputs[graph.scenario[0]]), dtype=np.int64)
    for feature in graph.scenario:
        cells = cells * vocab[feature] + inputs[feature]
    return cells


def cell_name(cell: int, graph: Graph, names: dict[str, list[str]] | None = None) -> str:
    """`country=3, page=1` for a cell number of `scenario_cells`; with `names` (a feature's
    vocabulary: id k is names[feature][k]), `country=US, page=feed`."""
    vocab = {spec.name: spec.vocab for spec in graph.inputs}
    parts = []
    for feature in reversed(graph.scenario):
        cell, value = divmod(cell, vocab[feature])
        tokens = (names or {}).get(feature)
        parts.append(f"{feature}={tokens[value] if tokens and value < len(tokens) else value}")
    return ", ".join(reversed(parts))


class _SplitChecker:
    """Checks one split's columns against the model's inputs and outputs, collecting problems."""

    def __init__(self, path: str, split: str, columns: dict[str, np.ndarray | None],
                 problems: list[Diagnostic], notes: list[Diagnostic]) -> None:
        self.path, self.split, self.columns = path, split, columns
        self.problems, self.notes = problems, notes
        self.rows = 0
        self.rows_from = ""

    def check(self, graph: Graph) -> Split | None:
        # the split's row count is what most of the model's columns have (the first such column
        # in the model's order is named), so one short column is the one blamed
        names = [spec.name for spec in graph.inputs] + [out.name for out in graph.outputs]
        lengths = {n: len(a) for n in names
                   if (a := self.columns.get(n)) is not None and a.ndim >= 1}
        if lengths:
            counts = Counter(lengths.values())
            self.rows = max(counts, key=lambda n: (counts[n], -list(lengths.values()).index(n)))
            self.rows_from = next(n for n, rows in lengths.items() if rows == self.rows)
        inputs = {spec.name: self.input(spec) for spec in graph.inputs}
        targets = {out.name: self.target(out) for out in graph.outputs}
        lengths = [spec for spec in graph.inputs if spec.role == "lengths"]
        for spec in lengths:
            if inputs.get(spec.name) is not None:
                self.lengths(spec, graph)
        if any(a is None for a in (*inputs.values(), *targets.values())):
            return None
        if self.rows == 0:
            self.fail("DW602", f"the '{self.split}' split has no rows",
                      "every split the model reads needs at least one row")
            return None
        return Split(self.split, inputs, targets)

    # --- problems ---------------------------------------------------------------------------

    def fail(self, code: str, message: str, help: str) -> None:
        self.problems.append(Diagnostic.file_level(code, message, help=help))

    def where(self, column: str) -> str:
        return f"{self.split}/{column}"

    def column(self, name: str, what: str) -> np.ndarray | None:
        if name not in self.columns:
            hint = did_you_mean(name, self.columns)
            self.fail("DW603", f"the '{self.split}' split has no column '{name}' ({what})",
                      f"add '{self.split}/{name}' to the archive" + (f"; {hint}" if hint else
                      f" (it has {', '.join(sorted(self.columns))})"))
            return None
        return self.columns[name]

    def shape(self, name: str, array: np.ndarray, tail: tuple[int, ...], hint: str) -> bool:
        expected = "[" + ", ".join(["N", *map(str, tail)]) + "]"
        if array.ndim != 1 + len(tail) or tuple(array.shape[1:]) != tail:
            got = "[" + ", ".join(map(str, array.shape)) + "]"
            self.fail("DW605", f"{self.where(name)} has shape {got}, the model reads {expected}",
                      hint)
            return False
        if len(array) != self.rows:
            self.fail("DW605", f"{self.where(name)} has {len(array):,} rows but "
                      f"{self.where(self.rows_from)} has {self.rows:,}",
                      "every column of a split has one row per example")
            return False
        return True

    def first_row(self, bad: np.ndarray) -> tuple[int, int]:
        """(first offending row, number of offending rows) of a boolean mask over rows."""
        if bad.ndim > 1:
            bad = bad.reshape(len(bad), -1).any(axis=1)
        rows = np.flatnonzero(bad)
        return int(rows[0]), len(rows)

    # --- inputs -----------------------------------------------------------------------------

    def input(self, spec: InputSpec) -> np.ndarray | None:
        what = {"ids": "ids of a categorical feature", "sequence": "a sequence of ids",
                "lengths": f"the lengths of sequence '{spec.feature}'",
                "numeric": "a numeric feature"}[spec.role]
        array = self.column(spec.name, what)
        if array is None:
            return None
        if spec.role == "numeric":
            hint = (f"reshape it with {spec.name}[:, None]" if spec.shape == (1,) and
                    array.ndim == 1 else f"a numeric of width {spec.shape[0]} is [N, "
                    f"{spec.shape[0]}]")
            if not self.shape(spec.name, array, spec.shape, hint):
                return None
            return self.floats(spec.name, array, "numeric")
        hint = {"ids": "one id per row: a 1-D integer array",
                "lengths": "one length per row: a 1-D integer array",
                "sequence": f"one row of {spec.shape[0] if spec.shape else '?'} ids per example, "
                            f"padded after '{spec.name}_len' valid ids"}[spec.role]
        if array.dtype.kind not in "iub":
            self.fail("DW604", f"{self.where(spec.name)} is {array.dtype}, the model reads "
                      "int64 ids" if spec.role != "lengths" else
                      f"{self.where(spec.name)} is {array.dtype}, lengths are int64",
                      "encode values as integer ids (numpy: .astype('int64'))" if
                      array.dtype.kind in "OUS" else "cast it with .astype('int64')")
            return None
        if not self.shape(spec.name, array, spec.shape, hint):
            return None
        if spec.vocab is not None and array.size:
            bad = (array < 0) | (array >= spec.vocab)
            if bad.any():
                row, count = self.first_row(bad)
                value = array[row] if array.ndim == 1 else array[row][bad[row]][0]
                self.fail("DW606", f"{self.where(spec.name)} row {row}: id {value} is outside "
                          f"[0, {spec.vocab}) ({_rows(count)} in all)",
                          f"ids of '{spec.feature}' must be below its vocab = {spec.vocab}; map "
                          "unknown values to a reserved id or raise vocab in the spec")
                return None
        return array.astype(np.int64, copy=False)

    def lengths(self, spec: InputSpec, graph: Graph) -> None:
        array = self.columns[spec.name]
        max_len = next(s.shape[0] for s in graph.inputs
                       if s.role == "sequence" and s.feature == spec.feature)
        bad = (array < 0) | (array > max_len)
        if bad.any():
            row, count = self.first_row(bad)
            self.fail("DW607", f"{self.where(spec.name)} row {row}: length {array[row]} is "
                      f"outside 0..{max_len} ({_rows(count)} in all)",
                      f"'{spec.name}' counts the valid ids of '{spec.feature}' (max_len = "
                      f"{max_len}); truncate longer histories")

    def floats(self, name: str, array: np.ndarray, what: str) -> np.ndarray | None:
        if array.dtype.kind not in "fiub":
            self.fail("DW604", f"{self.where(name)} is {array.dtype}, the model reads float32 "
                      f"{what}s", "convert it to numbers (numpy: .astype('float32'))")
            return None
        if array.dtype.kind == "f" and array.dtype.itemsize > 4:
            self.notes.append(Diagnostic.file_level(
                "DW609", f"{self.where(name)} is {array.dtype}; read as float32",
                help="store float32 to skip the conversion"))
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: below
            converted = array.astype(np.float32, copy=False)
        finite = np.isfinite(converted)
        if not finite.all():
            row, count = self.first_row(~finite)
            value = array[row].ravel()[~finite[row].ravel()][0]
            problem = "is not finite" if not np.isfinite(value) else "does not fit float32"
            self.fail("DW608", f"{self.where(name)} row {row}: {what} value {value:g} {problem} "
                      f"({_rows(count)} in all)",
                      "fill missing values before training (e.g. with 0 or the column mean)"
                      if not np.isfinite(value) else "rescale the column (e.g. log1p)")
            return None
        return converted

    # --- targets ----------------------------------------------------------------------------

    def target(self, out: OutputSpec) -> np.ndarray | None:
        array = self.column(out.name, f"the target of output '{out.name}' (loss = {out.loss})")
        if array is None:
            return None
        if out.loss == "ce":
            if array.dtype.kind not in "iu":
                self.fail("DW604", f"{self.where(out.name)} is {array.dtype}, a ce target is "
                          "int64 class ids", "store the class index of each row (int64 [N])")
                return None
            if not self.shape(out.name, array, (), "one class id per row: a 1-D int array"):
                return None
            bad = (array < 0) | (array >= out.width)
            if bad.any():
                row, count = self.first_row(bad)
                self.fail("DW608", f"{self.where(out.name)} row {row}: class {array[row]} is "
                          f"outside [0, {out.width}) ({_rows(count)} in all)",
                          f"'{out.name}' has {out.width} classes")
                return None
            return array.astype(np.int64, copy=False)
        tail = (out.width,)
        hint = (f"reshape it with {out.name}[:, None]" if out.width == 1 and array.ndim == 1
                else f"output '{out.name}' has width {out.width}")
        if not self.shape(out.name, array, tail, hint):
            return None
        values = self.floats(out.name, array, "target")
        if values is None:
            return None
        low, high, allowed, hint = TARGET_RANGES.get(out.loss, ANY_TARGET)
        bad = (values < low) | (values > high)
        if bad.any():
            row, count = self.first_row(bad)
            value = values[row][bad[row]][0]
            self.fail("DW608", f"{self.where(out.name)} row {row}: target {value:g} is not "
                      f"{allowed} as loss = {out.loss} needs ({_rows(count)} in all)", hint)
            return None
        return values


TARGET_RANGES = {
    "bce": (0.0, 1.0, "in [0, 1]", "bce targets are 0/1 labels or probabilities in [0, 1]"),
    "poisson": (0.0, np.inf, ">= 0", "poisson targets are counts >= 0"),
}
"""Loss -> (lowest, highest, the range in words, the hint): the values a float target of that
loss can take, checked in a .npz (DW608), while preparing data (DW613) and in prepared shards
(DW646)."""

ANY_TARGET = (-np.inf, np.inf, "finite", "targets are finite numbers")
"""The range of a target whose loss bounds nothing (mse: every finite value)."""


def _rows(count: int) -> str:
    return f"{count:,} row" + ("" if count == 1 else "s")


def _error(code: str, message: str, help: str) -> DiagnosticError:
    return DiagnosticError([Diagnostic.file_level(code, message, help=help)])


def _reason(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]
