"""Valid training columns for any compiled model, written from the contract in docs/data.md
(not from dwc.dataset), for the data tests and the data fuzzer."""

from __future__ import annotations

import numpy as np

from dwc.ir.graph import Graph


def contract_columns(graph: Graph, rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """One split's columns: ids int64 [N] in [0, vocab), numerics float32 [N, w], sequences
    int64 [N, T] with lengths in 0..T, targets float32 [N, width] (ce: int64 class ids [N])."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for spec in graph.inputs:
        if spec.role == "numeric":
            columns[spec.name] = rng.normal(size=(rows, *spec.shape)).astype(np.float32)
        elif spec.role == "lengths":
            max_len = next(s.shape[0] for s in graph.inputs
                           if s.role == "sequence" and s.feature == spec.feature)
            columns[spec.name] = rng.integers(0, max_len + 1, rows).astype(np.int64)
        else:
            columns[spec.name] = rng.integers(0, spec.vocab, (rows, *spec.shape)).astype(np.int64)
    for out in graph.outputs:
        if out.loss == "ce":
            columns[out.name] = rng.integers(0, out.width, rows).astype(np.int64)
        elif out.loss == "bce":
            columns[out.name] = rng.integers(0, 2, (rows, out.width)).astype(np.float32)
        elif out.loss == "poisson":
            columns[out.name] = rng.poisson(2.0, (rows, out.width)).astype(np.float32)
        else:
            columns[out.name] = rng.normal(size=(rows, out.width)).astype(np.float32)
    return columns


def contract_npz(graph: Graph, rows: int = 64, seed: int = 0,
                 splits: tuple[str, ...] = ("train", "valid", "test")) -> dict[str, np.ndarray]:
    """The keys of a whole .npz: SPLIT/COLUMN for every split."""
    return {f"{split}/{name}": value
            for i, split in enumerate(splits)
            for name, value in contract_columns(graph, rows, seed + i).items()}
