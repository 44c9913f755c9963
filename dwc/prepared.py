"""What `dwc train` reads: a prepared directory (`dwc data prepare`) or a .npz, as batches.

A prepared directory holds `manifest.json`, Parquet shards per split and the vocabularies
(docs/data.md has the layout). `open_training_data` checks the manifest against the compiled
model (its inputs and outputs by name, dtype and shape), opens every shard's footer (its columns,
their types and the row counts; the ids' row-group statistics against the vocabularies) before the
first step, and reports problems as coded diagnostics (DW640-DW646). A manifest made from another
version of the spec is a DW642 warning, not an error.

Both kinds of data serve the same batch interface (`Split`): `epoch` streams one epoch of shuffled
training batches for one DDP rank, `batches` reads every row in file order for evaluation, and
`read_targets` reads the target columns whole (the selection rule needs their classes). Batches are
dicts of torch tensors in the dtypes and shapes the generated module reads. Parquet shards are read
with `pyarrow.parquet` record batch by record batch on a background thread, so the reader works
while the model trains and memory holds one shuffle buffer, never a split.

Shuffling and DDP: each epoch orders the shards at random (seeded by the seed and the epoch, the
same on every rank), lays them end to end and gives rank r of W the r-th of W equal row ranges,
so ranks read disjoint rows (mostly whole shards; a shard on a range boundary is read by two
ranks, each its part; with fewer shards than ranks, ranks read disjoint row ranges of one shard)
and every rank takes the same number of steps (DDP waits for all ranks at every step). The
N mod W rows that sit out an epoch are other rows every epoch: the rows are a ring whose cut
moves by N mod W rows each epoch (`epoch_pieces`), so even with one shard no row sits out
every epoch. Within its
range a rank shuffles through a buffer of `shuffle_buffer` rows (seeded by seed, epoch and rank).
A .npz is in memory: its rows are permuted whole, then cut into the same W ranges.
"""

from __future__ import annotations

import abc
import hashlib
import json
import math
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dwc.dataset import ANY_TARGET, TARGET_RANGES, TrainingData, load_training_data
from dwc.dataset import Split as Arrays
from dwc.diagnostics import Diagnostic, DiagnosticError
from dwc.encoding import UNKNOWN
from dwc.ir.graph import Graph
from dwc.prepare import KINDS as _KINDS

FORMAT, VERSION = "dwc-prepared", 1
MANIFEST = "manifest.json"
READ_ROWS = 65_536
"""Rows per record batch read from a shard (pyarrow's iter_batches)."""
SHUFFLE_BUFFER = 200_000
_PREPARE = "rerun `dwc data prepare SPEC ... --out DIR` with the spec you train"

Batch = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Piece:
    """Rows [start, stop) of shard `shard` (an index into a split's shards)."""

    shard: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def epoch_pieces(shard_rows: list[int], world: int, seed: int, epoch: int) -> list[list[Piece]]:
    """Each rank's pieces of one epoch: the shards in a random order (seeded by seed and epoch),
    laid end to end as a ring of N rows and cut into `world` consecutive ranges of N // world
    rows from row (epoch - 1) * (N mod world) of the ring; the N mod world rows before that
    start sit out, so with an unchanged order (one shard) consecutive epochs leave out
    consecutive blocks of the ring and every row is read in any `world` epochs in a row."""
    order = np.random.default_rng([seed, epoch]).permutation(len(shard_rows)).tolist()
    total = sum(shard_rows)
    per_rank = total // world
    first = (epoch - 1) * (total - per_rank * world) % total if total else 0
    bounds = np.cumsum([0, *(shard_rows[s] for s in order)]).tolist()  # shards in the ring
    ranks: list[list[Piece]] = [[] for _ in range(world)]
    for rank in range(world):
        low = (first + rank * per_rank) % total if total else 0
        high = low + per_rank
        ranges = [(low, high)] if high <= total else [(low, total), (0, high - total)]
        for a, b in ranges:
            for i, shard in enumerate(order):
                start, stop = max(a, bounds[i]), min(b, bounds[i + 1])
                if start < stop:
                    ranks[rank].append(Piece(shard, start - bounds[i], stop - bounds[i]))
    return ranks


