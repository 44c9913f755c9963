"""`dwc data prepare`: raw logs (CSV or Parquet) to a prepared directory that `dwc train` reads.

Two streamed passes over record batches (memory bounded by a batch and the vocabularies, never
by the file): pass 1 counts each vocabulary on the rows of the train split, pass 2 encodes every
row (dwc.encoding, the functions serving shares) and appends it to its split's Parquet shards.
Everything is written into `DIR.tmp-XXXX` beside DIR and renamed at the end; a failure removes
it. The layout (manifest.json, spec.dw, SPLIT/part-NNNNN.parquet, vocab/FEATURE.json) and every
rule (vocabularies, hashing, nulls, splits) are in docs/data.md, "Preparing raw logs".
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dwc import encoding
from dwc.diagnostics import Diagnostic, DiagnosticError, did_you_mean
from dwc.driver import missing_folders, remove_empty
from dwc.ir.graph import Graph
from dwc.sema.data import DataFeature, DataSpec
from dwc.source import SourceFile
from dwc.vocab import spec_digest

SPLITS = ("train", "valid", "test")
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
BATCH_ROWS = 65_536
"""Rows per record batch read from Parquet (CSV batches are `_CSV_BLOCK` bytes)."""
_CSV_BLOCK = 4 << 20


class LogError(DiagnosticError):
    """Problems of raw log files, reported against `path` (the first file with a problem)."""

    def __init__(self, path: str, diagnostics: list[Diagnostic]) -> None:
        super().__init__(diagnostics)
        self.path = path


def _log_error(path: str, code: str, message: str, help: str) -> LogError:
    return LogError(path, [Diagnostic.file_level(code, message, help=help)])


@dataclass(frozen=True)
class Options:
    """What `dwc data prepare` was asked to do (the command line's options)."""

    train: tuple[str, ...]
    out: str
    valid: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    split: str | None = None
    """TRAIN/VALID[/TEST] percentages of the --train rows (default 80/10/10 without --valid)."""
    split_by: str = "hash"
    """"hash" (each row by a hash of its index and the seed) or "order" (file order)."""
    seed: int = 0
    format: str | None = None
    shard_rows: int = 1_000_000
    progress: bool = True


@dataclass
class Report:
    """The outcome: rows per split, where it was written, how long it took."""

    out: Path
    rows: dict[str, int]
    seconds: float
    files: int

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _fail(code: str, message: str, help: str) -> DiagnosticError:
    return DiagnosticError([Diagnostic.file_level(code, message, help=help)])


# --- reading logs -----------------------------------------------------------------------------------


_READ_HINTS = {
    "csv": "fix the file (every CSV line has the header's fields)",
    "utf8": "CSV logs are read as UTF-8: re-encode the file (e.g. iconv -f LATIN1 -t UTF-8)",
    "parquet": "the file is damaged or truncated: write it again",
}
"""The hint of a log that fails while its rows are read, by format (and for bad UTF-8)."""


class LogFile:
    """One raw log: its format, its columns, and its record batches (only the columns read)."""

    def __init__(self, path: str, forced: str | None) -> None:
        self.path = path
        suffix = Path(path).suffix.lower()
        self.format = forced or FORMATS.get(suffix)
        if self.format is None:
            raise _log_error(path, "DW610", f"cannot tell the format of '{path}' from its "
                           f"extension '{suffix}'",
                           "name it .csv or .parquet, or pass --format csv|parquet")
        try:
            if not os.path.exists(path):
                raise FileNotFoundError(2, "no such file", path)
            if os.path.isdir(path):
                raise IsADirectoryError(21, "it is a directory", path)
            if not os.path.isfile(path):  # read twice: for the header, then for the rows
                raise OSError(0, "it is not a regular file (a pipe or a device); save the log "
                              "to a file", path)
            if self.format == "parquet":
                # no pre-buffering: it keeps whole row groups' column chunks in memory
                self._parquet = pq.ParquetFile(path, pre_buffer=False)
                self.columns = list(self._parquet.schema_arrow.names)
                self.rows: int | None = self._parquet.metadata.num_rows
            else:
                with pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)) \
                        as reader:
                    self.columns = list(reader.schema.names)
                self.rows = None
        except OSError as error:
            raise _log_error(path, "DW610", f"cannot read '{path}': {error.strerror or error}",
                           "check the path and its permissions") from None
        except (pa.ArrowException, ValueError) as error:
            raise _log_error(path, "DW610", f"'{path}' is not a readable {self.format} file "
                           f"({_reason(error)})",
                           "check the file, or pass --format if its extension is wrong") from None
        # names the file has more than once: an error only where the spec reads one (DW610)
        self.repeated = sorted({name for name in self.columns if self.columns.count(name) > 1})

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        """The file's rows in record batches holding `columns` (CSV columns read as strings, so
        ids keep their spelling: `007` stays `007`)."""
        try:
            if self.format == "parquet":
                yield from self._parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns,
                                                      use_threads=False)
                return
            convert = pacsv.ConvertOptions(include_columns=columns, strings_can_be_null=True,
                                           column_types={c: pa.string() for c in columns})
            # one thread: a threaded streaming reader reads ahead of the encoder without bound
            options = pacsv.ReadOptions(block_size=_CSV_BLOCK, use_threads=False)
            with pacsv.open_csv(self.path, read_options=options, convert_options=convert) \
                    as reader:
                yield from reader
        except (pa.ArrowException, OSError) as error:
            raise _log_error(self.path, "DW610", f"cannot read '{self.path}': {_reason(error)}",
                           _READ_HINTS.get(self.format if "UTF8" not in str(error) else "utf8",
                                           _READ_HINTS["csv"])) from None

    def count_rows(self, column: str) -> int:
        """The number of data rows (Parquet: from the metadata; CSV: one pass reading `column`,
        one the spec reads)."""
        if self.rows is None:
            self.rows = sum(b.num_rows for b in self.batches([column]))
        return self.rows


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:300]


