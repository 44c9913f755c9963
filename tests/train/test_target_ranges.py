"""Where a float target must lie, one table (dataset.TARGET_RANGES) read by each place targets
enter dwc: `dwc data prepare` (encoding.encode_target, DW613) and prepared shards read by `dwc
train` (DW646). Each place is tried with values on and past each loss's bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from dwc.diagnostics import DiagnosticError
from dwc.encoding import EncodingError, encode_target
from dwc.prepared import _check_floats, _Column

CASES = [  # (loss, values that train, a value that does not, its range in words)
    ("bce", [0.0, 0.25, 1.0], 1.5, "in [0, 1]"),
    ("bce", [0.0, 1.0], -0.5, "in [0, 1]"),
    ("poisson", [0.0, 3.0, 1e6], -1.0, ">= 0"),
    ("mse", [-1e6, 0.0, 1e6], np.inf, "finite"),
]


@pytest.mark.parametrize(("loss", "good", "bad", "allowed"), CASES)
def test_data_prepare_takes_the_range_and_refuses_past_it(loss, good, bad, allowed):
    assert encode_target(pa.array(good), loss, 1)[:, 0].tolist() == good
    with pytest.raises(EncodingError) as info:
        encode_target(pa.array([*good, bad]), loss, 1)
    assert info.value.code == "DW613" and info.value.row == len(good)
    assert f"{bad:g} is not {allowed} (loss = {loss})" in info.value.message


@pytest.mark.parametrize(("loss", "good", "bad", "allowed"), CASES)
def test_a_prepared_shard_takes_the_range_and_refuses_past_it(loss, good, bad, allowed):
    column = _Column("y", "float32", (1,), is_target=True, loss=loss)
    _check_floats(column, np.array(good, np.float32)[:, None], Path("s.parquet"), 100)
    with pytest.raises(DiagnosticError) as info:
        _check_floats(column, np.array([*good, bad], np.float32)[:, None], Path("s.parquet"), 100)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "DW646"
    assert f"shard 's.parquet' row {100 + len(good)}: y " in diagnostic.message
    assert (f"target {bad:g} is not {allowed} as loss = {loss} needs" in diagnostic.message
            if np.isfinite(bad) else f"value {bad:g} is not finite" in diagnostic.message)