@dataclass
class Epoch:
    """One rank's batches of one epoch: exactly `steps` of them, `rows` rows in all."""

    steps: int
    rows: int
    batches: Iterator[Batch]

    def close(self) -> None:
        close = getattr(self.batches, "close", None)
        if close is not None:
            close()


class Split(abc.ABC):
    """One split of training data behind the batch interface (module docstring)."""

    name: str
    rows: int

    @abc.abstractmethod
    def epoch(self, epoch: int, seed: int, rank: int, world: int, batch_size: int,
              shuffle_buffer: int = SHUFFLE_BUFFER) -> Epoch:
        """Rank `rank`'s shuffled training batches of epoch `epoch` (of `world` ranks)."""

    @abc.abstractmethod
    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Every row, in file order (evaluation)."""

    @abc.abstractmethod
    def read_targets(self) -> dict[str, np.ndarray]:
        """Every row's targets, whole (the selection rule looks at their classes)."""


def _steps(rows: int, batch_size: int) -> int:
    return math.ceil(rows / batch_size)


class ArraySplit(Split):
    """A split held in memory (a checked .npz split): permuted whole every epoch."""

    def __init__(self, split: Arrays) -> None:
        self.name, self.rows = split.name, split.rows
        self.arrays = split
        self.inputs = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in split.inputs.items()}
        self.target_tensors = {k: torch.from_numpy(np.ascontiguousarray(v))
                               for k, v in split.targets.items()}

    def epoch(self, epoch, seed, rank, world, batch_size, shuffle_buffer=SHUFFLE_BUFFER):
        per_rank = self.rows // world
        order = np.random.default_rng([seed, epoch]).permutation(self.rows)
        mine = torch.from_numpy(order[rank * per_rank:(rank + 1) * per_rank])
        return Epoch(_steps(per_rank, batch_size), per_rank, self._take(mine, batch_size))

    def _take(self, index: torch.Tensor, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(index), batch_size):
            rows = index[start:start + batch_size]
            yield ({k: v[rows] for k, v in self.inputs.items()},
                   {k: v[rows] for k, v in self.target_tensors.items()})

    def batches(self, batch_size):
        for start in range(0, self.rows, batch_size):
            yield ({k: v[start:start + batch_size] for k, v in self.inputs.items()},
                   {k: v[start:start + batch_size] for k, v in self.target_tensors.items()})

    def read_targets(self):
        return dict(self.arrays.targets)


@dataclass
class Source:
    """Training data of either kind: its splits behind the batch interface, and the names of
    the scenario features' ids (from the vocabularies; None: the ids are the names)."""

    path: str
    kind: str
    """"npz" or "prepared"."""
    splits: dict[str, Split]
    names: dict[str, list[str]] | None = None
    notes: tuple[Diagnostic, ...] = ()
    """Notes and warnings to print (DW609 conversions, DW642 another spec)."""
    identity: dict = field(default_factory=dict)
    """What a resumed run must find again: the kind, the rows of every split, the manifest's
    digest for a prepared directory."""


def is_prepared(path: str | Path) -> bool:
    return Path(path).is_dir()


def open_training_data(path: str, graph: Graph, spec_sha256: str | None = None) -> Source:
    """The data at `path` checked against `graph`'s model: a prepared directory (checked as the
    module docstring says) or a .npz (every row, dwc.dataset). DiagnosticError on problems."""
    if is_prepared(path):
        return _Prepared(Path(path), graph, spec_sha256).open()
    return npz_source(load_training_data(path, graph))


def npz_source(data: TrainingData) -> Source:
    splits = {name: ArraySplit(split) for name, split in data.splits.items()}
    return Source(data.path, "npz", splits, None, data.notes,
                  {"kind": "npz", "rows": {n: s.rows for n, s in splits.items()}})