# --- splits -----------------------------------------------------------------------------------------


def parse_split(text: str) -> tuple[float, ...]:
    """TRAIN/VALID[/TEST] percentages as fractions. Raises DiagnosticError(DW615)."""
    parts = text.split("/")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(parts) not in (2, 3) or len(values) != len(parts) or \
            any(not np.isfinite(v) or v < 0 for v in values) or abs(sum(values) - 100) > 1e-6 \
            or values[0] <= 0 or values[1] <= 0:
        raise _fail("DW615", f"--split {text!r} is not TRAIN/VALID[/TEST] percentages summing "
                    "to 100", "e.g. --split 80/10/10, or --split 90/10 for no test split "
                    "(train and valid need a share)")
    return tuple(v / 100 for v in values)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser over uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def hash_split(rows: np.ndarray, file_index: int, seed: int, fractions: tuple[float, ...]
               ) -> np.ndarray:
    """Each row's split (0 train, 1 valid, 2 test) from its index in its file and the file's
    position among the --train files: u = top 53 bits of splitmix64(row xor splitmix64(file xor
    splitmix64(seed))) / 2^53; train where u < p_train, valid where u < p_train + p_valid, else
    test."""
    key = _mix(np.array([seed & (2**64 - 1)], dtype=np.uint64))
    key = _mix(key ^ np.uint64(file_index))[0]
    u = (_mix(rows.astype(np.uint64) ^ key) >> np.uint64(11)).astype(np.float64) / 2.0**53
    return np.searchsorted(np.cumsum(fractions)[:-1], u, side="right").astype(np.int8)


@dataclass
class _Source:
    """A log file and which split its rows go to (a fixed split, or assigned per row)."""

    log: LogFile
    split: int | None
    file_index: int = 0
    """The file's position among the --train files (hash split)."""
    first_row: int = 0
    """Index of the file's first row over the --train files (order split)."""


# --- the prepared directory ---------------------------------------------------------------------------


@dataclass
class _Shards:
    """One split's Parquet shards, rolled every `limit` rows."""

    directory: Path
    split: str
    schema: pa.Schema
    limit: int
    names: list[str] = field(default_factory=list)
    rows: int = 0
    _writer: pq.ParquetWriter | None = None
    _in_shard: int = 0

    def write(self, table: pa.Table) -> None:
        start = 0
        while start < table.num_rows:
            if self._writer is None or self._in_shard >= self.limit:
                self.close()
                name = f"{self.split}/part-{len(self.names):05d}.parquet"
                (self.directory / self.split).mkdir(exist_ok=True)
                self._writer = pq.ParquetWriter(self.directory / name, self.schema)
                self.names.append(name)
                self._in_shard = 0
            take = min(self.limit - self._in_shard, table.num_rows - start)
            self._writer.write_table(table.slice(start, take))
            self._in_shard += take
            self.rows += take
            start += take

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _column_type(kind: str, dtype: str, shape: tuple[int, ...]) -> pa.DataType:
    scalar = pa.int64() if dtype == "int64" else pa.float32()
    if kind in ("categorical", "length") or not shape or (kind != "sequence" and shape == (1,)):
        return scalar
    return pa.list_(scalar, shape[0])


