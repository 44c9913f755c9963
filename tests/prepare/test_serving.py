"""Raw values served from an artifact compiled with `--vocab`: the same outputs as the ids
`dwc data prepare` wrote, since both go through dwc.encoding; and `--vocab`'s checks."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_prepare import ROWS, SPEC, _read, _write  # tests/prepare is on sys.path (rootdir)

from dwc.cli import main


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    (root / "spec.dw").write_text(SPEC)
    log = _write(root / "log.parquet", ROWS)
    assert main(["data", "prepare", str(root / "spec.dw"), "--train", str(log), "--split",
                 "60/40", "--split-by", "order", "--out", str(root / "prepared")]) == 0
    return root


@pytest.mark.slow
def test_raw_values_give_the_outputs_of_the_prepared_ids(prepared):
    pytest.importorskip("onnxruntime")
    from dwc.runtime import ArtifactError, load

    artifact = prepared / "onnx"
    assert main(["compile", str(prepared / "spec.dw"), "--target", "onnx", "-o", str(artifact),
                 "--vocab", str(prepared / "prepared")]) == 0
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["vocabularies"]["history"] == "vocab/item_id.json"
    assert manifest["raw_inputs"]["user_id"] == {"kind": "categorical", "column": "uid",
                                                 "vocabulary": "vocab/user_id.json"}
    assert (artifact / "vocab" / "item_id.json").read_text() == \
        (prepared / "prepared" / "vocab" / "item_id.json").read_text()
    model = load(artifact)
    for split, rows in (("train", slice(0, 6)), ("valid", slice(6, 10))):
        ids = _read(prepared / "prepared", split)
        arrays = {name: np.asarray(value, dtype=np.float32 if name in ("price", "ctr")
                                   else np.int64) for name, value in ids.items()}
        arrays["price"] = arrays["price"][:, None]
        expected = model(arrays)["ctr"]
        raw = {"user_id": ROWS["uid"][rows], "item_id": np.array(ROWS["item_id"][rows]),
               "history": np.array(ROWS["history"][rows], dtype=object),
               "price": ROWS["price"][rows], "country": ROWS["country"][rows],
               "page": pa.array(ROWS["page"][rows])}
        np.testing.assert_array_equal(model(raw)["ctr"], expected)
        lists = dict(raw, history=[[t for t in h.split("^") if t] if h else None
                                   for h in ROWS["history"][rows]])
        np.testing.assert_array_equal(model(lists)["ctr"], expected)
    encoded = model.encode({"user_id": [1, 2], "country": ["US", "XX"]}, raw=True)
    assert encoded["user_id"].tolist() == [0, 0] and encoded["country"].tolist() == [1, 0]
    with pytest.raises(ArtifactError, match="'user_id' row 0: a list"):
        model.encode({"user_id": [["u1"], ["u2"]]})
    with pytest.raises(ArtifactError, match="'price' row 1: 'x' is not a number"):
        model.encode({"price": ["1", "x"]})


def test_vocab_must_fit_the_spec(prepared, capsys):
    other = prepared / "other.dw"
    other.write_text(SPEC.replace("vocab = 50", "vocab = 60"))
    assert main(["compile", str(other), "-o", str(prepared / "t"), "--vocab",
                 str(prepared / "prepared")]) == 2
    err = capsys.readouterr().err
    assert "error[DW620]" in err and "does not fit feature 'user_id'" in err
    assert not (prepared / "t").exists()
    assert main(["compile", str(other), "-o", str(prepared / "t"), "--vocab",
                 str(prepared / "nowhere")]) == 2
    assert "error[DW620]" in capsys.readouterr().err
    renamed = prepared / "renamed.dw"
    renamed.write_text(SPEC.replace("model raw_ctr", "model raw_ctr2"))
    assert main(["compile", str(renamed), "-o", str(prepared / "t"), "--vocab",
                 str(prepared / "prepared" / "vocab")]) == 0  # the vocab/ folder alone
    assert "DW621" not in capsys.readouterr().err
    assert main(["compile", str(renamed), "-o", str(prepared / "t2"), "--vocab",
                 str(prepared / "prepared")]) == 0
    assert "warning[DW621]" in capsys.readouterr().err
    files = sorted(p.name for p in (prepared / "t" / "vocab").iterdir())
    assert files == ["country.json", "item_id.json", "page.json", "user_id.json"]


def test_movielens_reads_the_wheel(tmp_path):
    """A stand-in wheel with the members of recbole's (its data is not ours to commit)."""
    from dwc.movielens import MEMBER, read_ratings

    wheel = tmp_path / "recbole.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(MEMBER.format("inter"), "user_id:token\titem_id:token\trating:float\t"
                         "timestamp:float\n1\t10\t5\t300\n1\t11\t2\t100\n2\t10\t4\t200\n"
                         "1\t12\t4\t200\n")
        archive.writestr(MEMBER.format("user"), "user_id:token\tage:token\tgender:token\t"
                         "occupation:token\tzip_code:token\n1\t24\tM\tstudent\t1\n"
                         "2\t51\tF\twriter\t2\n")
        archive.writestr(MEMBER.format("item"), "item_id:token\tmovie_title:token_seq\t"
                         "release_year:token\tclass:token_seq\n10\tA\t1995\tComedy Drama\n"
                         "11\tB\t\tAction\n12\tC\t1990\tDrama\n")
    table = read_ratings(wheel, history=1).to_pydict()
    assert table["timestamp"] == [100, 200, 200, 300]  # time order, then user
    assert table["user_id"] == ["1", "1", "2", "1"] and table["item_id"] == ["11", "12", "10",
                                                                             "10"]
    assert table["history"] == ["", "11", "", "12"]  # the last `history` previous movies
    assert table["click"] == [0.0, 1.0, 1.0, 1.0] and table["age_group"][2] == "50+"
    assert table["genre"][2] == "Comedy" and table["genres"][2] == "Comedy^Drama"
    assert table["year"][0] is None and table["gender"] == ["M", "M", "F", "M"]
    path = tmp_path / "ml.parquet"
    pq.write_table(pa.table(table), path)
    assert pq.read_metadata(path).num_rows == 4


