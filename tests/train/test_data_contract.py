"""The training-data contract (docs/data.md): every problem in a data file is a coded diagnostic
naming the split, the column and the first offending row, found before the first step."""

from __future__ import annotations

import argparse
import json
import os
import warnings
import zipfile

import numpy as np
import pytest

from dwc.cli import _DATA_COLUMNS, _build_parser, main
from dwc.data import make_dataset
from dwc.dataset import cell_name, load_training_data, scenario_cells
from dwc.diagnostics import DiagnosticError
from dwc.driver import check_source, compile_source
from dwc.source import SourceFile
from dwc.train import OPTIMIZERS
from tests.conftest import ROOT
from tests.train.columns import contract_npz

SPEC = str(ROOT / "experiments" / "apg.dw")
MULTI = """model two_heads

feature user_id : categorical(vocab = 50, dim = 4)
feature history : sequence(user_id, max_len = 5, pool = mean)
feature price   : numeric(width = 2)
feature country : categorical(vocab = 3, dim = 2) scenario
feature page    : categorical(vocab = 2, dim = 2) scenario

scenarios country * page

condition z = concat(country, page)

x = concat(user_id, history, price)
h = mlp(x, [8], act = relu) dynamic(by = z)

output click = sigmoid(linear(h, 1)) loss = bce
output like  = sigmoid(linear(h, 1)) loss = bce weight = 0.25
output dwell = identity(linear(h, 1)) loss = mse weight = 0.5
output topic = softmax(linear(h, 3)) loss = ce weight = 0.1
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("contract") / "d.npz"
    assert main(["data", "generate", str(path), "--rows", "2000"]) == 0
    with np.load(path) as archive:
        return dict(archive)


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    path = tmp_path_factory.mktemp("multi") / "two_heads.dw"
    path.write_text(MULTI)
    return path, check_source(SourceFile(str(path), MULTI))


def _write(tmp_path, columns, name="d.npz"):
    path = tmp_path / name
    np.savez(path, **columns)
    return str(path)


def _changed(data, **changes):
    columns = dict(data)
    for key, value in changes.items():
        key = key.replace("__", "/")
        if value is None:
            columns.pop(key)
        else:
            columns[key] = value
    return columns


def _set(array, row, value, dtype=None):
    array = array.astype(dtype or array.dtype, copy=True)
    array[row] = value
    return array


def _cases(data):
    n_train, n_valid = len(data["train/user_id"]), len(data["valid/user_id"])
    return {
        # the last training row: --max-steps 1 never samples it, the check still finds it
        "oov id": (dict(train__user_id=_set(data["train/user_id"], n_train - 1, 2000)),
                   "DW606", f"train/user_id row {n_train - 1}: id 2000 is outside [0, 2000)"),
        "negative id": (dict(valid__domain=_set(data["valid/domain"], 5, -1)),
                        "DW606", "valid/domain row 5: id -1"),
        "oov id in a sequence": (
            dict(train__history=_set(data["train/history"], (7, 3), 1000)),
            "DW606", "train/history row 7: id 1000"),
        "length above max_len": (dict(valid__history_len=_set(data["valid/history_len"], 3, 99)),
                                 "DW607", "valid/history_len row 3: length 99 is outside 0..10"),
        "negative length": (dict(train__history_len=_set(data["train/history_len"], 0, -5)),
                            "DW607", "train/history_len row 0: length -5"),
        "1-D target": (dict(train__ctr=data["train/ctr"][:, 0]),
                       "DW605", "train/ctr has shape [1600], the model reads [N, 1]"),
        "numeric without its width": (dict(valid__price=data["valid/price"][:, 0]),
                                      "DW605", "valid/price has shape [200]"),
        "ragged split": (dict(train__item_id=data["train/item_id"][:-3]),
                         "DW605", "train/item_id has 1,597 rows but train/user_id has 1,600"),
        "missing column": (dict(valid__category=None),
                           "DW603", "the 'valid' split has no column 'category'"),
        "missing target": (dict(train__ctr=None), "DW603", "no column 'ctr' (the target"),
        "missing split": ({k.replace("/", "__"): None for k in data if k.startswith("valid/")},
                          "DW602", "has no 'valid' split"),
        "empty split": ({k.replace("/", "__"): v[:0] for k, v in data.items()
                         if k.startswith("valid/")}, "DW602", "the 'valid' split has no rows"),
        "float ids": (dict(train__item_id=data["train/item_id"].astype(np.float32)),
                      "DW604", "train/item_id is float32, the model reads int64 ids"),
        "string ids": (dict(valid__user_id=data["valid/user_id"].astype(str)),
                       "DW604", "valid/user_id is <U"),
        "label outside [0, 1]": (dict(train__ctr=_set(data["train/ctr"], 11, 2.0)),
                                 "DW608", "train/ctr row 11: target 2 is not in [0, 1]"),
        "nan numeric": (dict(valid__price=_set(data["valid/price"], n_valid - 1, np.nan)),
                        "DW608", f"valid/price row {n_valid - 1}: numeric value nan is not finite"),
    }


CASES = ["oov id", "negative id", "oov id in a sequence", "length above max_len",
         "negative length", "1-D target", "numeric without its width", "ragged split",
         "missing column", "missing target", "missing split", "empty split", "float ids",
         "string ids", "label outside [0, 1]", "nan numeric"]


@pytest.mark.parametrize("case", CASES)
def test_each_problem_is_a_coded_diagnostic_before_training(case, data, tmp_path, capsys):
    changes, code, message = _cases(data)[case]
    path = _write(tmp_path, _changed(data, **changes))
    out = tmp_path / "run"
    status = main(["train", SPEC, "--data", path, "--out", str(out), "--max-steps", "1"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert f"error[{code}]" in err and message in err, err
    assert "= help:" in err and "Traceback" not in err and "DW900" not in err
    assert not out.exists()  # nothing was written


def test_all_problems_of_a_file_are_reported_together(data, tmp_path):
    cases = _cases(data)
    changes = {**cases["oov id"][0], **cases["length above max_len"][0],
               **cases["missing column"][0]}
    with pytest.raises(DiagnosticError) as error:
        load_training_data(_write(tmp_path, _changed(data, **changes)),
                           compile_source(SourceFile(SPEC, open(SPEC).read())).graph)
    assert sorted(d.code for d in error.value.diagnostics) == ["DW603", "DW606", "DW607"]


@pytest.mark.parametrize("content, message", [
    (b"", "is not a .npz archive (it is empty)"),
    (b"user_id,item_id\n1,2\n", "is not a .npz archive (it is not a zip archive)"),
    (b"\x93NUMPY\x01\x00", "holds a single array (.npy)"),
    (b"PK\x03\x04garbage", "is not a .npz archive"),
])
def test_a_file_that_is_not_an_npz(content, message, tmp_path, capsys):
    path = tmp_path / "d.npz"
    path.write_bytes(content)
    assert main(["train", SPEC, "--data", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "error[DW601]" in err and message in err, err


def test_an_npz_that_is_a_pipe_is_refused_not_waited_on(tmp_path, capsys):
    fifo = tmp_path / "d.npz"
    os.mkfifo(fifo)
    assert main(["train", SPEC, "--data", str(fifo), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "error[DW601]" in err and "it is not a regular file (a pipe or a device)" in err
    assert not (tmp_path / "r").exists()


def test_a_truncated_column_is_called_damaged_not_pickled(data, tmp_path, capsys):
    """A member cut short: DW601 saying so (its hint spoke of pickled arrays)."""
    path = tmp_path / "d.npz"
    np.savez(path, **data)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, body in members.items():
            archive.writestr(name, body[:100] if name == "train/user_id.npy" else body)
    assert main(["train", SPEC, "--data", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "error[DW601]" in err and "cannot read column 'train/user_id'" in err
    assert "damaged or truncated" in err and "pickled" not in err


def test_pickled_columns_are_refused(data, tmp_path, capsys):
    columns = _changed(data, train__user_id=np.array([{"id": 1}] * 1600, dtype=object))
    path = tmp_path / "d.npz"
    np.savez(path, **columns)
    assert main(["train", SPEC, "--data", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "error[DW601]" in capsys.readouterr().err


def test_float64_numerics_are_read_as_float32_with_a_note(data, tmp_path, capsys):
    changes = {f"{s}__price": data[f"{s}/price"].astype(np.float64) for s in ("train", "valid")}
    changes["train__ctr"] = data["train/ctr"].astype(bool)  # labels as booleans: silently 0/1
    changes["valid__user_id"] = data["valid/user_id"].astype(np.int32)
    path = _write(tmp_path, _changed(data, **changes))
    status = main(["train", SPEC, "--data", path, "--out", str(tmp_path / "r"), "--epochs", "1",
                   "--max-steps", "2"])
    err = capsys.readouterr().err
    assert status == 0, err
    notes = [line for line in err.splitlines() if line.startswith("info[DW609]")]
    # one note per float64 column; lossless conversions (bool labels, int32 ids) pass silently
    assert notes == ["info[DW609]: train/price is float64; read as float32",
                     "info[DW609]: valid/price is float64; read as float32"]
    assert (tmp_path / "r" / "best.pt").exists()


def test_contract_columns_of_the_docs_load_unchanged(multi, tmp_path):
    """Columns written from docs/data.md (tests/train/columns.py) pass the check unchanged."""
    _, graph = multi
    columns = contract_npz(graph, rows=40)
    data = load_training_data(_write(tmp_path, columns), graph)
    assert set(data.splits) == {"train", "valid", "test"} and not data.notes
    for split in data.splits.values():
        for name, value in {**split.inputs, **split.targets}.items():
            np.testing.assert_array_equal(value, columns[f"{split.name}/{name}"])
            assert value.dtype == columns[f"{split.name}/{name}"].dtype


def test_test_split_is_optional(multi, tmp_path):
    _, graph = multi
    columns = contract_npz(graph, rows=40, splits=("train", "valid"))
    assert set(load_training_data(_write(tmp_path, columns), graph).splits) == {"train", "valid"}


def test_scenario_cells_are_numbered_row_major(multi):
    _, graph = multi
    country, page = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0])
    cells = scenario_cells({"country": country, "page": page}, graph)
    np.testing.assert_array_equal(cells, country * 2 + page)
    assert cell_name(5, graph) == "country=2, page=1"


def test_multi_output_metrics_follow_the_loss_weights(multi, tmp_path):
    """The best epoch is chosen by the loss-weighted mean AUC of the bce outputs; the other
    outputs report the metric of their loss; metrics.json is strict JSON."""
    spec, graph = multi
    path = _write(tmp_path, contract_npz(graph, rows=300))
    out = tmp_path / "run"
    assert main(["train", str(spec), "--data", path, "--out", str(out), "--epochs", "3",
                 "--batch-size", "64", "--patience", "3"]) == 0
    text = (out / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert metrics["schema"] == 1 and metrics["rows"] == {"train": 300, "valid": 300, "test": 300}
    assert metrics["selection"] == {"metric": "auc", "weights": {"click": 0.8, "like": 0.2},
                                    "higher_is_better": True}
    for entry in metrics["history"]:
        outputs = entry["valid"]["outputs"]
        expected = 0.8 * outputs["click"]["auc"] + 0.2 * outputs["like"]["auc"]
        assert entry["valid"]["metric"] == pytest.approx(expected)
        weighted = (outputs["click"]["logloss"] + 0.25 * outputs["like"]["logloss"]
                    + 0.5 * outputs["dwell"]["mse"] + 0.1 * outputs["topic"]["logloss"])
        assert entry["valid"]["loss"] == pytest.approx(weighted)
        assert 0 <= outputs["topic"]["accuracy"] <= 1
        assert set(outputs["click"]["scenarios"]) <= {str(c) for c in range(6)}
    best = max(metrics["history"], key=lambda e: e["valid"]["metric"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["best_valid_metric"] == pytest.approx(best["valid"]["metric"])
    assert metrics["test"]["outputs"]["dwell"]["rows"] == 300


def test_without_a_bce_output_the_weighted_loss_selects(tmp_path):
    text = MULTI.replace("output click = sigmoid(linear(h, 1)) loss = bce\n", "").replace(
        "output like  = sigmoid(linear(h, 1)) loss = bce weight = 0.25\n", "")
    spec = tmp_path / "regression.dw"
    spec.write_text(text)
    graph = check_source(SourceFile(str(spec), text))
    out = tmp_path / "run"
    assert main(["train", str(spec), "--data", _write(tmp_path, contract_npz(graph, rows=100)),
                 "--out", str(out), "--epochs", "2", "--patience", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selection"]["metric"] == "loss"
    assert not metrics["selection"]["higher_is_better"]
    losses = [e["valid"]["loss"] for e in metrics["history"]]
    assert metrics["best_valid_metric"] == pytest.approx(min(losses))


def test_a_one_class_validation_split_selects_by_loss_and_says_so(data, tmp_path, capsys):
    changes = {"valid__ctr": np.zeros_like(data["valid/ctr"])}
    out = tmp_path / "run"
    assert main(["train", SPEC, "--data", _write(tmp_path, _changed(data, **changes)),
                 "--out", str(out), "--epochs", "3", "--patience", "3", "--batch-size", "64",
                 "--lr", "0.03"]) == 0
    assert "holds one class only, so AUC is undefined" in capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())  # strict: no NaN literal
    assert metrics["history"][0]["valid"]["outputs"]["ctr"]["auc"] is None
    assert metrics["selection"]["metric"] == "loss" and "note" in metrics["selection"]
    losses = [e["valid"]["loss"] for e in metrics["history"]]
    assert metrics["best_epoch"] == 1 + losses.index(min(losses))
    assert metrics["best_valid_metric"] == pytest.approx(min(losses))


def _help(*command) -> str:
    parser = _build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command[0]].format_help()


def test_train_help_shows_every_default():
    text = " ".join(_help("train").split())
    for default in ("--batch-size BATCH_SIZE rows per step (per process) (default: 512)",
                    "learning rate (default: 0.003)", "(default: adam)", "(default: 5)",
                    "epochs without a better validation metric (default: 2)",
                    "weight decay (default: 0.0)", "docs/data.md"):
        assert default in text, default
    parser_choices = next(a for a in _build_parser()._subparsers._group_actions[0]
                          .choices["train"]._actions if a.dest == "optimizer").choices
    assert tuple(parser_choices) == OPTIMIZERS


def test_data_generate_help_names_the_columns_it_writes():
    text = _help("data")
    columns = make_dataset(50, seed=0)
    assert [name for name, _ in _DATA_COLUMNS] == list(columns)
    for name, kind in _DATA_COLUMNS:
        dtype, shape = kind.split("[")[0].strip(), "[" + kind.split("[")[1].split("]")[0] + "]"
        assert columns[name].dtype == np.dtype(dtype), name
        assert shape == "[" + ", ".join(["N", *map(str, columns[name].shape[1:])]) + "]", name
        assert f"{name:<12} {kind}" in text
    assert "experiments/" in text and "docs/data.md" in text


def test_data_generate_writes_exactly_the_path_atomically(tmp_path, capsys):
    path = tmp_path / "data"  # no .npz suffix: numpy.savez would have written data.npz
    assert main(["data", "generate", str(path), "--rows", "100"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    before = path.read_bytes()
    (tmp_path / "file").write_text("x")
    unwritable = tmp_path / "file" / "d.npz"  # its parent is a file
    assert main(["data", "generate", str(unwritable), "--rows", "100"]) == 2
    err = capsys.readouterr().err
    assert "error[DW402]" in err and "nothing was written" in err
    assert main(["data", "generate", str(tmp_path), "--rows", "100"]) == 2  # a directory
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "file"]  # no temporary file


def test_train_out_that_cannot_be_written(data, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    path = _write(tmp_path, data)
    assert main(["train", SPEC, "--data", path, "--out", str(tmp_path / "file" / "run")]) == 2
    err = capsys.readouterr().err
    assert "error[DW402]" in err and "--out; nothing was written" in err
    assert "DW900" not in err


@pytest.mark.parametrize("flag, value", [("--epochs", "0"), ("--batch-size", "0"),
                                         ("--lr", "-1"), ("--lr", "nan"),
                                         ("--weight-decay", "-1"), ("--weight-decay", "nan"),
                                         ("--max-steps", "0"), ("--optimizer", "lbfgs")])
def test_bad_training_options_are_usage_errors(flag, value, data, tmp_path, capsys):
    argv = ["train", SPEC, "--data", _write(tmp_path, data), "--out", str(tmp_path / "r"),
            flag, value]
    try:
        status = main(argv)
    except SystemExit as exit:  # argparse's own usage errors (a choice that does not exist)
        status = exit.code
    err = capsys.readouterr().err
    assert status == 2 and flag in err and "Traceback" not in err, err
    assert not (tmp_path / "r").exists()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_float64_value_beyond_float32_is_named_not_warned(data, tmp_path, capsys):
    price = data["train/price"].astype(np.float64)
    price[4, 0] = 1e39
    path = _write(tmp_path, _changed(data, train__price=price))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow RuntimeWarning must not reach users
        assert main(["train", SPEC, "--data", path, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "error[DW608]: train/price row 4: numeric value 1e+39 does not fit float32" in err


def test_columns_the_model_does_not_read_are_never_loaded(data, tmp_path):
    columns = {**data, "train/notes": np.array(["free text"] * 1600, dtype=object),
               "valid/comment": np.array([{"a": 1}] * 200, dtype=object)}
    path = tmp_path / "d.npz"
    np.savez(path, **columns)  # object arrays: pickled inside, refused if they were read
    assert main(["train", SPEC, "--data", str(path), "--out", str(tmp_path / "r"), "--epochs",
                 "1", "--max-steps", "1"]) == 0


@pytest.mark.parametrize("member, message", [
    (b"garbage, not npy data", "column 'train/user_id'"),
    # a valid .npy header that claims 10^11 int64 values
    (b"\x93NUMPY\x01\x00v\x00{'descr': '<i8', 'fortran_order': False, 'shape': "
     b"(100000000000,), }" + b" " * 40 + b"\n", "column 'train/user_id'"),
])
def test_a_damaged_column_inside_the_archive_is_dw601(member, message, data, tmp_path, capsys):
    import zipfile

    path = tmp_path / "d.npz"
    np.savez(path, **{k: v for k, v in data.items() if k != "train/user_id"})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("train/user_id.npy", member)
    assert main(["train", SPEC, "--data", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "error[DW601]" in err and message in err and "DW900" not in err, err


def test_a_short_column_is_the_one_blamed(data, tmp_path, capsys):
    path = _write(tmp_path, _changed(data, train__user_id=data["train/user_id"][:-2]))
    assert main(["train", SPEC, "--data", path, "--out", str(tmp_path / "r")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert errors == ["error[DW605]: train/user_id has 1,598 rows but train/item_id has 1,600"]


@pytest.mark.parametrize("env, message", [
    ({"RANK": "abc", "WORLD_SIZE": "2"}, "must be integers"),
    ({"RANK": "0", "WORLD_SIZE": "2"}, "without MASTER_ADDR and MASTER_PORT"),
    ({"RANK": "1", "WORLD_SIZE": "1"}, "RANK=1 is not a process of WORLD_SIZE=1"),
    ({"RANK": "0", "WORLD_SIZE": "0"}, "is not a process of WORLD_SIZE=0"),
])
def test_a_broken_launch_environment_is_a_usage_error(env, message, data, tmp_path,
                                                      monkeypatch, capsys):
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "r"
    assert main(["train", SPEC, "--data", _write(tmp_path, data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "torchrun" in err and "DW900" not in err, err
    assert not out.exists()


def test_data_generate_follows_links_creates_parents_and_refuses_special_files(tmp_path, capsys):
    target = tmp_path / "real.npz"
    (tmp_path / "link.npz").symlink_to(target)
    assert main(["data", "generate", str(tmp_path / "link.npz"), "--rows", "100"]) == 0
    assert (tmp_path / "link.npz").is_symlink() and target.stat().st_size > 0
    assert main(["data", "generate", str(tmp_path / "a" / "b" / "d.npz"), "--rows", "100"]) == 0
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    capsys.readouterr()
    assert main(["data", "generate", str(fifo), "--rows", "100"]) == 2
    assert "is not a regular file" in capsys.readouterr().err
    assert not fifo.is_file() and fifo.exists()  # still the FIFO


def test_data_generate_refuses_a_size_that_cannot_fit(tmp_path, capsys):
    assert main(["data", "generate", str(tmp_path / "d.npz"), "--rows", "100000000000"]) == 2
    assert "GiB of memory" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_help_shows_no_default_for_options_without_one():
    text = _help("train")
    assert "(default: None)" not in text and "(default: no limit)" in text
