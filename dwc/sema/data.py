"""The data options of a checked spec: how `dwc data prepare` reads each model input and target
from a raw log, and how `dwc.runtime` maps raw values at serving time (docs/data.md).

Sema checks the options (`column`, `encoding`, `min_count`, `fill`, `splitter` on features,
`column = "..."` on outputs; DW342-DW346) and `data_spec` collects them. They are not part of the
IR: the compiled model is the same with or without them.
"""

from __future__ import annotations

from dataclasses import dataclass

from dwc.sema.state import State


@dataclass(frozen=True)
class DataFeature:
    """How one feature is read from a raw log."""

    name: str
    kind: str
    """"categorical", "numeric" or "sequence"."""
    column: str
    """The raw-data column (the feature's name unless `column = "..."`)."""
    vocabulary: str = ""
    """Categorical and sequence: the feature owning the vocabulary (the embedding table's)."""
    vocab: int = 0
    encoding: str = "vocabulary"
    """The vocabulary owner's encoding: "vocabulary" or "hash"."""
    min_count: int = 1
    width: int = 0
    fill: float = 0.0
    max_len: int = 0
    splitter: str = "^"
    scenario: bool = False


@dataclass(frozen=True)
class DataTarget:
    """How one output's target is read from a raw log."""

    name: str
    column: str
    loss: str
    width: int


@dataclass(frozen=True)
class DataSpec:
    """Every feature and target of a model, in declaration order, and its scenario features."""

    model: str
    features: tuple[DataFeature, ...]
    targets: tuple[DataTarget, ...]
    scenario: tuple[str, ...]

    def feature(self, name: str) -> DataFeature:
        return next(f for f in self.features if f.name == name)

    @property
    def vocabularies(self) -> dict[str, DataFeature]:
        """The vocabulary owners: a categorical feature with a table of its own, by name."""
        return {f.name: f for f in self.features
                if f.kind == "categorical" and f.vocabulary == f.name}


def data_spec(state: State, columns: dict[str, str]) -> DataSpec:
    """The data options of a checked walk's features and outputs (`columns`: output -> its
    target's column)."""
    features = []
    for f in state.features.values():
        owner = state.features.get(f.table) if f.table else None
        common = {"name": f.name, "kind": f.kind, "column": f.column or f.name,
                  "scenario": f.scenario}
        if f.kind == "numeric":
            features.append(DataFeature(**common, width=f.width, fill=f.fill))
            continue
        assert owner is not None
        extra = {"max_len": f.max_len, "splitter": f.splitter} if f.kind == "sequence" else {}
        features.append(DataFeature(**common, vocabulary=owner.name, vocab=owner.vocab,
                                    encoding=owner.encoding, min_count=owner.min_count, **extra))
    targets = tuple(DataTarget(o.name, columns.get(o.name, o.name), o.loss, o.width)
                    for o in state.outputs)
    return DataSpec(state.model or "model", tuple(features), targets, state.scenario)
