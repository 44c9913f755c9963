"""Raw values to model inputs: the one encoding `dwc data prepare` writes and `dwc.runtime` serves.

Both sides call these functions (numpy and pyarrow only, no compiler import), so a value maps to
the same id, float or padded sequence in training data and at serving time (docs/data.md,
"Preparing raw logs"):

- categorical values become string *tokens* (`tokens`: strings as they are, integers in decimal,
  booleans `true`/`false`, integral floats below 2**53 in magnitude as the integer); a
  vocabulary maps token t_i to id i (1-based, most frequent first) and anything else to 0;
  `encoding = hash` maps a token to 1 + (blake2b-64(utf-8 token) mod (vocab - 1)); null is
  always id 0;
- sequences are list columns or strings joined by the feature's splitter (empty and null items
  skipped, a null row or an all-null column is an empty sequence), each item encoded as above;
  the *last* max_len items (the most recent, in a list written oldest first) are kept,
  left-aligned, padded with id 0, with their count as `NAME_len`;
- numerics become float32, nulls and NaN replaced by the feature's `fill`;
- targets are checked against their loss (bce in [0, 1], poisson >= 0, ce integer classes).

A value that cannot be encoded raises `EncodingError` with the row (within the array given) and a
DW6xx code; `dwc data prepare` adds the file and column, `dwc.runtime` the input's name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dwc.dataset import ANY_TARGET, TARGET_RANGES

UNKNOWN = "<unknown>"
"""The name of id 0 (null, unknown and out-of-vocabulary values) in reports."""


class EncodingError(ValueError):
    """A raw value that cannot be encoded: `code` (DW6xx), `row` within the encoded array."""

    def __init__(self, code: str, message: str, row: int, help: str) -> None:
        super().__init__(message)
        self.code, self.message, self.row, self.help = code, message, row, help


# --- categorical tokens ---------------------------------------------------------------------------


def _is_list(type_: pa.DataType) -> bool:
    return pa.types.is_list(type_) or pa.types.is_large_list(type_) or \
        pa.types.is_fixed_size_list(type_) or pa.types.is_list_view(type_)


def tokens(array: pa.Array) -> pa.Array:
    """The string tokens of a categorical column (null where the value is null or NaN).

    Raises EncodingError: DW614 for a list column, DW617 for a non-integral float, a float of
    magnitude 2**53 or more (no longer an exact integer) or a type that cannot hold ids."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    type_ = array.type
    if pa.types.is_dictionary(type_):
        return tokens(array.dictionary_decode())
    if pa.types.is_string(type_):
        return array
    if pa.types.is_large_string(type_) or pa.types.is_string_view(type_) or \
            pa.types.is_integer(type_) or pa.types.is_boolean(type_):
        return pc.cast(array, pa.string())
    if pa.types.is_null(type_):
        return pa.nulls(len(array), pa.string())
    if pa.types.is_floating(type_):
        values = array.to_numpy(zero_copy_only=False)
        known = ~np.isnan(values)
        bad = known & (np.floor(values) != values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise EncodingError("DW617", f"{values[row]:g} is not an id", row,
                                "categorical values are strings or integers; round or encode "
                                "the column first")
        huge = known & (np.abs(values) >= _EXACT)
        if huge.any():
            row = int(np.flatnonzero(huge)[0])
            raise EncodingError("DW617", f"{values[row]:g} is too large to be an exact id in a "
                                "float column (floats hold integers exactly only below 2**53)",
                                row, "write ids as strings or integers (an int64 or string "
                                "column), not floats")
        ints = pa.array(np.where(known, values, 0).astype(np.int64), mask=~known)
        return pc.cast(ints, pa.string())
    if _is_list(type_):
        first = _first_valid(array)
        raise EncodingError("DW614", "a list where one value per row is expected", first,
                            "a categorical feature reads one value per row; declare a "
                            "sequence(...) feature for list columns")
    raise EncodingError("DW617", f"a {type_} column cannot hold ids", _first_valid(array),
                        "categorical values are strings, integers or booleans")


_EXACT = 2.0**53
"""Floats at or beyond this magnitude no longer hold every integer exactly."""


def _first_valid(array: pa.Array) -> int:
    valid = np.flatnonzero(array.is_valid().to_numpy(zero_copy_only=False))
    return int(valid[0]) if len(valid) else 0


def hash_id(token: str, vocab: int) -> int:
    """The id `encoding = hash` gives a token: 1 + (blake2b-64 of its UTF-8 bytes, little-endian,
    mod (vocab - 1))."""
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "little") % (vocab - 1)


