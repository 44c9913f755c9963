"""`dwc data prepare`: the prepared-data contract (docs/data.md, "Preparing raw logs"), the
encoding rules, the splits, and a coded diagnostic for each kind of bad data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from dwc.cli import main
from dwc.prepare import hash_split

SPEC = """\
model raw_ctr

feature user_id : categorical(vocab = 50, dim = 8, column = "uid")
feature item_id : categorical(vocab = 4, dim = 8, min_count = 2)
feature history : sequence(item_id, max_len = 3)
feature price   : numeric(fill = -1.0)
feature country : categorical(vocab = 4, dim = 4) scenario
feature page    : categorical(vocab = 8, dim = 4, encoding = hash) scenario

scenarios country * page

condition z = concat(country, page)

x = concat(user_id, item_id, history, price)
h = mlp(x, [8]) dynamic(by = z)
output ctr = sigmoid(linear(h, 1)) loss = bce column = "click"
"""

ROWS = {
    "uid": ["u1", "u2", "u1", None, "u3", "u2", "u4", "u1", "u5", "u2"],
    "item_id": ["i1", "i2", "i3", "i1", "i2", "i1", "i4", "i2", "i1", "i3"],
    "history": ["i2^i3", "", "i1^i2^i3^i1^i2", "i9", "i2", "i1^i3", None, "i1", "i2^^i2", "i3"],
    "price": [1.5, 2.0, None, 3.5, 0.5, 1.0, 2.5, 1.0, 4.0, 1.5],
    "country": ["US", "DE", "US", "FR", "US", "DE", "US", "US", "DE", "US"],
    "page": ["feed", "search", "feed", "feed", "feed", "feed", "search", "feed", "feed", "feed"],
    "click": [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
}


def _write(path: Path, columns: dict) -> Path:
    table = pa.table(columns)
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "spec.dw"
    path.write_text(SPEC)
    return path


def _prepare(spec, out, *args) -> int:
    return main(["data", "prepare", str(spec), "--out", str(out), *map(str, args)])


def _read(directory: Path, split: str) -> dict[str, list]:
    manifest = json.loads((directory / "manifest.json").read_text())
    tables = [pq.read_table(directory / s) for s in manifest["splits"][split]["shards"]]
    return pa.concat_tables(tables).to_pydict()


def test_the_prepared_directory_follows_the_contract(tmp_path, spec):
    log = _write(tmp_path / "log.parquet", ROWS)
    out = tmp_path / "prepared"
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(ROWS) + "\n")
    assert _prepare(spec, out, "--train", log, "--valid", empty) == 2  # DW615: no valid rows
    empty.unlink()
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "log.parquet", "spec.dw"]  # nothing half-written, no temporary directory left
    assert _prepare(spec, out, "--train", log, "--split", "60/20/20", "--split-by", "order") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "dwc-prepared" and manifest["version"] == 1
    assert manifest["model"] == "raw_ctr" and manifest["spec"] == "spec.dw"
    assert (out / "spec.dw").read_text() == SPEC
    import hashlib
    assert manifest["spec_sha256"] == hashlib.sha256(SPEC.encode()).hexdigest()
    assert [(i["name"], i["kind"], i["dtype"], i["shape"]) for i in manifest["inputs"]] == [
        ("user_id", "categorical", "int64", []), ("item_id", "categorical", "int64", []),
        ("history", "sequence", "int64", [3]), ("history_len", "length", "int64", []),
        ("price", "numeric", "float32", [1]), ("country", "categorical", "int64", []),
        ("page", "categorical", "int64", [])]
    assert manifest["outputs"] == [{"name": "ctr", "loss": "bce", "dtype": "float32",
                                    "shape": [1]}]
    assert {s: v["rows"] for s, v in manifest["splits"].items()} == {
        "train": 6, "valid": 2, "test": 2}
    assert manifest["vocabularies"] == {
        "user_id": "vocab/user_id.json", "item_id": "vocab/item_id.json",
        "history": "vocab/item_id.json", "country": "vocab/country.json",
        "page": "vocab/page.json"}
    # vocabularies: train rows only (the first 6), most frequent first, ties by token, min_count,
    # capped at vocab - 1 tokens; sequences count into their feature's vocabulary
    users = json.loads((out / "vocab/user_id.json").read_text())
    assert users["tokens"] == ["u1", "u2", "u3"] and users["counts"] == [2, 2, 1]
    items = json.loads((out / "vocab/item_id.json").read_text())
    assert items["tokens"] == ["i1", "i2", "i3"] and items["counts"] == [6, 6, 4]
    assert items["min_count"] == 2 and items["size"] == 4 and items["encoding"] == "vocabulary"
    page = json.loads((out / "vocab/page.json").read_text())
    assert page["encoding"] == "hash" and "tokens" not in page
    train = _read(out, "train")
    assert train["user_id"] == [1, 2, 1, 0, 3, 2]  # null -> 0
    assert train["item_id"] == [1, 2, 3, 1, 2, 1]
    # the last max_len items are kept (the most recent), left-aligned, padded with 0
    assert train["history"] == [[2, 3, 0], [0, 0, 0], [3, 1, 2], [0, 0, 0], [2, 0, 0],
                                [1, 3, 0]]
    assert train["history_len"] == [2, 0, 3, 1, 1, 2]  # 'i9' is out of vocabulary: id 0, kept
    assert train["price"] == [1.5, 2.0, -1.0, 3.5, 0.5, 1.0]  # null -> fill
    assert train["ctr"] == [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    schema = pq.read_schema(out / manifest["splits"]["train"]["shards"][0])
    assert str(schema.field("history").type) == "fixed_size_list<element: int64>[3]"
    assert schema.field("price").type == pa.float32() and schema.field("ctr").type == pa.float32()
    valid = _read(out, "valid")
    assert valid["user_id"] == [0, 1] and valid["history"] == [[0, 0, 0], [1, 0, 0]]
    assert valid["history_len"] == [0, 1]
    cells = manifest["splits"]["train"]["cells"]
    assert sum(cells.values()) == 6 and all(k.startswith("country=") for k in cells)
    assert cells["country=US, page=" + str(train["page"][0])] == 3
    assert items["oov_rate"]["valid"] == pytest.approx(1 / 3)  # 'i4' unknown; 'i2', 'i1' known


def test_csv_and_parquet_logs_prepare_to_the_same_shards(tmp_path, spec):
    _prepare(spec, tmp_path / "a", "--train", _write(tmp_path / "log.parquet", ROWS))
    _prepare(spec, tmp_path / "b", "--train", _write(tmp_path / "log.csv", ROWS))
    for split in ("train", "valid"):
        assert _read(tmp_path / "a", split) == _read(tmp_path / "b", split)
    for name in ("user_id", "item_id", "country"):
        assert (tmp_path / "a" / "vocab" / f"{name}.json").read_text() == \
            (tmp_path / "b" / "vocab" / f"{name}.json").read_text()


def test_list_columns_and_int_ids_read_like_joined_strings(tmp_path, spec):
    listed = dict(ROWS, history=[None if h is None else [t for t in h.split("^") if t]
                                 for h in ROWS["history"]])
    _prepare(spec, tmp_path / "a", "--train", _write(tmp_path / "a.parquet", ROWS))
    _prepare(spec, tmp_path / "b", "--train", _write(tmp_path / "b.parquet", listed))
    assert _read(tmp_path / "a", "train") == _read(tmp_path / "b", "train")


def test_shards_roll_and_splits_come_from_files(tmp_path, spec):
    log = _write(tmp_path / "log.parquet", ROWS)
    held = _write(tmp_path / "held.csv", {k: v[:4] for k, v in ROWS.items()})
    again = _write(tmp_path / "again.parquet", {k: v[:4] for k, v in ROWS.items()})
    out = tmp_path / "p"
    assert _prepare(spec, out, "--train", log, "--valid", held, "--test", again,
                    "--shard-rows", 3) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["train"]["shards"] == [
        f"train/part-0000{i}.parquet" for i in range(4)]
    sizes = [pq.read_metadata(out / s).num_rows for s in manifest["splits"]["train"]["shards"]]
    assert sizes == [3, 3, 3, 1]
    assert _read(out, "valid") == _read(out, "test") and manifest["splits"]["valid"]["rows"] == 4
    assert _prepare(spec, out, "--train", log, "--valid", held) == 0  # replaces it
    assert "test" not in json.loads((out / "manifest.json").read_text())["splits"]


def test_the_hash_split_is_deterministic_and_seeded():
    rows = np.arange(100_000)
    first = hash_split(rows, 0, 7, (0.8, 0.1, 0.1))
    assert np.array_equal(first, hash_split(rows, 0, 7, (0.8, 0.1, 0.1)))
    assert not np.array_equal(first, hash_split(rows, 0, 8, (0.8, 0.1, 0.1)))
    assert not np.array_equal(first, hash_split(rows, 1, 7, (0.8, 0.1, 0.1)))
    shares = np.bincount(first, minlength=3) / len(rows)
    assert np.allclose(shares, (0.8, 0.1, 0.1), atol=0.01)
    assert np.array_equal(first[500:600], hash_split(rows[500:600], 0, 7, (0.8, 0.1, 0.1)))


# --- bad data: one coded diagnostic each, naming the file, the column and the row -------------


def _error(capsys, spec, tmp_path, columns, *args, suffix=".csv") -> str:
    log = _write(tmp_path / f"bad{suffix}", columns)
    out = tmp_path / "out"
    assert _prepare(spec, out, "--train", log, *args) == 2
    assert not out.exists() and not [p for p in tmp_path.iterdir() if "tmp-" in p.name]
    return capsys.readouterr().err


def test_a_missing_column_is_named_with_the_closest_one(capsys, spec, tmp_path):
    err = _error(capsys, spec, tmp_path, {("clicks" if k == "click" else k): v
                                          for k, v in ROWS.items()})
    assert "error[DW611]" in err and "has no column 'click' (read by output 'ctr')" in err
    assert "did you mean 'clicks'" in err and "bad.csv" in err


def test_a_value_that_is_not_a_number(capsys, spec, tmp_path):
    err = _error(capsys, spec, tmp_path, dict(ROWS, price=["1.5"] * 7 + ["abc", "2", "3"]))
    assert "error[DW612]" in err and "row 7, column 'price'" in err and "'abc'" in err
    assert "bad.csv" in err


def test_a_label_outside_its_loss(capsys, spec, tmp_path):
    err = _error(capsys, spec, tmp_path, dict(ROWS, click=[0.0] * 8 + [2.0, 1.0]))
    assert "error[DW613]" in err and "row 8, column 'click'" in err and "not in [0, 1]" in err
    err = _error(capsys, spec, tmp_path, dict(ROWS, click=[0.0] * 4 + [None] + [1.0] * 5))
    assert "error[DW613]" in err and "row 4" in err and "missing" in err


def test_a_list_where_one_value_is_expected(capsys, spec, tmp_path):
    err = _error(capsys, spec, tmp_path, dict(ROWS, uid=[[u] for u in ROWS["uid"]]),
                 suffix=".parquet")
    assert "error[DW614]" in err and "row 0, column 'uid'" in err
    assert "feature 'user_id'" in err


def test_a_float_id_and_an_infinite_numeric(capsys, spec, tmp_path):
    err = _error(capsys, spec, tmp_path, dict(ROWS, uid=[1.0] * 5 + [1.5] * 5),
                 suffix=".parquet")
    assert "error[DW617]" in err and "row 5, column 'uid'" in err
    err = _error(capsys, spec, tmp_path, dict(ROWS, price=[1.0] * 9 + [float("inf")]),
                 suffix=".parquet")
    assert "error[DW616]" in err and "row 9, column 'price'" in err


@pytest.mark.parametrize("split", ["80/10", "80/30/10", "a/b/c", "0/50/50", "80"])
def test_a_bad_split(capsys, spec, tmp_path, split):
    err = _error(capsys, spec, tmp_path, ROWS, "--split", "80/10" if split == "80/10" else split,
                 *(("--valid", tmp_path / "bad.csv") if split == "80/10" else ()))
    assert "error[DW615]" in err


def test_unreadable_logs(capsys, spec, tmp_path):
    out = tmp_path / "out"
    assert _prepare(spec, out, "--train", tmp_path / "missing.csv") == 2
    assert "error[DW610]" in capsys.readouterr().err
    fake = tmp_path / "fake.parquet"
    fake.write_text("uid,item_id\n1,2\n")
    assert _prepare(spec, out, "--train", fake) == 2
    err = capsys.readouterr().err
    assert "error[DW610]" in err and "not a readable parquet file" in err
    assert _prepare(spec, out, "--train", tmp_path / "log.json") == 2
    assert "--format" in capsys.readouterr().err
    (tmp_path / "ragged.csv").write_text("uid,item_id,history,price,country,page,click\n"
                                         "u1,i1,,1,US,feed,1\nu2,i2\n")
    assert _prepare(spec, out, "--train", tmp_path / "ragged.csv") == 2
    assert "error[DW610]" in capsys.readouterr().err
    assert not out.exists()


def test_a_log_with_two_columns_of_one_name(capsys, spec, tmp_path):
    """Which 'price' the spec means is ambiguous: DW610 (the first one was taken silently)."""
    log = tmp_path / "dup.csv"
    log.write_text("uid,item_id,history,price,country,page,click,price\n"
                   "u1,i1,,1,US,feed,1,5\n")
    assert _prepare(spec, tmp_path / "out", "--train", log) == 2
    err = capsys.readouterr().err
    assert "error[DW610]" in err and "has more than one column named 'price' (read by " in err
    assert not (tmp_path / "out").exists()


def test_a_repeated_column_the_spec_does_not_read_is_no_error(tmp_path, spec):
    log = _write(tmp_path / "extra.csv", ROWS)
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0] + ",note,note"] + [row + ",a,b" for row in lines[1:]]) + "\n")
    plain = _write(tmp_path / "plain.csv", ROWS)
    for name, path in (("out", log), ("plain-out", plain)):  # --split-by order counts rows
        assert _prepare(spec, tmp_path / name, "--train", path, "--split-by", "order") == 0
    for split in ("train", "valid", "test"):
        assert _read(tmp_path / "out", split) == _read(tmp_path / "plain-out", split)


def test_a_csv_log_that_is_not_utf8_says_how_to_re_encode_it(capsys, spec, tmp_path):
    log = tmp_path / "latin.csv"
    log.write_bytes("uid,item_id,history,price,country,page,click\n"
                    "u1,i1,,1,US,feed,1\nu2,i2,,1,CAf\u00e9,feed,0\n".encode("latin-1"))
    assert _prepare(spec, tmp_path / "out", "--train", log) == 2
    err = capsys.readouterr().err
    assert "error[DW610]" in err and "invalid UTF8 data" in err
    assert "help: CSV logs are read as UTF-8: re-encode the file" in err


def test_a_log_that_is_a_pipe_is_refused_not_waited_on(capsys, spec, tmp_path):
    """A FIFO would be opened twice (header, then rows) and block: refused up front."""
    fifo = tmp_path / "log.csv"
    os.mkfifo(fifo)
    assert _prepare(spec, tmp_path / "out", "--train", fifo) == 2
    err = capsys.readouterr().err
    assert "error[DW610]" in err and "it is not a regular file (a pipe or a device)" in err


def test_an_out_that_is_not_a_prepared_directory_is_kept(capsys, spec, tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _prepare(spec, out, "--train", _write(tmp_path / "log.csv", ROWS)) == 2
    assert "error[DW619]" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_nulls_in_id_columns_are_ordinary(tmp_path, spec):
    columns = dict(ROWS, country=[None] * 10, uid=[None] * 10)
    assert _prepare(spec, tmp_path / "p", "--train", _write(tmp_path / "n.csv", columns)) == 0
    train = _read(tmp_path / "p", "train")
    assert set(train["country"]) == {0} and set(train["user_id"]) == {0}
    cells = json.loads((tmp_path / "p" / "manifest.json").read_text())["splits"]["train"]["cells"]
    assert all(name.startswith("country=<unknown>, page=") for name in cells)


# --- review fixes: list types, nulls, huge floats, files given twice, leftovers, CRLF specs ------


def test_fixed_size_list_and_null_items_read_like_joined_strings(tmp_path, spec):
    """A fixed_size_list history (the type prepare itself writes) reads like the joined strings;
    a null item inside a list is skipped like an empty item; an all-null column (Arrow's null
    type) is all empty sequences."""
    pairs = [["i2", "i3"], ["i1", "i1"], ["i3", "i2"], None, ["i2", "i2"], ["i1", "i3"],
             ["i4", "i1"], ["i1", "i2"], ["i2", "i2"], ["i3", "i3"]]
    fixed = dict(ROWS, history=pa.array(pairs, pa.list_(pa.string(), 2)))
    joined = dict(ROWS, history=[None if p is None else "^".join(p) for p in pairs])
    assert _prepare(spec, tmp_path / "a", "--train", _write(tmp_path / "a.parquet", fixed)) == 0
    assert _prepare(spec, tmp_path / "b", "--train", _write(tmp_path / "b.parquet", joined)) == 0
    assert _read(tmp_path / "a", "train") == _read(tmp_path / "b", "train")
    holes = dict(ROWS, history=[None if h is None else [None, *h.split("^"), None]
                                for h in ROWS["history"]])
    assert _prepare(spec, tmp_path / "c", "--train", _write(tmp_path / "c.parquet", holes)) == 0
    assert _prepare(spec, tmp_path / "d", "--train", _write(tmp_path / "d.parquet", ROWS)) == 0
    assert _read(tmp_path / "c", "train") == _read(tmp_path / "d", "train")
    empty = dict(ROWS, history=pa.nulls(10))
    assert _prepare(spec, tmp_path / "e", "--train", _write(tmp_path / "e.parquet", empty)) == 0
    train = _read(tmp_path / "e", "train")
    rows = len(train["history"])
    assert rows and train["history_len"] == [0] * rows and train["history"] == [[0, 0, 0]] * rows


def test_a_float_id_beyond_2_53_is_dw617(capsys, spec, tmp_path):
    ids = [1.0, 2.0, 3e20, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    err = _error(capsys, spec, tmp_path, dict(ROWS, uid=ids), suffix=".parquet")
    assert "error[DW617]" in err and "row 2, column 'uid'" in err and "3e+20 is too large" in err
    ok = dict(ROWS, uid=[float(2**53 - 1)] + [1.0] * 9)
    assert _prepare(spec, tmp_path / "ok", "--train", _write(tmp_path / "ok.parquet", ok)) == 0


def test_a_log_given_twice_is_dw622(capsys, spec, tmp_path):
    log = _write(tmp_path / "log.csv", ROWS)
    other = _write(tmp_path / "other.csv", ROWS)
    (tmp_path / "sub").mkdir()
    for args in (["--train", log, log], ["--train", log, "--valid", other, "--test", log],
                 ["--train", log, "--valid", tmp_path / "sub" / ".." / "log.csv"]):
        assert _prepare(spec, tmp_path / "out", *args) == 2
        err = capsys.readouterr().err
        assert "error[DW622]" in err and "is given twice" in err, args
        assert not (tmp_path / "out").exists()


def test_a_failed_prepare_leaves_no_folders(capsys, spec, tmp_path):
    log = _write(tmp_path / "bad.csv", dict(ROWS, click=[2.0] + ROWS["click"][1:]))
    assert _prepare(spec, tmp_path / "deep3" / "a" / "out", "--train", log) == 2
    assert "error[DW613]" in capsys.readouterr().err
    assert not (tmp_path / "deep3").exists()
    (tmp_path / "kept").mkdir()
    assert _prepare(spec, tmp_path / "kept" / "a" / "out", "--train", log) == 2
    assert (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())


def test_a_crlf_spec_is_copied_and_digested_byte_for_byte(capsys, tmp_path):
    """spec.dw is the spec's bytes; spec_sha256 is their sha256, so training and compiling the
    same CRLF file warn of no other spec (DW642, DW621)."""
    import hashlib

    spec = tmp_path / "crlf.dw"
    spec.write_bytes(SPEC.replace("\n", "\r\n").encode())
    out = tmp_path / "p"
    assert _prepare(spec, out, "--train", _write(tmp_path / "log.parquet", ROWS)) == 0
    assert (out / "spec.dw").read_bytes() == spec.read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec_sha256"] == hashlib.sha256(spec.read_bytes()).hexdigest()
    capsys.readouterr()
    assert main(["train", str(spec), "--data", str(out), "--out", str(tmp_path / "run"),
                 "--epochs", "1", "--batch-size", "4"]) == 0
    assert "DW642" not in capsys.readouterr().err
    assert main(["compile", str(spec), "-o", str(tmp_path / "art"), "--vocab", str(out)]) == 0
    assert "DW621" not in capsys.readouterr().err
    lf = tmp_path / "lf.dw"
    lf.write_text(SPEC)
    assert main(["train", str(lf), "--data", str(out), "--out", str(tmp_path / "run2"),
                 "--epochs", "1", "--batch-size", "4"]) == 0
    assert "warning[DW642]" in capsys.readouterr().err  # other bytes: another version
