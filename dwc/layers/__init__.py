"""Layer kinds: one package per kind under dwc/layers/, each exporting its `KIND`.

`kinds()` imports every package here once (no list to keep in step: a new folder is found) and
the compiler's generic stages read the tables below instead of knowing any kind: sema takes
signatures and lowerings, the torch backend emitters and runtime helpers. docs/architecture.md
('Adding a layer kind') walks through one kind file by file.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, TypeVar

from dwc.layers.kind import Kind

if TYPE_CHECKING:
    from dwc.ir.ops import Op
    from dwc.sema.params import Signature

__all__ = ["Kind", "MergedOnFirstUse", "helper_modules", "kinds", "layer_modifiers", "lowerings",
           "signatures", "torch_emitters", "torch_folds"]

V = TypeVar("V")


class MergedOnFirstUse(Mapping[str, V]):
    """A registry the kinds extend (diagnostic codes, lint rules), built by `load()` on first
    access: the kinds import the compiler, which imports the registries, so a registry cannot
    read the kinds when its own module is imported. While `load()` runs (a kind's module may read
    the registry as it is imported) the registry answers from `partial`."""

    def __init__(self, load: Callable[[], dict[str, V]], partial: Mapping[str, V] | None = None
                 ) -> None:
        self._load = load
        self._partial: Mapping[str, V] = partial or {}
        self._table: dict[str, V] | None = None
        self._loading = False

    def _entries(self) -> Mapping[str, V]:
        if self._table is not None:
            return self._table
        if self._loading:
            return self._partial
        self._loading = True
        try:
            self._table = self._load()
        finally:
            self._loading = False
        return self._table

    def __getitem__(self, key: str) -> V:
        return self._entries()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())


@cache
def kinds() -> dict[str, Kind]:
    """Every layer kind by name, in name order."""
    found: dict[str, Kind] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        kind = importlib.import_module(f"{__name__}.{info.name}").KIND
        assert isinstance(kind, Kind) and kind.name not in found, (info.name, kind)
        found[kind.name] = kind
    return found


def signatures() -> list[Signature]:
    return [sig for kind in kinds().values() for sig in kind.signatures]


@cache
def lowerings() -> dict[str, Callable]:
    """Signature name -> its lowering function."""
    return {name: fn for kind in kinds().values() for name, fn in kind.lower.items()}


@cache
def layer_modifiers() -> dict[str, Callable]:
    """Modifier name -> how it re-parameterises a dynamic layer (`Kind.modifiers`)."""
    return {name: fn for kind in kinds().values() for name, fn in kind.modifiers.items()}


@cache
def torch_emitters() -> dict[type[Op], Callable]:
    """Op class -> its torch emitter."""
    return {cls: fn for kind in kinds().values() for cls, fn in kind.torch.items()}


@cache
def torch_folds() -> dict[type[Op], Callable]:
    """Op class -> how `for_inference()` computes that op's parameters from the training
    module's (ops that inference folds produce)."""
    return {cls: fn for kind in kinds().values() for cls, fn in kind.folds.items()}


@cache
def helper_modules() -> dict[str, str]:
    """Runtime helper name -> the module whose source is inlined into model.py."""
    found: dict[str, str] = {}
    for kind in kinds().values():
        for name, module in kind.helpers.items():
            assert name not in found, name
            found[name] = module
    return found
