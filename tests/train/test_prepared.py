"""`dwc train` on a prepared directory (docs/data.md, "Training on a prepared directory"): the
reader's checks and batches, the DDP row ranges, named per-scenario tables, resume, schedules and
the progress bar. The directories are written from the contract by tests/train/prepared_dir.py."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from dwc.backends.export import load_generated, load_weights
from dwc.cli import main
from dwc.data import make_dataset
from dwc.driver import check_source, compile_source
from dwc.prepared import ParquetSplit, epoch_pieces, open_training_data
from dwc.source import SourceFile
from dwc.train import TrainConfig, lr_factor
from tests.conftest import ROOT
from tests.train.columns import contract_columns
from tests.train.prepared_dir import arrow_column, write_prepared
from tests.train.test_data_contract import MULTI

SPEC = Path(__file__).parent / "tiny.dw"  # a small model of the columns of `dwc data generate`
DOMAINS = ["feed", "search", "video"]  # id 0 is <unknown>; ids 1..3 are these


def _graph(path):
    return check_source(SourceFile(str(path), path.read_text()))


@pytest.fixture(scope="module")
def apg_splits():
    return {split: make_dataset(rows, 0, i)
            for i, (split, rows) in enumerate((("train", 1200), ("valid", 400), ("test", 300)))}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, apg_splits):
    """The synthetic data as a prepared directory: 3 train shards, 2 row groups per shard."""
    root = tmp_path_factory.mktemp("prepared") / "tiny"
    return write_prepared(root, SPEC, _graph(SPEC), apg_splits, shard_rows=500,
                          row_group_rows=250, tokens={"domain": DOMAINS})


def _train(data, out, *extra) -> int:
    return main(["train", str(SPEC), "--data", str(data), "--out", str(out), "--batch-size", "128",
                 "--patience", "5", *extra])


def _copy(prepared, tmp_path):
    return shutil.copytree(prepared, tmp_path / "copy")


# --- the DDP rule and the reader ------------------------------------------------------------------


@pytest.mark.parametrize("shards", [[5, 3, 7], [1], [4, 4], [10, 10, 10, 1], [2, 9]])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_ranks_read_disjoint_equal_row_ranges(shards, world):
    """Every rank gets N // world rows, no row twice, each piece inside its shard; the N mod world
    rows that sit out are other ones in another epoch (when there is more than one shard)."""
    rows = sum(shards)
    left_out = []
    for epoch in (1, 2, 3):
        ranks = epoch_pieces(shards, world, seed=0, epoch=epoch)
        assert ranks == epoch_pieces(shards, world, seed=0, epoch=epoch)  # the same on every rank
        assert len(ranks) == world
        taken = set()
        for pieces in ranks:
            assert sum(p.rows for p in pieces) == rows // world
            for p in pieces:
                assert 0 <= p.start < p.stop <= shards[p.shard]
                span = {(p.shard, r) for r in range(p.start, p.stop)}
                assert not span & taken
                taken |= span
        assert len(taken) == rows - rows % world
        left_out.append(frozenset({(s, r) for s, n in enumerate(shards) for r in range(n)} - taken))
    if rows % world and len(shards) > 2:
        assert len(set(left_out)) > 1


@pytest.mark.parametrize("rows", [10, 11, 7])
@pytest.mark.parametrize("world", [2, 3, 4])
def test_with_one_shard_no_row_sits_out_every_epoch(rows, world):
    """One shard keeps its order every epoch; the cut moves by N mod W rows, so over W epochs
    every row is read (each sits out at most ceil(W (N mod W) / N) of them), with equal,
    disjoint ranges per rank every epoch."""
    reads = np.zeros(rows, dtype=np.int64)
    for epoch in range(1, world + 1):
        taken = []
        for pieces in epoch_pieces([rows], world, seed=3, epoch=epoch):
            assert sum(p.rows for p in pieces) == rows // world
            taken += [r for p in pieces for r in range(p.start, p.stop)]
        assert len(taken) == len(set(taken)) == rows - rows % world
        reads[taken] += 1
    assert reads.min() >= 1
    assert reads.min() == world - math.ceil(world * (rows % world) / rows)


def test_an_epoch_reads_every_row_once_shuffled_across_shards(prepared, apg_splits):
    """One process reads each training row exactly once per epoch, in another order every epoch,
    mixing rows of different shards within a batch; evaluation reads them in file order."""
    graph = _graph(SPEC)
    split = open_training_data(str(prepared), graph).splits["train"]
    assert isinstance(split, ParquetSplit) and split.shard_rows == [500, 500, 200]
    key = apg_splits["train"]["user_id"] * 10_000 + apg_splits["train"]["item_id"]
    orders = []
    for epoch in (1, 2):
        plan = split.epoch(epoch, seed=0, rank=0, world=1, batch_size=100, shuffle_buffer=300)
        batches = list(plan.batches)
        assert plan.steps == len(batches) == 12 and plan.rows == 1200
        seen = np.concatenate([b["user_id"].numpy() * 10_000 + b["item_id"].numpy()
                               for b, _ in batches])
        assert sorted(seen.tolist()) == sorted(key.tolist())
        orders.append(seen)
        assert batches[0][0]["history"].shape == (100, 10) and batches[0][0]["price"].dtype == \
            torch.float32 and batches[0][1]["ctr"].shape == (100, 1)
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[0], key)
    in_order = np.concatenate([b["user_id"].numpy() for b, _ in split.batches(333)])
    np.testing.assert_array_equal(in_order, apg_splits["train"]["user_id"])


def test_two_ranks_read_disjoint_rows_with_equal_steps(prepared):
    split = open_training_data(str(prepared), _graph(SPEC)).splits["train"]
    plans = [split.epoch(1, 0, rank, 2, 128, 200) for rank in (0, 1)]
    assert plans[0].steps == plans[1].steps == math.ceil(600 / 128)
    rows = [np.concatenate([b["user_id"].numpy() * 10_000 + b["item_id"].numpy()
                            for b, _ in plan.batches]) for plan in plans]
    assert len(rows[0]) == len(rows[1]) == 600
    assert not set(rows[0].tolist()) & set(rows[1].tolist())


# --- training -------------------------------------------------------------------------------------


def test_training_on_a_prepared_directory_names_the_scenarios(prepared, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(prepared, out, "--epochs", "2") == 0
    err = capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data_kind"] == "prepared" and metrics["scenario"]["names"] == "vocabulary"
    assert metrics["rows"] == {"train": 1200, "valid": 400, "test": 300}
    cells = metrics["history"][-1]["valid"]["outputs"]["ctr"]["scenarios"]
    assert {c["name"] for c in cells.values()} <= {"domain=<unknown>", *(f"domain={d}" for d in
                                                                         DOMAINS)}
    assert cells["1"]["name"] == "domain=feed"
    assert sum(c["rows"] for c in cells.values()) == 400
    for line in ("valid, epoch 1", "valid, epoch 2", "test, best.pt (epoch"):
        assert line in err
    table = err[err.index("valid, epoch 2"):].splitlines()
    feed = next(line for line in table if line.startswith("domain=feed"))
    assert f"{cells['1']['rows']:,}" in feed and f"{cells['1']['auc']:.4f}" in feed
    assert metrics["test"]["outputs"]["ctr"]["rows"] == 300
    assert "\r" not in err  # stderr is not a terminal here: no progress bar
    assert len([line for line in err.splitlines() if line.startswith("epoch ")]) == 2


def test_the_npz_table_names_cells_by_their_ids(tmp_path, capsys, apg_splits):
    path = tmp_path / "d.npz"
    np.savez(path, **{f"{s}/{k}": v for s, cols in apg_splits.items() for k, v in cols.items()})
    assert _train(path, tmp_path / "run", "--epochs", "1") == 0
    err = capsys.readouterr().err
    assert "\ndomain=1 " in err and "domain=feed" not in err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["scenario"]["names"] == "ids" and metrics["data_kind"] == "npz"


def test_two_scenario_features_and_every_loss_kind(tmp_path, capsys):
    """`country=US, page=feed`: cells named from two vocabularies; the table has a column per
    output metric (auc, logloss, mse, accuracy)."""
    spec = tmp_path / "two_heads.dw"
    spec.write_text(MULTI)
    graph = _graph(spec)
    splits = {s: contract_columns(graph, 200, seed) for seed, s in enumerate(("train", "valid"))}
    root = write_prepared(tmp_path / "prep", spec, graph, splits,
                          tokens={"country": ["US", "DE"], "page": ["feed"]})
    assert main(["train", str(spec), "--data", str(root), "--out", str(tmp_path / "run"),
                 "--epochs", "1", "--batch-size", "64"]) == 0
    err = capsys.readouterr().err
    assert "country=US, page=feed" in err and "country=<unknown>, page=<unknown>" in err
    header = next(line for line in err.splitlines() if line.startswith("valid, epoch 1"))
    for column in ("click auc", "like logloss", "dwell mse", "topic accuracy"):
        assert column in header
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    names = {c["name"] for c in metrics["history"][0]["valid"]["outputs"]["dwell"]["scenarios"]
             .values()}
    assert "country=DE, page=feed" in names and metrics["test"] is None


def test_two_stage_trains_on_a_prepared_directory(prepared, tmp_path):
    star = ROOT / "experiments" / "star.dw"
    root = tmp_path / "star"
    shutil.copytree(prepared, root)  # star reads the same columns as apg
    assert main(["train", str(star), "--data", str(root), "--out", str(tmp_path / "run"),
                 "--epochs", "2", "--two-stage", "1", "--batch-size", "600"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [e["stage"] for e in metrics["history"]] == [1, 2]


def test_resume_between_the_two_stages(prepared, tmp_path):
    """Stopped after stage 1, resumed: stage 2 starts from the best stage-1 weights as in an
    uninterrupted run, and ends with the same weights."""
    star = ROOT / "experiments" / "star.dw"
    argv = ["train", str(star), "--data", str(prepared), "--epochs", "2", "--two-stage", "1",
            "--batch-size", "600", "--patience", "5"]
    assert main([*argv, "--out", str(tmp_path / "straight")]) == 0
    assert main([*argv, "--out", str(tmp_path / "resumed"), "--max-steps", "2"]) == 0
    assert main([*argv, "--out", str(tmp_path / "resumed"), "--resume"]) == 0
    _same(_weights(tmp_path / "straight"), _weights(tmp_path / "resumed"))
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert [e["stage"] for e in metrics["history"]] == [1, 2]


def test_the_progress_bar_shows_on_a_terminal_only(prepared, tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert _train(prepared, tmp_path / "run", "--epochs", "1") == 0
    text = terminal.getvalue()
    assert "\r" in text and "epoch 1:" in text and "rows/s" in text and "loss=" in text


# --- resume and schedules -------------------------------------------------------------------------


def _weights(out):
    return torch.load(out / "last.pt", weights_only=True)["model"]


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("schedule", [["--lr-schedule", "constant"],
                                      ["--lr-schedule", "cosine", "--warmup-steps", "3"]])
def test_resume_continues_exactly(prepared, tmp_path, schedule, capsys):
    """Stopped after 2 of 3 epochs (--max-steps), then resumed: the weights, the optimizer and
    the metrics are those of 3 epochs straight, bit for bit."""
    steps = math.ceil(1200 / 128)
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert _train(prepared, straight, "--epochs", "3", *schedule) == 0
    assert _train(prepared, stopped, "--epochs", "3", "--max-steps", str(2 * steps),
                  *schedule) == 0
    assert torch.load(stopped / "last.pt", weights_only=True)["progress"]["epoch"] == 2
    assert _train(prepared, stopped, "--epochs", "3", "--resume", *schedule) == 0
    assert "resuming after epoch 2" in capsys.readouterr().err
    _same(_weights(straight), _weights(stopped))
    a = torch.load(straight / "last.pt", weights_only=True)["optimizer"]["state"]
    b = torch.load(stopped / "last.pt", weights_only=True)["optimizer"]["state"]
    for key in a:
        assert torch.equal(a[key]["exp_avg"], b[key]["exp_avg"])
    one, two = (json.loads((d / "metrics.json").read_text()) for d in (straight, stopped))
    assert [e["valid"]["metric"] for e in one["history"]] == \
        [e["valid"]["metric"] for e in two["history"]]
    assert two["resumed"] == [{"from": str(stopped), "after_epoch": 2}]
    assert one["test"] == two["test"]


def test_resume_from_another_directory_with_more_epochs(prepared, tmp_path):
    first, more, straight = tmp_path / "first", tmp_path / "more", tmp_path / "straight"
    assert _train(prepared, first, "--epochs", "1") == 0
    assert _train(prepared, more, "--epochs", "2", "--resume", str(first)) == 0
    assert _train(prepared, straight, "--epochs", "2") == 0
    _same(_weights(more), _weights(straight))
    assert (more / "best.pt").is_file()
    model_py = compile_source(SourceFile(str(SPEC), SPEC.read_text())).files["model.py"]
    model = load_generated(model_py, "resumed")(validate_inputs=False)
    load_weights(model, more / "last.pt")  # what `dwc compile --weights last.pt` does
    _same(model.state_dict(), _weights(straight))


def test_resume_problems_are_coded(prepared, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(prepared, tmp_path / "empty", "--epochs", "1", "--resume") == 2
    assert "DW647" in capsys.readouterr().err and not (tmp_path / "empty").exists()
    assert _train(prepared, out, "--epochs", "1", "--lr-schedule", "cosine") == 0
    capsys.readouterr()
    assert _train(prepared, out, "--epochs", "2", "--resume", "--lr", "0.01",
                  "--lr-schedule", "cosine") == 2
    err = capsys.readouterr().err
    assert "DW648" in err and "--lr 0.003 in the checkpoint, 0.01 now" in err
    assert "the cosine schedule's length is --epochs" in err
    star = ROOT / "experiments" / "star.dw"
    assert main(["train", str(star), "--data", str(prepared), "--out", str(out), "--batch-size",
                 "128", "--patience", "5", "--epochs", "2", "--resume",
                 "--lr-schedule", "cosine"]) == 2
    assert "the spec differs" in capsys.readouterr().err
    torch.save(torch.load(out / "best.pt", weights_only=True), tmp_path / "plain.pt")
    (tmp_path / "plain").mkdir()
    shutil.copy(tmp_path / "plain.pt", tmp_path / "plain" / "last.pt")
    assert _train(prepared, out, "--epochs", "2", "--resume", str(tmp_path / "plain")) == 2
    assert "is not a dwc training checkpoint" in capsys.readouterr().err


def test_a_corrupt_or_incomplete_checkpoint_is_dw647(prepared, tmp_path, capsys):
    """Junk, a checkpoint without its optimizer, one whose model does not fit: DW647 naming
    last.pt, no traceback, and no --out left behind by the failed run."""
    good = tmp_path / "good"
    assert _train(prepared, good, "--epochs", "1") == 0
    state = torch.load(good / "last.pt", weights_only=True)
    cases = {"junk": None, "no_optimizer": {k: v for k, v in state.items() if k != "optimizer"},
             "other_model": dict(state, model={"weight": torch.zeros(3)})}
    for name, broken in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        if broken is None:
            (folder / "last.pt").write_text("junk\n")
        else:
            torch.save(broken, folder / "last.pt")
        capsys.readouterr()
        out = tmp_path / f"{name}-out"
        assert _train(prepared, out, "--epochs", "2", "--resume", str(folder)) == 2, name
        err = capsys.readouterr().err
        assert "error[DW647]" in err and f"{name}/last.pt" in err, (name, err)
        assert "Traceback" not in err and "DW900" not in err, name
        assert not out.exists(), name
    assert "'optimizer' is missing" in _resume_err(prepared, tmp_path, "no_optimizer", capsys)
    assert "does not fit this model" in _resume_err(prepared, tmp_path, "other_model", capsys)


def _resume_err(prepared, tmp_path, name, capsys) -> str:
    _train(prepared, tmp_path / "again", "--epochs", "2", "--resume", str(tmp_path / name))
    return capsys.readouterr().err


def test_a_bad_shard_found_mid_epoch_leaves_no_out(prepared, tmp_path, capsys):
    """An id past the vocab in a shard without statistics is found while training reads it:
    DW646, and the --out this run created (still empty) is removed; one that existed stays."""
    root = _copy(prepared, tmp_path)
    shard = root / "train" / "part-00001.parquet"
    table = pq.read_table(shard)
    index = table.schema.get_field_index("item_id")
    ids = np.ones(table.num_rows, np.int64)
    ids[-1] = 5000  # item_id's vocab is 1,000
    pq.write_table(table.set_column(index, "item_id", pa.array(ids)), shard,
                   write_statistics=False)
    out = tmp_path / "a" / "run"
    assert _train(root, out, "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert "DW646" in err and "item_id id 5000" in err
    assert not (tmp_path / "a").exists()
    (tmp_path / "mine").mkdir()
    assert _train(root, tmp_path / "mine", "--epochs", "1") == 2
    assert (tmp_path / "mine").is_dir()


def test_lr_factor_follows_warmup_then_cosine_or_step():
    cosine = TrainConfig(epochs=2, lr_schedule="cosine", warmup_steps=4)
    factors = [lr_factor(cosine, step, 10, step // 10 + 1) for step in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    expected = [0.5 * (1 + math.cos(math.pi * k / 15)) for k in range(16)]
    assert factors[4:] == pytest.approx(expected)
    assert factors[-1] == pytest.approx(0.0, abs=1e-12)
    step = TrainConfig(epochs=6, lr_schedule="step", step_size=2, gamma=0.5)
    assert [lr_factor(step, e * 10, 10, e + 1) for e in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    # the epoch decides, not the global step: a resumed run whose epoch 1 was cut short by
    # --max-steps (3 of 10 steps) is in epoch 3 at global step 13, past step_size = 2 epochs
    assert lr_factor(step, 13, 10, 3) == 0.5
    assert lr_factor(TrainConfig(), 123, 10, 13) == 1.0


def test_the_learning_rate_in_metrics_follows_the_schedule(prepared, tmp_path):
    assert _train(prepared, tmp_path / "run", "--epochs", "2", "--lr", "0.01",
                  "--lr-schedule", "cosine", "--warmup-steps", "4") == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["config"]["lr_schedule"] == "cosine" and metrics["config"]["warmup_steps"] == 4
    first, second = (e["lr"] for e in metrics["history"])
    steps = math.ceil(1200 / 128)
    assert first["first"] == pytest.approx(0.01 / 4)
    k = steps - 1 - 4  # the first epoch's last step, counted from the end of warm-up
    assert first["last"] == pytest.approx(0.005 * (1 + math.cos(math.pi * k / (2 * steps - 5))))
    assert second["last"] == pytest.approx(0.0, abs=1e-12)
    assert second["first"] < first["last"]


@pytest.mark.parametrize("flags, message", [
    (["--lr-schedule", "step"], "needs --step-size"),
    (["--lr-schedule", "cosine", "--gamma", "0.5"], "--gamma applies to --lr-schedule step"),
    (["--lr-schedule", "step", "--step-size", "1", "--gamma", "2"], "is not in (0, 1]"),
    (["--warmup-steps", "-1"], "--warmup-steps must be >= 0"),
    (["--shuffle-buffer", "0"], "--shuffle-buffer must be at least 1"),
])
def test_bad_schedule_options_are_dw649(prepared, tmp_path, flags, message, capsys):
    assert _train(prepared, tmp_path / "run", *flags) == 2
    err = capsys.readouterr().err
    assert "DW649" in err and message in err and not (tmp_path / "run").exists()


# --- a prepared directory that does not fit -------------------------------------------------------


def _edit_manifest(root, change):
    manifest = json.loads((root / "manifest.json").read_text())
    change(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))


def _rewrite_shard(path, column, values):
    table = pq.read_table(path)
    index = table.schema.get_field_index(column)
    pq.write_table(table.set_column(index, column, values), path)


def _no_valid(m):
    del m["splits"]["valid"]


def _input_gone(m):
    m["inputs"] = [i for i in m["inputs"] if i["name"] != "price"]


def _shape_changed(m):
    next(i for i in m["inputs"] if i["name"] == "history")["shape"] = [20]


def _more_rows(m):
    m["splits"]["train"]["rows"] += 1


def _lost_shard(m):
    m["splits"]["train"]["shards"].append("train/part-00009.parquet")


def _lost_vocab(m):
    m["vocabularies"]["domain"] = "vocab/nothing.json"


def _old_format(m):
    m["version"] = 7


@pytest.mark.parametrize("change, code, message", [
    (_old_format, "DW640", "this dwc reads version 1"),
    (_input_gone, "DW641", "the model reads input (numeric) 'price'"),
    (_shape_changed, "DW641", "'history' is sequence int64 [20] in the manifest"),
    (_lost_shard, "DW643", "part-00009.parquet' of the 'train' split is missing"),
    (_more_rows, "DW643", "the 'train' shards hold 1,200 rows; the manifest says 1,201"),
    (_no_valid, "DW644", "has no 'valid' split"),
    (_lost_vocab, "DW645", "cannot read the vocabulary"),
])
def test_manifest_problems_are_coded_before_training(prepared, tmp_path, change, code, message,
                                                     capsys):
    root = _copy(prepared, tmp_path)
    _edit_manifest(root, change)
    assert _train(root, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert code in err and message in err, err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_a_vocabulary_whose_tokens_are_not_strings_is_dw645(prepared, tmp_path, capsys):
    """Tokens [1, 2, [3]] once named a cell `domain=[3]`: prepare writes strings only."""
    root = _copy(prepared, tmp_path)
    relative = json.loads((root / "manifest.json").read_text())["vocabularies"]["domain"]
    vocab = json.loads((root / relative).read_text())
    (root / relative).write_text(json.dumps({**vocab, "tokens": [1, 2, [3]]}))
    assert _train(root, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "DW645" in err and "has no list of tokens (strings, as prepare writes them)" in err
    assert not (tmp_path / "run").exists()


def test_a_directory_without_a_manifest_is_dw640(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    assert _train(tmp_path / "raw", tmp_path / "run") == 2
    assert "DW640" in capsys.readouterr().err


def test_shard_columns_and_values_are_checked(prepared, tmp_path, capsys):
    root = _copy(prepared, tmp_path)
    shard = root / "valid" / "part-00000.parquet"
    _rewrite_shard(shard, "price", pa.array(np.ones(400)))  # float64, not float32
    assert _train(root, tmp_path / "run") == 2
    assert "DW641" in (err := capsys.readouterr().err) and "column 'price' is double" in err
    _rewrite_shard(shard, "price", arrow_column(np.ones((400, 1), np.float32), False))
    ids = np.arange(400) * 5  # up to 1995: above item_id's vocab of 1,000
    _rewrite_shard(shard, "item_id", pa.array(ids))
    assert _train(root, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "DW646" in err and "item_id id 1995 is outside [0, 1000)" in err
    _rewrite_shard(shard, "item_id", pa.array(np.ones(400, np.int64)))
    _rewrite_shard(shard, "history_len", pa.array(np.full(400, 11)))  # max_len = 10
    assert _train(root, tmp_path / "run") == 2
    assert "history_len length 11 is outside 0..10" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("column", "value", "message"), [
    ("price", np.nan, "price value nan is not finite"),
    ("price", np.inf, "price value inf is not finite"),
    ("ctr", 2.0, "ctr target 2 is not in [0, 1] as loss = bce needs"),
    ("ctr", -0.5, "ctr target -0.5 is not in [0, 1] as loss = bce needs"),
])
def test_values_a_model_cannot_train_on_are_refused(prepared, tmp_path, capsys, column, value,
                                                    message):
    """A NaN or infinite value, or a bce label outside [0, 1], in a shard written by hand: DW646
    naming the shard and the row, and the --out this run made is removed (it trained to NaN and
    exited 0)."""
    root = _copy(prepared, tmp_path)
    shard = root / "train" / "part-00001.parquet"
    rows = pq.read_metadata(shard).num_rows
    values = np.full((rows, 1), 0.5, np.float32)
    values[7] = value
    _rewrite_shard(shard, column, arrow_column(values, False))
    assert _train(root, tmp_path / "run", "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert "error[DW646]" in err and f"part-00001.parquet' row 7: {message}" in err
    assert not (tmp_path / "run").exists()


def test_a_damaged_shard_is_named_and_the_finished_epochs_stay(prepared, tmp_path, capsys):
    """The test shard's pages garbled after prepare (its footer intact, so the directory opens):
    training runs, then reading the test split fails with DW643 naming the shard, not pyarrow's
    error as an internal one; the checkpoints of the epochs that finished stay, with a note."""
    root = _copy(prepared, tmp_path)
    shard = root / "test" / "part-00000.parquet"
    data = bytearray(shard.read_bytes())
    for i in range(8, len(data) // 2):
        data[i] = (data[i] * 7 + 3) & 255
    shard.write_bytes(bytes(data))
    out = tmp_path / "run"
    assert _train(root, out, "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert "error[DW643]" in err and "part-00000.parquet' cannot be read" in err
    assert "internal error" not in err
    assert (out / "last.pt").is_file() and not (out / "metrics.json").exists()
    assert f"{out / 'last.pt'} holds the last epoch completed and best.pt the best so far" in err
    assert "--resume" not in err  # the data must change first: resuming on it fails again


def test_another_version_of_the_spec_is_a_warning(prepared, tmp_path, capsys):
    root = _copy(prepared, tmp_path)
    _edit_manifest(root, lambda m: m.update(spec_sha256="0" * 64))
    assert _train(root, tmp_path / "run", "--epochs", "1") == 0
    err = capsys.readouterr().err
    assert "warning[DW642]" in err and "prepared from another version of the spec" in err


@pytest.mark.slow
def test_ddp_two_processes_on_a_prepared_directory(prepared, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "dwc", "train", str(SPEC), "--data", str(prepared), "--out", str(out),
         "--epochs", "1", "--batch-size", "128"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["history"][0]["steps"] == math.ceil(600 / 128)
    assert metrics["history"][0]["valid"]["outputs"]["ctr"]["rows"] == 400
