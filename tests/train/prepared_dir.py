"""Prepared directories written with pyarrow from numpy columns, exactly as the contract between
`dwc data prepare` and `dwc train` lays them out (docs/data.md), for the tests of the reader.

Written from the contract, not from dwc's writer, so the reader is tested against the layout
itself: manifest.json, spec.dw, SPLIT/part-NNNNN.parquet (one column per model input and output;
fixed-size lists for widths above 1 and for sequences) and vocab/FEATURE.json.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dwc.dataset import scenario_cells
from dwc.ir.graph import Graph

KINDS = {"ids": "categorical", "numeric": "numeric", "sequence": "sequence", "lengths": "length"}


def arrow_column(values: np.ndarray, as_list: bool) -> pa.Array:
    """A column of the contract: a scalar column, or a fixed_size_list of the row's width."""
    if not as_list:
        return pa.array(values.reshape(len(values)))
    width = int(np.prod(values.shape[1:]))
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), width)


def write_prepared(root: Path, spec_path: Path, graph: Graph, splits: dict[str, dict],
                   shard_rows: int = 1_000_000, row_group_rows: int | None = None,
                   tokens: dict[str, list[str]] | None = None) -> Path:
    """Write `splits` ({split: {column: array}}, the .npz columns of docs/data.md) as a prepared
    directory at `root` for the model `graph` of the spec at `spec_path`. `tokens` names the ids
    of categorical features (id k is tokens[k - 1]); a feature without tokens gets a hash-encoded
    vocabulary file."""
    root.mkdir(parents=True)
    spec_bytes = spec_path.read_bytes()
    (root / "spec.dw").write_bytes(spec_bytes)
    tokens = tokens or {}
    manifest_splits = {}
    for split, columns in splits.items():
        rows = len(next(iter(columns.values())))
        shards = []
        for number, start in enumerate(range(0, rows, shard_rows)):
            table = {}
            for spec in graph.inputs:
                values = columns[spec.name][start:start + shard_rows]
                table[spec.name] = arrow_column(values, spec.role == "sequence" or (
                    spec.role == "numeric" and spec.shape[0] > 1))
            for out in graph.outputs:
                values = columns[out.name][start:start + shard_rows]
                table[out.name] = arrow_column(values, out.loss != "ce" and out.width > 1)
            relative = f"{split}/part-{number:05d}.parquet"
            (root / split).mkdir(exist_ok=True)
            pq.write_table(pa.table(table), root / relative, row_group_size=row_group_rows)
            shards.append(relative)
        cells = {}
        found = scenario_cells(columns, graph)
        if found is not None:
            from dwc.dataset import cell_name

            names = {f: ["<unknown>", *t] for f, t in tokens.items()}
            for cell, count in zip(*np.unique(found, return_counts=True), strict=True):
                cells[cell_name(int(cell), graph, names)] = int(count)
        manifest_splits[split] = {"rows": rows, "shards": shards, "cells": cells}
    vocabularies = {}
    (root / "vocab").mkdir()
    for spec in graph.inputs:
        if spec.role != "ids":
            continue
        words = tokens.get(spec.feature)
        vocab = {"feature": spec.feature, "size": spec.vocab, "min_count": 1,
                 "oov_rate": {s: 0.0 for s in splits}}
        if words is None:
            vocab.update(encoding="hash")
        else:
            vocab.update(encoding="vocabulary", tokens=list(words), counts=[1] * len(words))
        (root / "vocab" / f"{spec.feature}.json").write_text(json.dumps(vocab))
        vocabularies[spec.feature] = f"vocab/{spec.feature}.json"
    manifest = {
        "format": "dwc-prepared", "version": 1, "model": graph.model,
        "spec_sha256": hashlib.sha256(spec_bytes).hexdigest(), "spec": "spec.dw",
        "inputs": [{"name": s.name, "kind": KINDS[s.role], "dtype": s.dtype,
                    "shape": list(s.shape)} for s in graph.inputs],
        "outputs": [{"name": o.name, "loss": o.loss,
                     "dtype": "int64" if o.loss == "ce" else "float32",
                     "shape": [] if o.loss == "ce" else [o.width]} for o in graph.outputs],
        "splits": manifest_splits,
        "vocabularies": vocabularies,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root
