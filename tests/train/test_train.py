"""The synthetic data, the metrics, and the training harness (single process and DDP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from dwc.cli import main
from dwc.data import SHARES, make_dataset
from dwc.metrics import auc, logloss
from tests.conftest import ROOT

SPEC = str(ROOT / "experiments" / "apg.dw")


def test_data_is_deterministic_and_unbalanced():
    a, b = make_dataset(20_000, seed=3), make_dataset(20_000, seed=3)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    shares = np.bincount(a["domain"], minlength=4) / 20_000
    np.testing.assert_allclose(shares, SHARES, atol=0.01)
    assert not np.array_equal(make_dataset(100, 3, split=1)["user_id"], a["user_id"][:100])
    assert a["history"].shape == (20_000, 10) and a["price"].dtype == np.float32
    assert ((a["history"] > 0).sum(1) == a["history_len"]).all()


def test_scenario_effects_differ_in_sign():
    """The price effect flips between the biggest and the smallest scenario."""
    d = make_dataset(200_000, seed=0)
    log_price = np.log(d["price"][:, 0])
    slopes = []
    for s in (0, 3):
        rows = d["domain"] == s
        slopes.append(np.corrcoef(log_price[rows], d["ctr"][rows, 0])[0, 1])
    assert slopes[0] < 0 < slopes[1]


def test_auc_and_logloss():
    y = np.array([0, 0, 1, 1])
    assert auc(y, np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert np.isnan(auc(np.ones(3), np.arange(3)))
    assert logloss(y, np.array([0.5] * 4)) == pytest.approx(np.log(2))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "d.npz"
    assert main(["data", "generate", str(path), "--rows", "6000"]) == 0
    return path


def test_train_writes_checkpoints_and_per_scenario_metrics(data, tmp_path):
    out = tmp_path / "run"
    assert main(["train", SPEC, "--data", str(data), "--out", str(out), "--epochs", "2",
                 "--batch-size", "256"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    valid = metrics["history"][-1]["valid"]["outputs"]["ctr"]
    assert set(valid["scenarios"]) == {"0", "1", "2", "3"}
    assert valid["scenarios"]["2"]["name"] == "domain=2"
    assert metrics["test"]["outputs"]["ctr"]["rows"] == 600  # the best checkpoint, on test/
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"] + 0.05
    state = torch.load(out / "best.pt", weights_only=True)
    onnx_out = tmp_path / "onnx"
    assert main(["compile", SPEC, "--target", "onnx", "--weights", str(out / "best.pt"),
                 "-o", str(onnx_out)]) == 0  # the checkpoint is what --weights accepts
    assert "h_fc0.u_left" in state


@pytest.mark.slow
def test_ddp_two_processes(data, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "dwc", "train", SPEC, "--data", str(data), "--out", str(out), "--epochs", "1",
         "--batch-size", "128", "--max-steps", "8"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["history"][0]["valid"]["outputs"]["ctr"]["rows"] == 600
    torch.load(out / "best.pt", weights_only=True)


def test_two_stage_trains_the_shared_model_then_only_the_scenario_parts(data, tmp_path):
    """`--two-stage 1`: epoch 1 trains the shared weights and leaves STAR's domain factors at
    their start (ones, zeros); epoch 2 starts from the best epoch-1 weights and changes only the
    domain factors. The same run stopped after epoch 1 (`--max-steps`) shows stage 1's end."""
    spec = str(ROOT / "experiments" / "star.dw")
    argv = ["train", spec, "--data", str(data), "--batch-size", "256", "--patience", "5",
            "--epochs", "2", "--two-stage", "1"]
    assert main([*argv, "--out", str(tmp_path / "full")]) == 0
    metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert [e["stage"] for e in metrics["history"]] == [1, 2]
    assert metrics["config"]["two_stage"] == 1
    steps = str(metrics["history"][0]["steps"])
    assert main([*argv, "--out", str(tmp_path / "one"), "--max-steps", steps]) == 0
    stage_one = torch.load(tmp_path / "one" / "last.pt", weights_only=True)["model"]
    final = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    factors = [k for k in final if k.endswith(("domain_weight", "domain_bias"))]
    assert factors and len(factors) < len(final)
    for key, value in final.items():
        if key in factors:
            start = torch.ones_like(value) if key.endswith("weight") else torch.zeros_like(value)
            assert torch.equal(stage_one[key], start), key  # frozen in stage 1
            assert not torch.equal(value, start), key  # trained in stage 2
        elif value.dtype.is_floating_point and "running" not in key:
            assert torch.equal(value, stage_one[key]), key  # shared weights: stage 1's


def test_two_stage_needs_scenario_parts_and_a_second_stage(data, tmp_path, capsys):
    base = ["train", "--data", str(data), "--out", str(tmp_path / "x"), "--epochs", "2"]
    assert main([*base[:1], SPEC, *base[1:], "--two-stage", "1"]) == 2  # apg: no scenario parts
    assert "no scenario parts" in capsys.readouterr().err
    star = str(ROOT / "experiments" / "star.dw")
    assert main([*base[:1], star, *base[1:], "--two-stage", "2"]) == 2
    assert "leaves no epoch" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