class Vocabulary:
    """A vocabulary file's mapping (`vocab/FEATURE.json`): tokens to ids, or the hash rule."""

    def __init__(self, encoding: str, size: int, tokens: Sequence[str] = ()) -> None:
        if encoding not in ("vocabulary", "hash"):
            raise ValueError(f"unknown encoding {encoding!r}")
        if len(tokens) >= size:
            raise ValueError(f"{len(tokens)} tokens do not fit vocab = {size} (id 0 is reserved)")
        self.encoding, self.size, self.tokens = encoding, size, list(tokens)
        self._ids = {t: i for i, t in enumerate(self.tokens, start=1)}

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        return cls(data["encoding"], int(data["size"]), data.get("tokens") or ())

    def name(self, ident: int) -> str:
        """The token of an id (`<unknown>` for 0; the id itself under hashing)."""
        if ident == 0:
            return UNKNOWN
        if self.encoding == "hash" or ident > len(self.tokens):
            return str(ident)
        return self.tokens[ident - 1]

    def encode(self, array: pa.Array) -> np.ndarray:
        """int64 ids of a categorical column (raw values, see `tokens`)."""
        words = tokens(array)
        encoded = pc.dictionary_encode(words)
        uniques = encoded.dictionary.to_pylist()
        if self.encoding == "hash":
            lookup = np.array([hash_id(t, self.size) for t in uniques] + [0], dtype=np.int64)
        else:
            lookup = np.array([self._ids.get(t, 0) for t in uniques] + [0], dtype=np.int64)
        indices = encoded.indices.fill_null(len(uniques)).to_numpy(zero_copy_only=False)
        return lookup[indices]


def count_tokens(array: pa.Array, counts: dict[str, int]) -> None:
    """Add the non-null tokens of a categorical column to `counts` (pass 1 of prepare)."""
    _count(tokens(array), counts)


def _count(words: pa.Array, counts: dict[str, int]) -> None:
    tallies = pc.value_counts(words)
    for value, n in zip(tallies.field(0).to_pylist(), tallies.field(1).to_pylist(), strict=True):
        if value is not None:
            counts[value] = counts.get(value, 0) + n


def build_vocabulary(counts: dict[str, int], size: int, min_count: int) -> tuple[list[str], list[int]]:
    """The tokens of a vocabulary of `size` ids and their counts: the values seen at least
    `min_count` times, most frequent first, ties in code-point order of the token, at most
    size - 1 of them (id 0 is null / unknown)."""
    kept = sorted(((n, t) for t, n in counts.items() if n >= min_count), key=lambda x: (-x[0], x[1]))
    kept = kept[: size - 1]
    return [t for _, t in kept], [n for n, _ in kept]


# --- sequences ------------------------------------------------------------------------------------


