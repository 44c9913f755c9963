"""Mutated training-data files: random dtype, shape, range, key and byte changes to valid `.npz`
files. `dwc train` must either train or report coded DW6xx diagnostics (with a help line) —
never an internal error, a traceback or a half-written --out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dwc.backends.export import load_generated
from dwc.cli import main
from dwc.dataset import load_training_data
from dwc.diagnostics import CODES, DiagnosticError
from dwc.driver import compile_source
from dwc.source import SourceFile
from tests.conftest import ROOT
from tests.train.columns import contract_npz

CASES = 300
FULL_RUNS = 12  # valid files trained end to end through the CLI; the others run one forward pass
SPECS = {
    "apg": (ROOT / "experiments" / "apg.dw").read_text(),
    "heads": """model heads
feature user_id : categorical(vocab = 30, dim = 4)
feature clicks  : sequence(user_id, max_len = 4, pool = sum)
feature price   : numeric(width = 2)
feature page    : categorical(vocab = 3, dim = 2) scenario
scenarios page
condition z = concat(page)
h = mlp(concat(user_id, clicks, price), [8]) dynamic(by = z)
output click = sigmoid(linear(h, 1)) loss = bce
output topic = softmax(linear(h, 3)) loss = ce weight = 0.5
output count = exp(linear(h, 1)) loss = poisson weight = 0.2
output dwell = identity(linear(h, 2)) loss = mse weight = 0.1
""",
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-data")
    models = {}
    for name, text in SPECS.items():
        spec = root / f"{name}.dw"
        spec.write_text(text)
        result = compile_source(SourceFile(str(spec), text))
        torch.manual_seed(0)
        module = load_generated(result.files["model.py"], f"fuzz_{name}")(validate_inputs=True)
        models[name] = (spec, result.graph, module, contract_npz(result.graph, rows=48))
    return models


def _mutate_array(rng, array: np.ndarray) -> np.ndarray:
    kind = rng.integers(12)
    if kind == 0:
        return array.astype(rng.choice(["float64", "float16", "float32", "int32", "uint8", "bool",
                                        "int16", "uint64"]))
    if kind == 1:
        return array.astype(str)
    if kind == 2:
        return array.ravel()
    if kind == 3:
        return array[..., None]
    if kind == 4:
        return array.T if array.ndim == 2 else array.reshape(1, -1)
    if kind == 5:
        return array[: rng.integers(0, len(array))]
    if array.dtype.kind not in "iufb" or array.size == 0:
        return array
    out = array.astype(np.float64 if array.dtype.kind == "f" else np.int64, copy=True)
    flat = out.reshape(-1)
    index = rng.integers(flat.size)
    value = rng.choice([-1, 0, 1, 2, 3, 4, 5, 10, 29, 30, 1000, 2000, 2 ** 40, -2 ** 40])
    if out.dtype.kind == "f":
        value = rng.choice([np.nan, np.inf, -np.inf, 2.0, -3.0, 0.5, 1e39, float(value)])
    flat[index] = value
    if array.dtype == np.float32 and rng.random() < 0.5:
        with np.errstate(over="ignore"):  # 1e39 becomes inf, as it would in the user's cast
            return out.astype(np.float32)
    return out


def _mutate(rng, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    columns = dict(columns)
    for _ in range(rng.integers(1, 4)):
        keys = sorted(columns)
        if not keys:
            break
        key = keys[rng.integers(len(keys))]
        action = rng.integers(10)
        if action == 0:
            del columns[key]
        elif action == 1:
            columns[key.replace("/", "/x") if rng.random() < 0.5 else key.upper()] = \
                columns.pop(key)
        elif action == 2:
            split = rng.choice(["train", "valid", "test"])
            columns = {k: v for k, v in columns.items() if not k.startswith(f"{split}/")}
        elif action == 3:
            columns[rng.choice(["junk", "other/x", "train/extra", "valid"])] = np.arange(3)
        else:
            columns[key] = _mutate_array(rng, columns[key])
    return columns


def _write(rng, path, columns) -> None:
    np.savez(path, **columns)
    if columns and rng.random() < 0.1:  # replace one member by bytes that are not .npy data
        import zipfile

        key = sorted(columns)[rng.integers(len(columns))]
        kept = {k: v for k, v in columns.items() if k != key}
        np.savez(path, **kept)
        header = (b"\x93NUMPY\x01\x00v\x00{'descr': '<i8', 'fortran_order': False, 'shape': ("
                  + str(int(rng.choice([10 ** 11, 3, 0]))).encode() + b",), }" + b" " * 40
                  + b"\n")
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr(f"{key}.npy", header if rng.random() < 0.5 else b"not npy data")
    elif rng.random() < 0.1:  # damage the archive itself
        data = bytearray(path.read_bytes())
        if rng.random() < 0.5:
            data = data[: rng.integers(len(data))]
        else:
            for _ in range(8):
                data[rng.integers(len(data))] = rng.integers(256)
        path.write_bytes(bytes(data))


def test_mutated_data_files_never_cause_internal_errors(models, tmp_path, capsys):
    outcomes = {"trained": 0, "rejected": 0}
    codes: set[str] = set()
    full_runs = 0
    for case in range(CASES):
        rng = np.random.default_rng(case)
        name = "apg" if case % 2 == 0 else "heads"
        spec, graph, module, clean = models[name]
        if name == "apg" and case % 4 == 0:  # the columns `dwc data generate` writes
            clean = _generated()
        columns = _mutate(rng, clean)
        path = tmp_path / f"case{case}.npz"
        _write(rng, path, columns)
        out = tmp_path / f"run{case}"
        try:
            data = load_training_data(str(path), graph)
        except DiagnosticError as error:
            data = None
            codes |= {d.code for d in error.diagnostics}
            for d in error.diagnostics:
                assert d.code in CODES and d.code.startswith("DW6") and d.help, (case, d)
        except Exception as error:  # noqa: BLE001 - what this test exists to find
            pytest.fail(f"case {case}: {type(error).__name__}: {error}")
        if data is None or full_runs < FULL_RUNS:
            status = main(["train", str(spec), "--data", str(path), "--out", str(out),
                           "--epochs", "1", "--max-steps", "1", "--batch-size", "16"])
            err = capsys.readouterr().err
            assert "DW900" not in err and "Traceback" not in err, (case, err)
            assert status == (2 if data is None else 0), (case, err)
            assert out.exists() == (data is not None), case
            full_runs += data is not None
        else:  # accepted: the generated module's own input checks agree, and it runs
            split = data.splits["train"]
            batch = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in split.inputs.items()}
            targets = {k: torch.from_numpy(np.ascontiguousarray(v))
                       for k, v in split.targets.items()}
            with torch.no_grad():
                assert torch.isfinite(module.loss(batch, targets)), case
        outcomes["trained" if data is not None else "rejected"] += 1
    # the mutations reach both outcomes and most of the checks
    assert outcomes["trained"] >= 20 and outcomes["rejected"] >= 150, outcomes
    assert codes >= {"DW601", "DW602", "DW603", "DW604", "DW605", "DW606", "DW607", "DW608"}, codes


_GENERATED: dict[str, np.ndarray] = {}


def _generated() -> dict[str, np.ndarray]:
    if not _GENERATED:
        from dwc.data import make_dataset

        for i, split in enumerate(("train", "valid", "test")):
            for key, value in make_dataset(40, seed=0, split=i).items():
                _GENERATED[f"{split}/{key}"] = value
    return _GENERATED