KINDS = {"ids": "categorical", "numeric": "numeric", "sequence": "sequence", "lengths": "length"}
"""A model input's role (dwc.ir.graph) -> its `kind` in the manifest (what `dwc train` checks)."""


def _schema(graph: Graph) -> tuple[pa.Schema, list[dict], list[dict]]:
    fields, inputs, outputs = [], [], []
    for spec in graph.inputs:
        kind = KINDS[spec.role]
        fields.append(pa.field(spec.name, _column_type(kind, spec.dtype, spec.shape), False))
        inputs.append({"name": spec.name, "kind": kind, "dtype": spec.dtype,
                       "shape": list(spec.shape), "feature": spec.feature})
    for out in graph.outputs:
        dtype = "int64" if out.loss == "ce" else "float32"
        shape = [] if out.loss == "ce" else [out.width]
        fields.append(pa.field(out.name, _column_type("target", dtype, tuple(shape)), False))
        outputs.append({"name": out.name, "loss": out.loss, "dtype": dtype, "shape": shape})
    return pa.schema(fields), inputs, outputs


def _arrow_column(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    if pa.types.is_fixed_size_list(type_):
        flat = pa.array(values.reshape(-1), type=type_.value_type)
        return pa.FixedSizeListArray.from_arrays(flat, type_.list_size)
    return pa.array(values.reshape(len(values)), type=type_)


# --- the command -----------------------------------------------------------------------------------


class Preparer:
    """One run of `dwc data prepare` over a checked spec."""

    def __init__(self, source: SourceFile, graph: Graph, data: DataSpec, options: Options) -> None:
        self.source, self.graph, self.data, self.options = source, graph, data, options
        self.columns = sorted({f.column for f in data.features} | {t.column for t in data.targets})
        self.schema, self.inputs, self.outputs = _schema(graph)
        self.counts: dict[str, dict[str, int]] = {v: {} for v in data.vocabularies
                                                 if data.vocabularies[v].encoding != "hash"}
        self.vocabularies: dict[str, encoding.Vocabulary] = {}
        self.token_counts: dict[str, list[int]] = {}
        self.unknown = {v: dict.fromkeys(SPLITS, 0) for v in data.vocabularies}
        self.seen = {v: dict.fromkeys(SPLITS, 0) for v in data.vocabularies}
        self.cells: dict[str, dict[int, int]] = {s: {} for s in SPLITS}

    # --- setup ---------------------------------------------------------------------------------

    def sources(self) -> list[_Source]:
        o = self.options
        if o.valid and o.split is not None:
            raise _fail("DW615", "--split divides the --train files, but --valid files are given",
                        "drop --split (the splits are the files), or drop --valid")
        _check_distinct((*o.train, *o.valid, *o.test))
        logs = {path: LogFile(path, o.format) for path in (*o.train, *o.valid, *o.test)}
        problems, first = [], ""
        for log in logs.values():
            missing = [c for c in self.columns if c not in log.columns]
            for column in missing:
                readers = self.readers(column)
                hint = did_you_mean(column, log.columns)
                problems.append(Diagnostic.file_level(
                    "DW611", f"'{log.path}' has no column '{column}' ({readers})",
                    help=(hint + "; " if hint else f"its columns: {', '.join(log.columns[:12])}"
                          f"{' ...' if len(log.columns) > 12 else ''}; ") +
                    "name the column with column = \"...\" in the spec"))
            read_twice = [c for c in log.repeated if c in self.columns]
            if read_twice:  # a column the spec does not read may repeat (pyarrow skips it)
                problems.append(Diagnostic.file_level(
                    "DW610", f"'{log.path}' has more than one column named "
                    f"{', '.join(map(repr, read_twice))} ({self.readers(read_twice[0])})",
                    help="rename or drop the copies: which one the spec means is ambiguous"))
            first = first or (log.path if missing or read_twice else "")
        if problems:
            raise LogError(first, problems)
        if o.valid:
            self.fractions: tuple[float, ...] | None = None
            return [_Source(logs[p], 0) for p in o.train] + \
                [_Source(logs[p], 1) for p in o.valid] + [_Source(logs[p], 2) for p in o.test]
        self.fractions = parse_split(o.split or ("90/10" if o.test else "80/10/10"))
        if o.test and len(self.fractions) == 3:
            raise _fail("DW615", f"--split {o.split} has a test share, but --test files are given",
                        "use --split TRAIN/VALID (e.g. 90/10) with --test")
        out, first = [], 0
        for index, path in enumerate(o.train):
            out.append(_Source(logs[path], None, index, first))
            if o.split_by == "order":
                first += logs[path].count_rows(self.columns[0])
        self.total_rows = first
        return out + [_Source(logs[p], 2) for p in o.test]

    def readers(self, column: str) -> str:
        names = [f"feature '{f.name}'" for f in self.data.features if f.column == column] + \
            [f"output '{t.name}'" for t in self.data.targets if t.column == column]
        return "read by " + ", ".join(names)

    # --- assignment ------------------------------------------------------------------------------

    def assign(self, source: _Source, start: int, count: int) -> np.ndarray:
        """The split of each row of a batch (0 train, 1 valid, 2 test)."""
        if source.split is not None:
            return np.full(count, source.split, dtype=np.int8)
        if self.options.split_by == "hash":
            return hash_split(np.arange(start, start + count), source.file_index,
                              self.options.seed, self.fractions)
        rows = np.arange(source.first_row + start, source.first_row + start + count)
        bounds = np.floor(np.cumsum(self.fractions)[:-1] * self.total_rows).astype(np.int64)
        return np.searchsorted(bounds, rows, side="right").astype(np.int8)

    def batches(self, sources: list[_Source], what: str, columns: list[str],
                only_train: bool = False
                ) -> Iterator[tuple[_Source, int, pa.RecordBatch, np.ndarray]]:
        known = [s.log.rows for s in sources]
        total = sum(known) if all(r is not None for r in known) else None
        bar = _progress(total, what, self.options.progress)
        try:
            for source in sources:
                if only_train and source.split not in (None, 0):
                    continue
                start = 0
                for batch in source.log.batches(columns):
                    splits = self.assign(source, start, batch.num_rows)
                    yield source, start, batch, splits
                    start += batch.num_rows
                    bar.update(batch.num_rows)
        finally:
            bar.close()

    # --- pass 1: vocabularies ------------------------------------------------------------------------

    def count(self, sources: list[_Source]) -> None:
        readers = [f for f in self.data.features if f.kind != "numeric" and f.vocabulary in
                   self.counts]
        if readers:
            columns = sorted({f.column for f in readers})
            for source, start, batch, splits in self.batches(sources, "vocabularies", columns,
                                                             only_train=True):
                train = batch.filter(pa.array(splits == 0)) if not (splits == 0).all() else batch
                for f in readers:
                    self.guard(source, start, f.column, lambda f=f, train=train: self.tally(
                        f, train.column(f.column)), rows=np.flatnonzero(splits == 0))
        for name, owner in self.data.vocabularies.items():
            if owner.encoding == "hash":
                self.vocabularies[name] = encoding.Vocabulary("hash", owner.vocab)
                continue
            tokens, counts = encoding.build_vocabulary(self.counts[name], owner.vocab,
                                                       owner.min_count)
            self.vocabularies[name] = encoding.Vocabulary("vocabulary", owner.vocab, tokens)
            self.token_counts[name] = counts

    def tally(self, f: DataFeature, column: pa.Array) -> None:
        if f.kind == "sequence":
            encoding.count_sequence(column, f.splitter, self.counts[f.vocabulary])
        else:
            encoding.count_tokens(column, self.counts[f.vocabulary])

    def guard(self, source: _Source, start: int, column: str, work, rows=None):
        """Run `work`, turning an EncodingError into a DW6xx naming the file, column and row
        (`rows`: the file rows of a filtered batch's rows)."""
        try:
            return work()
        except encoding.EncodingError as error:
            row = error.row if rows is None else int(rows[error.row])
            raise _log_error(source.log.path, error.code, f"row {start + row:,}, column "
                           f"'{column}' ({self.readers(column)[8:]}): {error.message}",
                           error.help) from None

    # --- pass 2: encode and write ------------------------------------------------------------------

    def encode(self, source: _Source, start: int, batch: pa.RecordBatch) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for f in self.data.features:
            column = batch.column(f.column)
            if f.kind == "numeric":
                out[f.name] = self.guard(source, start, f.column, lambda f=f, c=column:
                                         encoding.encode_numeric(c, f.width, f.fill))
            elif f.kind == "sequence":
                ids, lengths = self.guard(source, start, f.column, lambda f=f, c=column:
                                          encoding.encode_sequence(
                                              c, self.vocabularies[f.vocabulary], f.max_len,
                                              f.splitter))
                out[f.name], out[f"{f.name}_len"] = ids, lengths
            else:
                out[f.name] = self.guard(source, start, f.column, lambda f=f, c=column:
                                         self.vocabularies[f.vocabulary].encode(c))
        for t in self.data.targets:
            column = batch.column(t.column)
            out[t.name] = self.guard(source, start, t.column, lambda t=t, c=column:
                                     encoding.encode_target(c, t.loss, t.width))
        return out

    def account(self, split: str, encoded: dict[str, np.ndarray]) -> None:
        """Per-split OOV tallies (values mapped to id 0) and scenario-cell counts."""
        for f in self.data.features:
            if f.kind == "numeric":
                continue
            ids = encoded[f.name]
            if f.kind == "sequence":
                valid = np.arange(f.max_len)[None, :] < encoded[f"{f.name}_len"][:, None]
                self.seen[f.vocabulary][split] += int(valid.sum())
                self.unknown[f.vocabulary][split] += int(((ids == 0) & valid).sum())
            else:
                self.seen[f.vocabulary][split] += len(ids)
                self.unknown[f.vocabulary][split] += int((ids == 0).sum())
        if self.data.scenario:
            cells = np.zeros(len(encoded[self.data.scenario[0]]), dtype=np.int64)
            for name in self.data.scenario:
                cells = cells * self.data.feature(name).vocab + encoded[name]
            found, counts = np.unique(cells, return_counts=True)
            tally = self.cells[split]
            for cell, n in zip(found.tolist(), counts.tolist(), strict=True):
                tally[cell] = tally.get(cell, 0) + n

    def write(self, sources: list[_Source], staging: Path) -> dict[str, _Shards]:
        shards = {s: _Shards(staging, s, self.schema, self.options.shard_rows) for s in SPLITS}
        try:
            for source, start, batch, splits in self.batches(sources, "encoding", self.columns):
                encoded = self.encode(source, start, batch)
                for index, split in enumerate(SPLITS):
                    mask = splits == index
                    if not mask.any():
                        continue
                    part = encoded if mask.all() else {k: v[mask] for k, v in encoded.items()}
                    self.account(split, part)
                    table = pa.table({f.name: _arrow_column(part[f.name], f.type)
                                      for f in self.schema}, schema=self.schema)
                    shards[split].write(table)
        finally:
            for s in shards.values():
                s.close()
        return shards

    # --- the manifest --------------------------------------------------------------------------------

    def cell_name(self, cell: int) -> str:
        parts = []
        for name in reversed(self.data.scenario):
            f = self.data.feature(name)
            cell, ident = divmod(cell, f.vocab)
            parts.append(f"{name}={self.vocabularies[f.vocabulary].name(ident)}")
        return ", ".join(reversed(parts))

    def files(self, shards: dict[str, _Shards]) -> dict[str, str | bytes]:
        present = [s for s in SPLITS if shards[s].rows or s != "test"]
        spec = Path(self.source.name).read_bytes()  # the copy is byte for byte (CRLF kept)
        files: dict[str, str | bytes] = {"spec.dw": spec}
        vocab_paths = {}
        for name, owner in self.data.vocabularies.items():
            vocab = self.vocabularies[name]
            rates = {s: (round(self.unknown[name][s] / self.seen[name][s], 6)
                         if self.seen[name][s] else None) for s in present}
            body = {"feature": name, "encoding": vocab.encoding, "size": vocab.size,
                    "min_count": owner.min_count, "oov_rate": rates}
            if vocab.encoding == "vocabulary":
                body["tokens"] = vocab.tokens
                body["counts"] = self.token_counts[name]
            files[f"vocab/{name}.json"] = json.dumps(body, ensure_ascii=False) + "\n"
            vocab_paths[name] = f"vocab/{name}.json"
        vocabularies = {f.name: vocab_paths[f.vocabulary] for f in self.data.features
                        if f.kind != "numeric"}
        splits = {s: {"rows": shards[s].rows, "shards": shards[s].names,
                      "cells": {self.cell_name(c): n for c, n in sorted(self.cells[s].items())}}
                  for s in present}
        manifest = {
            "format": "dwc-prepared", "version": 1, "model": self.graph.model,
            "spec_sha256": spec_digest(spec),
            "spec": "spec.dw", "inputs": self.inputs, "outputs": self.outputs,
            "splits": splits, "vocabularies": vocabularies,
            "columns": {f.name: f.column for f in self.data.features} |
                       {t.name: t.column for t in self.data.targets},
            "split": {"by": "files" if self.options.valid else self.options.split_by,
                      "fractions": list(self.fractions) if self.fractions else None,
                      "seed": self.options.seed},
        }
        files["manifest.json"] = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        return files


def _check_distinct(paths: tuple[str, ...]) -> None:
    """DW622 when one file is named twice among --train, --valid and --test (its rows would be
    read twice: into one split twice, or into two splits, leaking rows between them)."""
    seen: dict[str, str] = {}
    for path in paths:
        key = os.path.realpath(path)
        if key in seen:
            same = "" if seen[key] == path else f" (as '{seen[key]}' and '{path}')"
            raise _log_error(path, "DW622", f"'{path}' is given twice{same}: its rows would be "
                             "read twice", "name each log once, in one of --train, --valid and "
                             "--test (a file in two splits leaks its rows from one to the other)")
        seen[key] = path


def _progress(total: int | None, what: str, enabled: bool):
    """A tqdm bar on stderr (rows), silent when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit=" rows", unit_scale=True, leave=False,
                disable=not (enabled and sys.stderr.isatty()), file=sys.stderr)


def _check_out(out: Path) -> None:
    """DW619 unless `out` is new, empty, or a prepared directory (which is replaced)."""
    if not out.exists() and not out.is_symlink():
        return
    if out.is_dir() and not any(out.iterdir()):
        return
    try:
        previous = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        if isinstance(previous, dict) and previous.get("format") == "dwc-prepared":
            return
    except (OSError, ValueError):
        pass
    raise _fail("DW619", f"cannot write '{out}': it exists and is not a prepared directory",
                "choose a new --out, or remove it (a directory `dwc data prepare` wrote is "
                "replaced)")


def prepare(source: SourceFile, graph: Graph, data: DataSpec, options: Options) -> Report:
    """Run `dwc data prepare` (see the module docstring). Raises DiagnosticError (LogError for a
    problem of one log file); nothing is left behind on failure."""
    begun = time.perf_counter()
    if options.shard_rows < 1:
        raise _fail("DW615", "--shard-rows must be at least 1", "e.g. --shard-rows 1000000")
    out = Path(options.out)
    _check_out(out)
    run = Preparer(source, graph, data, options)
    sources = run.sources()
    created = missing_folders(out.parent)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    except OSError as error:
        remove_empty(created)
        raise _fail("DW619", f"cannot write '{out}': {error.strerror or error}",
                    "choose a writable --out; nothing was written") from None
    done = False
    try:
        run.count(sources)
        shards = run.write(sources, staging)
        for split in ("train", "valid"):
            if shards[split].rows == 0:
                raise _fail("DW615", f"the {split} split has no rows",
                            "give more rows, a larger share in --split, or --valid files")
        for name, content in run.files(shards).items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        os.chmod(staging, 0o755)
        _replace(staging, out)
        done = True
    except OSError as error:
        raise _fail("DW619", f"cannot write '{out}': {error.strerror or error}",
                    "choose a writable --out; nothing was written") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done:
            remove_empty(created)
    return Report(out, {s: shards[s].rows for s in SPLITS}, time.perf_counter() - begun,
                  len(set((*options.train, *options.valid, *options.test))))


def _replace(staging: Path, out: Path) -> None:
    """Move the finished directory to `out`, replacing an earlier prepared directory there."""
    _check_out(out)
    if not out.exists():
        os.replace(staging, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f"{out.name}.old-", dir=out.parent))
    os.replace(out, old / "previous")
    try:
        os.replace(staging, out)
    except OSError:
        os.replace(old / "previous", out)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