def scenario_names(graph: Graph, names: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
    """The names of the scenario features' ids that `dataset.cell_name` prints."""
    if names is None:
        return None
    return {feature: names[feature] for feature in graph.scenario if feature in names}


# --- the prepared directory ---------------------------------------------------------------------


def _error(code: str, message: str, help: str) -> Diagnostic:
    return Diagnostic.file_level(code, message, help=help)


@dataclass(frozen=True)
class _Column:
    """One column the model reads: its name, the numpy dtype and per-row shape it becomes, and
    the largest valid id (None: not an id column)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    vocab: int | None = None
    is_target: bool = False
    is_length: bool = False
    loss: str | None = None
    """A target's loss (None for inputs): bce targets lie in [0, 1], poisson ones are >= 0."""

    @property
    def width(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def arrow_ok(self, arrow_type) -> bool:
        """Whether a Parquet column of `arrow_type` holds this column: the contract's type, a
        scalar or a list of one for width 1, any integer type for int64 scalars."""
        import pyarrow as pa

        scalar = pa.int64() if self.dtype == "int64" else pa.float32()
        if pa.types.is_fixed_size_list(arrow_type):
            return arrow_type.value_type == scalar and arrow_type.list_size == self.width and (
                bool(self.shape) or self.width == 1)
        if self.shape and self.width != 1:
            return False
        if self.dtype == "int64":
            return pa.types.is_integer(arrow_type)
        return arrow_type == scalar

    def expected(self) -> str:
        if not self.shape or (self.width == 1 and self.dtype == "float32"):
            return self.dtype if not self.shape else f"{self.dtype} (or fixed_size_list<{self.dtype}>[1])"
        return f"fixed_size_list<{self.dtype}>[{self.width}]"


def _columns(graph: Graph) -> list[_Column]:
    columns = [_Column(spec.name, spec.dtype, tuple(spec.shape),
                       spec.vocab if spec.role in ("ids", "sequence") else None)
               for spec in graph.inputs]
    lengths = {s.name: next(q.shape[0] for q in graph.inputs
                            if q.role == "sequence" and q.feature == s.feature)
               for s in graph.inputs if s.role == "lengths"}
    columns = [_Column(c.name, c.dtype, c.shape, lengths[c.name] + 1, is_length=True)
               if c.name in lengths else c
               for c in columns]
    for out in graph.outputs:
        if out.loss == "ce":
            columns.append(_Column(out.name, "int64", (), out.width, True, loss=out.loss))
        else:
            columns.append(_Column(out.name, "float32", (out.width,), None, True,
                                   loss=out.loss))
    return columns


class _Prepared:
    """Opens and checks one prepared directory against a model (module docstring)."""

    def __init__(self, root: Path, graph: Graph, spec_sha256: str | None) -> None:
        self.root, self.graph, self.spec_sha256 = root, graph, spec_sha256
        self.problems: list[Diagnostic] = []
        self.notes: list[Diagnostic] = []

    def fail(self, code: str, message: str, help: str) -> None:
        self.problems.append(_error(code, message, help))

    def raise_problems(self) -> None:
        if self.problems:
            raise DiagnosticError(self.problems)

    def open(self) -> Source:
        manifest = self.manifest()
        self.check_model(manifest)
        self.raise_problems()
        splits: dict[str, Split] = {}
        columns = _columns(self.graph)
        for name in ("train", "valid", "test"):
            entry = manifest["splits"].get(name)
            if entry is None:
                if name != "test":
                    self.fail("DW644", f"'{self.root}' has no '{name}' split",
                              "train/ and valid/ are required; " + _PREPARE)
                continue
            split = self.split(name, entry, columns)
            if split is not None:
                splits[name] = split
        names = self.vocabularies(manifest)
        self.raise_problems()
        digest = hashlib.sha256((self.root / MANIFEST).read_bytes()).hexdigest()
        identity = {"kind": "prepared", "rows": {n: s.rows for n, s in splits.items()},
                    "manifest_sha256": digest}
        return Source(str(self.root), "prepared", splits, names, tuple(self.notes), identity)

    def manifest(self) -> dict:
        path = self.root / MANIFEST
        hint = "a prepared directory is what `dwc data prepare SPEC ... --out DIR` writes"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DiagnosticError([_error(
                "DW640", f"'{self.root}' is a directory without {MANIFEST}, not prepared data",
                hint + "; or pass a .npz file")]) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DiagnosticError([_error(
                "DW640", f"cannot read '{path}': {str(error).splitlines()[0][:200]}",
                hint)]) from None
        problem = None
        if not isinstance(manifest, dict):
            problem = "it is not a JSON object"
        elif manifest.get("format") != FORMAT:
            problem = f"its format is {manifest.get('format')!r}, not {FORMAT!r}"
        elif manifest.get("version") != VERSION:
            problem = (f"it is version {manifest.get('version')!r}; this dwc reads version "
                       f"{VERSION}")
        else:
            for key, kind in (("inputs", list), ("outputs", list), ("splits", dict),
                              ("vocabularies", dict)):
                if not isinstance(manifest.get(key), kind):
                    problem = f"its '{key}' is missing or not a JSON {kind.__name__}"
                    break
        if problem:
            raise DiagnosticError([_error("DW640", f"'{path}' is not a dwc-prepared manifest "
                                          f"({problem})", _PREPARE)])
        return manifest

    def check_model(self, manifest: dict) -> None:
        """The manifest's inputs and outputs against the model's, and its spec digest."""
        sha = manifest.get("spec_sha256")
        if self.spec_sha256 is not None and sha != self.spec_sha256:
            self.notes.append(Diagnostic.file_level(
                "DW642", f"'{self.root}' was prepared from another version of the spec "
                f"(spec_sha256 {str(sha)[:12]}..., the spec trained is {self.spec_sha256[:12]}...)",
                help="training goes on since the inputs match; if a feature's vocabulary, "
                "hashing or columns changed, " + _PREPARE))
        entries = {}
        for key in ("inputs", "outputs"):
            for item in manifest[key]:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    entries[item["name"]] = item
        for spec in self.graph.inputs:
            self.check_entry(entries.get(spec.name), spec.name, f"input ({_KINDS[spec.role]})",
                             spec.dtype, tuple(spec.shape), _KINDS[spec.role])
        for out in self.graph.outputs:
            shape = () if out.loss == "ce" else (out.width,)
            self.check_entry(entries.get(out.name), out.name, f"output (loss = {out.loss})",
                             "int64" if out.loss == "ce" else "float32", shape, None)

    def check_entry(self, entry: dict | None, name: str, what: str, dtype: str,
                    shape: tuple[int, ...], kind: str | None) -> None:
        if entry is None:
            self.fail("DW641", f"the model reads {what} '{name}', which '{self.root}/"
                      f"{MANIFEST}' does not list", _PREPARE)
            return
        got_shape = tuple(entry.get("shape") or ())
        same_shape = got_shape == shape or (dtype == "float32" and
                                            math.prod(got_shape) == math.prod(shape) == 1)
        got_kind = entry.get("kind")
        if entry.get("dtype") != dtype or not same_shape or (kind and got_kind != kind):
            self.fail("DW641", f"'{name}' is {got_kind or ''} {entry.get('dtype')} "
                      f"{list(got_shape)} in the manifest; the model reads {what} {dtype} "
                      f"{list(shape)}".replace("  ", " "), _PREPARE)

    def split(self, name: str, entry: dict, columns: list[_Column]) -> ParquetSplit | None:
        import pyarrow.parquet as pq

        shards = entry.get("shards") if isinstance(entry, dict) else None
        rows = entry.get("rows") if isinstance(entry, dict) else None
        if not isinstance(shards, list) or not isinstance(rows, int) or not all(
                isinstance(s, str) for s in shards):
            self.fail("DW640", f"the manifest's '{name}' split lacks 'rows' or 'shards'",
                      _PREPARE)
            return None
        if rows == 0 or not shards:
            if name != "test":
                self.fail("DW644", f"the '{name}' split of '{self.root}' has no rows",
                          "every split the model reads needs at least one row")
            return None
        files = []
        for shard in shards:
            path = self.root / shard
            try:
                files.append(pq.ParquetFile(path))
            except FileNotFoundError:
                self.fail("DW643", f"shard '{path}' of the '{name}' split is missing",
                          "the directory is incomplete: " + _PREPARE)
            except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
                self.fail("DW643", f"shard '{path}' is not readable Parquet "
                          f"({str(error).splitlines()[0][:160]})", _PREPARE)
        if len(files) != len(shards):
            return None
        found = 0
        ok = True
        for shard, file in zip(shards, files, strict=True):
            found += file.metadata.num_rows
            ok &= self.check_shard(self.root / shard, file, columns)
        if ok and found != rows:
            self.fail("DW643", f"the '{name}' shards hold {found:,} rows; the manifest says "
                      f"{rows:,}", "the directory is incomplete or was changed: " + _PREPARE)
            return None
        return ParquetSplit(name, [self.root / s for s in shards], columns) if ok else None

    def check_shard(self, path: Path, file, columns: list[_Column]) -> bool:
        schema = file.schema_arrow
        ok = True
        for column in columns:
            index = schema.get_field_index(column.name)
            if index < 0:
                self.fail("DW641", f"shard '{path}' has no column '{column.name}'", _PREPARE)
                ok = False
            elif not column.arrow_ok(schema.field(index).type):
                self.fail("DW641", f"shard '{path}': column '{column.name}' is "
                          f"{schema.field(index).type}, the model reads {column.expected()}",
                          _PREPARE)
                ok = False
        return ok and self.check_ranges(path, file, columns)

    def check_ranges(self, path: Path, file, columns: list[_Column]) -> bool:
        """The ids' row-group statistics (min and max, where written) against the vocabularies:
        a spec whose vocab shrank after prepare is found before the first step."""
        bounded = {c.name: c for c in columns if c.vocab is not None}
        meta = file.metadata
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            for i in range(row_group.num_columns):
                chunk = row_group.column(i)
                column = bounded.get(chunk.path_in_schema.split(".")[0])
                stats = chunk.statistics
                if column is None or stats is None or not stats.has_min_max:
                    continue
                if stats.min < 0 or stats.max >= column.vocab:
                    self.fail("DW646", _range_message(column, path, f"row group {group}",
                                                      stats.max if stats.max >= column.vocab
                                                      else stats.min), _RANGE_HELP)
                    return False
        return True

    def vocabularies(self, manifest: dict) -> dict[str, list[str]]:
        """The tokens of the scenario features' vocabularies (id k is tokens[k - 1]); a hashed
        feature has none, and its ids are its names."""
        names = {}
        for feature in self.graph.scenario:
            relative = manifest["vocabularies"].get(feature)
            if relative is None:
                continue
            path = self.root / str(relative)
            try:
                vocab = json.loads(path.read_text(encoding="utf-8"))
                tokens = vocab.get("tokens") if vocab.get("encoding", "vocabulary") == \
                    "vocabulary" else None
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as error:
                self.fail("DW645", f"cannot read the vocabulary '{path}' of '{feature}' "
                          f"({str(error).splitlines()[0][:160]})", _PREPARE)
                continue
            if tokens is not None:
                if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                    self.fail("DW645", f"the vocabulary '{path}' of '{feature}' has no list of "
                              "tokens (strings, as prepare writes them)", _PREPARE)
                    continue
                names[feature] = [UNKNOWN, *map(str, tokens)]
        return names


def _range_message(column: _Column, path: Path, where: str, value) -> str:
    what = "length" if column.is_length else "id"
    limit = (f"0..{column.vocab - 1}" if what == "length" else f"[0, {column.vocab})")
    return f"shard '{path}' {where}: {column.name} {what} {value} is outside {limit}"


_RANGE_HELP = ("the spec's vocab (or max_len) is smaller than when the data was prepared; " +
               _PREPARE)


class ParquetSplit(Split):
    """A split of a prepared directory: Parquet shards read in record batches."""

    def __init__(self, name: str, paths: list[Path], columns: list[_Column]) -> None:
        import pyarrow.parquet as pq

        self.name, self.paths, self.columns = name, paths, columns
        meta = [pq.ParquetFile(p).metadata for p in paths]
        self.shard_rows = [m.num_rows for m in meta]
        self.group_rows = [[m.row_group(g).num_rows for g in range(m.num_row_groups)]
                           for m in meta]
        self.rows = sum(self.shard_rows)
        self.prefetch = True
        """Decode on a background thread (False: in the consumer's thread, for comparison)."""

    # --- reading --------------------------------------------------------------------------------

    def _read(self, piece: Piece, read_rows: int = READ_ROWS) -> Iterator[dict[str, np.ndarray]]:
        """The rows of one piece as numpy columns, a record batch at a time (only the row groups
        that overlap the piece are read)."""

        bounds = np.cumsum([0, *self.group_rows[piece.shard]])
        groups = [g for g in range(len(bounds) - 1)
                  if bounds[g] < piece.stop and bounds[g + 1] > piece.start]
        if not groups:
            return
        position = int(bounds[groups[0]])
        names = [c.name for c in self.columns]
        for record in _shard_batches(self.paths[piece.shard], batch_size=read_rows,
                                     row_groups=groups, columns=names):
            low, high = max(piece.start - position, 0), min(piece.stop - position, record.num_rows)
            if low < high:
                yield self._decode(record.slice(low, high - low), piece, position + low)
            position += record.num_rows
            if position >= piece.stop:
                break

    def _decode(self, record, piece: Piece, first_row: int) -> dict[str, np.ndarray]:
        return _decode(record, self.columns, self.paths[piece.shard], first_row)

    def _rows(self, pieces: list[Piece]) -> Iterator[dict[str, np.ndarray]]:
        for piece in pieces:
            yield from self._read(piece)

    def _split(self, columns: dict[str, np.ndarray]) -> Batch:
        # arrays straight from Arrow are read-only views, which torch will not wrap
        tensors = {c.name: torch.from_numpy(np.require(columns[c.name], requirements="CW"))
                   for c in self.columns}
        return ({c.name: tensors[c.name] for c in self.columns if not c.is_target},
                {c.name: tensors[c.name] for c in self.columns if c.is_target})

    # --- the batch interface --------------------------------------------------------------------

    def epoch(self, epoch, seed, rank, world, batch_size, shuffle_buffer=SHUFFLE_BUFFER):
        pieces = epoch_pieces(self.shard_rows, world, seed, epoch)[rank]
        rows = sum(p.rows for p in pieces)
        rng = np.random.default_rng([seed, epoch, rank])
        batches = _shuffled(self._rows(pieces), batch_size, max(shuffle_buffer, batch_size), rng)
        tensors = (self._split(b) for b in batches)
        return Epoch(_steps(rows, batch_size), rows, _prefetch(tensors) if self.prefetch else tensors)

    def batches(self, batch_size):
        pieces = [Piece(i, 0, rows) for i, rows in enumerate(self.shard_rows)]
        return _prefetch(self._split(b) for b in _rebatch(self._rows(pieces), batch_size))

    def read_targets(self):

        targets = [c for c in self.columns if c.is_target]
        parts: dict[str, list[np.ndarray]] = {c.name: [] for c in targets}
        for path in self.paths:
            first = 0
            for record in _shard_batches(path, columns=list(parts)):
                for name, values in _decode(record, targets, path, first).items():
                    parts[name].append(values)
                first += record.num_rows
        return {name: np.concatenate(values) for name, values in parts.items()}


def _shard_batches(path: Path, **read) -> Iterator:
    """The record batches of one shard (pyarrow's `iter_batches` with `read`). A shard whose
    pages cannot be decoded (damaged or truncated after prepare; its footer was read when the
    directory was opened) is DW643 naming it, wherever in training it is first read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        yield from pq.ParquetFile(path).iter_batches(**read)
    except (OSError, pa.ArrowException) as error:
        raise DiagnosticError([_error(
            "DW643", f"shard '{path}' cannot be read: {error}",
            "the shard was damaged after `dwc data prepare`; " + _PREPARE)]) from None


def _decode(record, columns: list[_Column], path: Path, first_row: int) -> dict[str, np.ndarray]:
    """A record batch's columns as the numpy arrays the model reads, checked: no nulls, ids in
    range (DW646 naming the shard and the row)."""
    import pyarrow as pa

    out = {}
    for column in columns:
        array = record.column(column.name)
        if array.null_count:
            row = first_row + int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
            raise DiagnosticError([_error(
                "DW646", f"shard '{path}' row {row}: {column.name} is null",
                "prepared data has no nulls (prepare maps them to id 0 or fills them): " +
                _PREPARE)])
        if pa.types.is_fixed_size_list(array.type):
            values = array.flatten().to_numpy(zero_copy_only=False)
            values = values.reshape(len(array), array.type.list_size)
        else:
            values = array.to_numpy(zero_copy_only=False)
        values = values.astype(column.dtype, copy=False).reshape(len(array), *column.shape)
        if values.dtype.kind == "f" and values.size:
            _check_floats(column, values, path, first_row)
        if column.vocab is not None and values.size:
            bad = (values < 0) | (values >= column.vocab)
            if bad.any():
                index = int(np.flatnonzero(bad.reshape(len(values), -1).any(axis=1))[0])
                value = values[index].ravel()[bad[index].ravel()][0]
                raise DiagnosticError([_error(
                    "DW646", _range_message(column, path, f"row {first_row + index}", value),
                    _RANGE_HELP)])
        out[column.name] = values
    return out


def _check_floats(column: _Column, values: np.ndarray, path: Path, first_row: int) -> None:
    """A float column's values are finite, and a target's lie where its loss needs them (DW646
    naming the shard and the row): a NaN or a label of 2 would train without an error."""
    low, high, allowed, hint = TARGET_RANGES.get(column.loss, ANY_TARGET)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values < low) | (values > high)
    if not bad.any():
        return
    index = int(np.flatnonzero(bad.reshape(len(values), -1).any(axis=1))[0])
    value = values[index].ravel()[bad[index].ravel()][0]
    where = f"shard '{path}' row {first_row + index}: {column.name}"
    if not np.isfinite(value):
        raise DiagnosticError([_error(
            "DW646", f"{where} value {value:g} is not finite",
            "fill missing values before training (e.g. with 0 or the column mean) and "
            "prepare the data again")])
    raise DiagnosticError([_error(
        "DW646", f"{where} target {value:g} is not {allowed} as loss = {column.loss} needs",
        hint)])


def _concat(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(chunks) == 1:
        return chunks[0]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _length(columns: dict[str, np.ndarray]) -> int:
    return len(next(iter(columns.values())))


def _rebatch(chunks: Iterator[dict[str, np.ndarray]], batch_size: int
             ) -> Iterator[dict[str, np.ndarray]]:
    """Record batches re-cut into batches of `batch_size` rows (the last one shorter), in order."""
    pending: list[dict[str, np.ndarray]] = []
    held = 0
    for chunk in chunks:
        pending.append(chunk)
        held += _length(chunk)
        if held >= batch_size:
            rows = _concat(pending)
            cut = held - held % batch_size
            for start in range(0, cut, batch_size):
                yield {k: v[start:start + batch_size] for k, v in rows.items()}
            pending = [{k: v[cut:] for k, v in rows.items()}] if cut < held else []
            held -= cut
    if held:
        yield _concat(pending)


def _shuffled(chunks: Iterator[dict[str, np.ndarray]], batch_size: int, capacity: int,
              rng: np.random.Generator) -> Iterator[dict[str, np.ndarray]]:
    """Batches drawn through a shuffle buffer: it fills to `capacity` rows, is permuted, and
    hands out whole batches; the rows left over (fewer than a batch) stay for the next fill."""
    pending: list[dict[str, np.ndarray]] = []
    held = 0
    exhausted = False
    while not exhausted:
        for chunk in chunks:
            pending.append(chunk)
            held += _length(chunk)
            if held >= capacity:
                break
        else:
            exhausted = True
        if not held:
            return
        rows = _concat(pending)
        order = rng.permutation(held)
        cut = held if exhausted else held - held % batch_size
        for start in range(0, cut, batch_size):
            index = order[start:start + batch_size]
            yield {k: v[index] for k, v in rows.items()}
        rest = order[cut:]
        pending = [{k: v[rest] for k, v in rows.items()}] if len(rest) else []
        held = len(rest)


_DONE = object()


def _prefetch(batches: Iterator, depth: int = 4) -> Iterator:
    """`batches` produced on a background thread, at most `depth` ahead (pyarrow decodes
    without the GIL, so reading overlaps the training step); errors re-raise in the consumer.
    Closing the generator (an epoch cut short by --max-steps) stops the thread."""
    slots: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        slots.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((_DONE, None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            slots.put((_DONE, error))

    thread = threading.Thread(target=produce, name="dwc-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(0.05)