def sequence_items(array: pa.Array, splitter: str) -> tuple[pa.Array, np.ndarray]:
    """The items of a sequence column (string tokens, in row order) and each item's row.

    A list column is read as lists; a string column is split at `splitter`; empty and null items
    are skipped; null rows (and a column of Arrow's null type, all null) are empty. Raises
    EncodingError DW614 for a column of single numbers."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    type_ = array.type
    if pa.types.is_null(type_):
        return pa.array([], pa.string()), np.zeros(0, dtype=np.int64)
    if pa.types.is_string(type_) or pa.types.is_large_string(type_) or \
            pa.types.is_string_view(type_):
        array = pc.split_pattern(pc.cast(array, pa.string()), pattern=splitter)
    elif not _is_list(type_):
        raise EncodingError("DW614", f"one {type_} value per row where a sequence is expected",
                            _first_valid(array), "a sequence reads a list column or strings "
                            f"joined with {splitter!r}")
    if not pa.types.is_list(array.type):  # fill_null below needs a variable-size list
        array = array.cast(pa.list_(array.type.value_type))
    array = pc.fill_null(array, pa.scalar([], type=array.type))
    flat = pc.list_flatten(array)
    rows = pc.list_parent_indices(array).to_numpy(zero_copy_only=False).astype(np.int64)
    try:
        words = tokens(flat)
    except EncodingError as error:
        raise EncodingError(error.code, f"an item of the sequence: {error.message}",
                            int(rows[error.row]), error.help) from None
    # tokens are strings: an empty item (a doubled splitter) and a null item are no position
    keep = pc.fill_null(pc.not_equal(words, ""), False).to_numpy(zero_copy_only=False)
    if not keep.all():
        words, rows = words.filter(pa.array(keep)), rows[keep]
    return words, rows


def count_sequence(array: pa.Array, splitter: str, counts: dict[str, int]) -> None:
    """Add a sequence column's item tokens to `counts` (they share the feature's vocabulary)."""
    _count(sequence_items(array, splitter)[0], counts)


def encode_sequence(array: pa.Array, vocabulary: Vocabulary, max_len: int, splitter: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A sequence column as ([N, max_len] int64 ids, [N] int64 lengths): each row's last
    `max_len` items, left-aligned, padded with 0."""
    words, rows = sequence_items(array, splitter)
    count = len(array)
    ids = vocabulary.encode(words) if len(words) else np.zeros(0, dtype=np.int64)
    lengths = np.bincount(rows, minlength=count).astype(np.int64)
    ends = np.cumsum(lengths)
    kept = np.minimum(lengths, max_len)
    start = ends - kept
    positions = np.arange(max_len)[None, :]
    valid = positions < kept[:, None]
    out = np.zeros((count, max_len), dtype=np.int64)
    if len(ids):
        index = np.minimum(start[:, None] + positions, len(ids) - 1)
        out = np.where(valid, ids[index], 0)
    return out, kept


# --- numbers --------------------------------------------------------------------------------------