RAW_SPEC = """\
model raw_apg

feature user_id  : categorical(vocab = 2_001, dim = 8)
feature item_id  : categorical(vocab = 1_001, dim = 8)
feature category : categorical(vocab = 21, dim = 4)
feature price    : numeric(norm = log1p, fill = 20.0)
feature history  : sequence(item_id, max_len = 10)
feature domain   : categorical(vocab = 5, dim = 4) scenario

scenarios domain

condition z = concat(domain)

x = concat(user_id, item_id, category, price, history, domain)
h = mlp(x, [32, 16]) dynamic(by = z) apg(rank = [8, 4])
output ctr = sigmoid(linear(h, 1)) loss = bce column = "click"
"""


def _raw_log(rows: int) -> dict[str, list]:
    """dwc.data's synthetic rows as a raw log: string ids, scenario names, joined histories,
    float64 prices with gaps."""
    from dwc.data import make_dataset

    data = make_dataset(rows, seed=0)
    names = np.array(["web", "app", "mini", "tv"])
    price = data["price"][:, 0].astype(np.float64)
    price[::37] = np.nan
    return {
        "user_id": [f"u{u}" for u in data["user_id"]],
        "item_id": [f"i{i}" for i in data["item_id"]],
        "category": data["category"].tolist(),
        "price": price.tolist(),
        "history": ["^".join(f"i{x}" for x in h[:n]) for h, n in
                    zip(data["history"], data["history_len"], strict=True)],
        "domain": names[data["domain"]].tolist(),
        "click": data["ctr"][:, 0].astype(np.float64).tolist(),
    }


