"""Value types of the IR. The batch dimension is always symbolic: a type describes one sample."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VecType:
    """`vec[n]`: a B x n float tensor."""

    width: int

    def __str__(self) -> str:
        return f"vec[{self.width}]"


@dataclass(frozen=True)
class FieldsType:
    """`fields[d_1, ..., d_F]`: F field embeddings, stored flat as B x sum(d); field-wise ops see F."""

    dims: tuple[int, ...]

    @property
    def width(self) -> int:
        return sum(self.dims)

    def __str__(self) -> str:
        return f"fields[{', '.join(map(str, self.dims))}]"


@dataclass(frozen=True)
class IdsType:
    """`ids[vocab]` (one id per sample) or `ids[vocab; T]` (a padded sequence of up to T ids)."""

    vocab: int
    max_len: int | None = None

    @property
    def width(self) -> int:
        return self.max_len or 1

    def __str__(self) -> str:
        return f"ids[{self.vocab}]" if self.max_len is None else f"ids[{self.vocab}; {self.max_len}]"


@dataclass(frozen=True)
class TableType:
    """An embedding table (a parameter, not a per-sample value)."""

    vocab: int
    dim: int

    @property
    def width(self) -> int:
        return 0

    def __str__(self) -> str:
        return f"table[{self.vocab} x {self.dim}]"


ValueType = VecType | FieldsType | IdsType | TableType


@dataclass(frozen=True)
class ExpertsType:
    """`experts[E; H]`: E expert outputs of width H per sample (B x E x H)."""

    count: int
    dim: int

    @property
    def width(self) -> int:
        return self.count * self.dim

    def __str__(self) -> str:
        return f"experts[{self.count}; {self.dim}]"


ValueType = VecType | FieldsType | IdsType | TableType | ExpertsType  # noqa: F811