def _floats(array: pa.Array, what: str) -> np.ndarray:
    """float64 values of a scalar column (NaN where null). Raises EncodingError DW612 for a
    string that is no number, DW614 for a list column."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    type_ = array.type
    if _is_list(type_):
        raise EncodingError("DW614", f"a list where one number per row is expected ({what})",
                            _first_valid(array), "a list column is read only by a numeric or "
                            "output of width > 1")
    if pa.types.is_string(type_) or pa.types.is_large_string(type_) or \
            pa.types.is_string_view(type_):
        trimmed = pc.utf8_trim_whitespace(pc.cast(array, pa.string()))
        trimmed = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
        try:
            array = pc.cast(trimmed, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            row = _first_unparsed(trimmed)
            raise EncodingError("DW612", f"{trimmed[row].as_py()!r} is not a number ({what})",
                                row, "write numbers (1.5, 2e-3); leave the field empty for a "
                                "null") from None
    elif pa.types.is_null(type_):
        return np.full(len(array), np.nan)
    elif not (pa.types.is_integer(type_) or pa.types.is_floating(type_) or
              pa.types.is_boolean(type_) or pa.types.is_decimal(type_)):
        raise EncodingError("DW612", f"a {type_} column is not numbers ({what})",
                            _first_valid(array), "numerics and targets are numbers")
    values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64)


def _first_unparsed(strings: pa.Array) -> int:
    """The first row of a string array that does not cast to float64 (by bisection)."""
    low, high = 0, len(strings)
    while high - low > 1:
        middle = (low + high) // 2
        try:
            pc.cast(strings.slice(low, middle - low), pa.float64())
            low = middle
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            high = middle
    return low


def _matrix(array: pa.Array, width: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """([N, width] float64 values with NaN for nulls, [N] null-row mask) of a numeric column:
    one number per row for width 1, lists of `width` numbers otherwise."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if width == 1:
        values = _floats(array, what)
        return values[:, None], np.isnan(values)
    if not _is_list(array.type):
        raise EncodingError("DW614", f"one value per row where lists of {width} numbers are "
                            f"expected ({what})", _first_valid(array),
                            f"width = {width} reads a list column of {width} numbers per row")
    null_rows = ~array.is_valid().to_numpy(zero_copy_only=False)
    lengths = pc.list_value_length(array).fill_null(width).to_numpy(zero_copy_only=False)
    bad = lengths != width
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise EncodingError("DW618", f"a list of {lengths[row]} numbers where width = {width} "
                            f"({what})", row, f"every row holds exactly {width} numbers (or is "
                            "null)")
    filled = pc.fill_null(array, pa.scalar([None] * width, type=array.type)) if \
        null_rows.any() else array
    flat = pc.list_flatten(filled)
    try:
        values = _floats(flat, what)
    except EncodingError as error:
        raise EncodingError(error.code, error.message, error.row // width, error.help) from None
    return values.reshape(len(array), width), null_rows


def encode_numeric(array: pa.Array, width: int, fill: float) -> np.ndarray:
    """[N, width] float32 of a numeric column, nulls and NaN replaced by `fill`. Raises
    EncodingError DW616 for an infinite value (or one beyond float32)."""
    values, _ = _matrix(array, width, "a numeric")
    values = np.where(np.isnan(values), fill, values)
    with np.errstate(over="ignore"):
        out = values.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        value = values[row][bad[row]][0]
        problem = "is infinite" if not np.isfinite(value) else "does not fit float32"
        raise EncodingError("DW616", f"{value:g} {problem}", row,
                            "rescale or clip the column (e.g. log1p); nulls and NaN are filled")
    return out


def encode_target(array: pa.Array, loss: str, width: int) -> np.ndarray:
    """A target column checked against its loss: [N, width] float32 (bce, mse, poisson) or
    [N] int64 class ids (ce, `width` classes). Raises EncodingError DW613 for a missing target
    or one outside the loss's range."""
    what = f"a {loss} target"
    if loss == "ce":
        values, _ = _matrix(array, 1, what)
        values = values[:, 0]
        bad = np.isnan(values) | (np.floor(values) != values) | (values < 0) | (values >= width)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            problem = "is missing" if np.isnan(values[row]) else \
                f"{values[row]:g} is not a class id in [0, {width})"
            raise EncodingError("DW613", f"the target {problem} (loss = ce)", row,
                                f"ce targets are integer class ids 0 .. {width - 1}")
        return values.astype(np.int64)
    values, _ = _matrix(array, width, what)
    low, high, allowed, hint = TARGET_RANGES.get(loss, ANY_TARGET)
    missing = np.isnan(values)
    bad = missing | ~np.isfinite(values) | (values < low) | (values > high)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        value = values[row][bad[row]][0]
        problem = "is missing" if np.isnan(value) else f"{value:g} is not {allowed}"
        raise EncodingError("DW613", f"the target {problem} (loss = {loss})", row,
                            f"{hint}; drop rows without a target first")
    return values.astype(np.float32)


# --- raw values from Python (serving) ---------------------------------------------------------------


def as_arrow(values: object) -> pa.Array:
    """A pyarrow array of raw values given as a Python list, a numpy array (strings, objects,
    numbers; [N, w] numbers become fixed-size lists, [N, T] strings or objects lists) or an Arrow
    array. None and NaN are null."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    if isinstance(values, np.ndarray) and values.ndim == 2 and values.dtype.kind in "fiub":
        flat = pa.array(values.reshape(-1), from_pandas=True)
        return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "fiubUS":
        return pa.array(values, from_pandas=True)
    items = values.tolist() if isinstance(values, np.ndarray) else list(_iterable(values))
    return pa.array(items, from_pandas=True)


def _iterable(values: object) -> Iterable:
    if isinstance(values, str | bytes | set | frozenset | dict) or \
            not isinstance(values, Iterable):
        what = " (its order is undefined)" if isinstance(values, set | frozenset | dict) else ""
        raise TypeError(f"expected one value per row (a list or array), got "
                        f"{type(values).__name__}{what}")
    return values