@pytest.mark.slow
def test_raw_serving_of_a_trained_model_reproduces_the_test_auc(tmp_path):
    """Prepare a raw log, train on the prepared directory, export best.pt with --vocab, serve
    the test split's raw rows: the AUC dwc train measured on the test split."""
    pytest.importorskip("onnxruntime")
    from dwc.metrics import auc
    from dwc.runtime import load

    spec = tmp_path / "spec.dw"
    spec.write_text(RAW_SPEC)
    log = _raw_log(10_000)
    path = _write(tmp_path / "log.csv", log)
    prepared = tmp_path / "prepared"
    assert main(["data", "prepare", str(spec), "--train", str(path), "--split-by", "order",
                 "--out", str(prepared)]) == 0
    assert main(["train", str(spec), "--data", str(prepared), "--out", str(tmp_path / "run"),
                 "--epochs", "2", "--batch-size", "256"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert main(["compile", str(spec), "--target", "onnx", "-o", str(tmp_path / "onnx"),
                 "--weights", str(tmp_path / "run" / "best.pt"), "--vocab", str(prepared)]) == 0
    model = load(tmp_path / "onnx")
    test_rows = json.loads((prepared / "manifest.json").read_text())["splits"]["test"]["rows"]
    raw = {name: values[-test_rows:] for name, values in log.items() if name != "click"}
    scores = model(raw, raw=True)["ctr"]
    served = auc(np.asarray(log["click"][-test_rows:]), scores)
    assert served == pytest.approx(metrics["test"]["outputs"]["ctr"]["auc"], abs=1e-4)
    assert served > 0.53  # it learned something (a constant model scores 0.5)


def _raw_artifact(prepared, tmp_path):
    """An artifact directory with the vocabularies and raw_inputs of `dwc compile --vocab`
    (no model: only `Artifact.encode`, the raw-value path, is exercised)."""
    from dwc import vocab
    from dwc.driver import check_data_source, load_source
    from dwc.runtime import Artifact

    source = load_source(prepared / "spec.dw")
    _, data = check_data_source(source)
    files, _ = vocab.load_vocabularies(str(prepared / "prepared"), data, source)
    (tmp_path / "art" / "vocab").mkdir(parents=True)
    for name, text in files.items():
        (tmp_path / "art" / "vocab" / f"{name}.json").write_text(text)
    price = {"name": "price", "dtype": "float32", "shape": ["batch", 1], "role": "numeric",
             "used_by_artifact": True}
    manifest = {"signature": {"inputs": [price], "outputs": [], "max_batch": 8},
                "target": {"kind": "onnx"}, "raw_inputs": vocab.raw_inputs(data)}
    (tmp_path / "art" / "manifest.json").write_text(json.dumps(manifest))
    return Artifact(tmp_path / "art")


def test_2d_arrays_serve_as_sequences(prepared, tmp_path):
    """[N, T] string, object and integer arrays are sequences of T items, like lists."""
    model = _raw_artifact(prepared, tmp_path)
    lists = model.encode({"history": [["i1", "i2"], ["i3", "i9"]]})
    assert lists["history"].tolist() == [[1, 2, 0], [3, 0, 0]]
    assert lists["history_len"].tolist() == [2, 2]
    for array in (np.array([["i1", "i2"], ["i3", "i9"]]),
                  np.array([["i1", "i2"], ["i3", "i9"]], dtype=object)):
        got = model.encode({"history": array})
        assert got["history"].tolist() == lists["history"].tolist()
        assert got["history_len"].tolist() == [2, 2]
    ints = model.encode({"history": np.array([[1, 2], [3, 4]])}, raw=True)
    assert ints["history_len"].tolist() == [2, 2]  # int tokens: unknown here, still positions
    assert ints["history"].tolist() == \
        model.encode({"history": [[1, 2], [3, 4]]}, raw=True)["history"].tolist()


def test_bad_raw_batches_are_artifact_errors(prepared, tmp_path):
    import torch

    from dwc.runtime import ArtifactError

    model = _raw_artifact(prepared, tmp_path)
    with pytest.raises(ArtifactError, match="'price' is a torch.bfloat16 tensor"):
        model.encode({"price": torch.ones(2, 1, dtype=torch.bfloat16)})
    with pytest.raises(ArtifactError, match="'price' is a torch.bfloat16 tensor"):
        model._arrays({"price": torch.ones(2, 1, dtype=torch.bfloat16)})
    with pytest.raises(ArtifactError, match="got set .its order is undefined"):
        model.encode({"user_id": {"u1", "u2"}})
    with pytest.raises(ArtifactError, match="'user_id' row 1: 3e\\+20 is too large"):
        model.encode({"user_id": np.array([1.0, 3e20])}, raw=True)
    arrays, batch = model._arrays(model.encode({"price": torch.ones(2, 1)}))
    assert arrays["price"].dtype == np.float32 and batch == 2  # float32 tensors still serve
