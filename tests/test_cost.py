"""`dwc explain --format json` against the closed forms of docs/models.md, 'APG'."""

from __future__ import annotations

import json

import pytest

from dwc.cli import main

SPEC = """
model one
feature a : categorical(vocab = 50, dim = {n})
feature s : categorical(vocab = 6, dim = {dz}) scenario
scenarios s
condition z = concat(s)
h = linear(a, {m}) dynamic(by = z, bias = none) apg(rank = {k}, overparam = {p})
output y = identity(h) loss = mse
"""


@pytest.mark.parametrize(("n", "m", "k", "p", "dz"), [(64, 48, 8, 32, 5), (256, 256, 32, 128, 16)])
def test_explain_follows_apg_closed_forms(tmp_path, capsys, n, m, k, p, dz):
    spec = tmp_path / "one.dw"
    spec.write_text(SPEC.format(n=n, m=m, k=k, p=p, dz=dz))
    assert main(["explain", str(spec), "--format", "json", "-O2", "--batch", "1024"]) == 0
    report = json.loads(capsys.readouterr().out)
    h = {record["pass"]: record["layers"]["h"] for record in report["passes"]
         if "h" in record["layers"]}
    generator = lambda outputs: (dz + 1) * outputs  # noqa: E731 - a linear generator's params

    # basic APG: the generator emits the whole N x M matrix per sample
    assert h["lowered"]["generated_per_sample"] == n * m
    assert h["lowered"]["params"] == generator(n * m)
    # low rank: U, S, V generated; sharing: only the K x K core
    assert h["lowrank"]["generated_per_sample"] == n * k + k * k + k * m
    assert h["share"]["generated_per_sample"] == k * k
    assert h["share"]["params"] == generator(k * k) + n * k + k * m
    # over-parameterisation trains N P + P K + K P + P M static parameters ...
    assert h["overparam"]["params"] == generator(k * k) + n * p + p * k + k * p + p * m
    # ... which fold-overparam multiplies out to N K + K M for inference
    assert h["fold-overparam"]["params"] == generator(k * k) + n * k + k * m
    # decomposed feed-forward: 2(NK + K^2 + KM) FLOPs instead of forming W
    assert h["decompose"]["flops_per_sample"] == 2 * (n * k + k * k + k * m) + 2 * dz * k * k
    # fold-scenario-table: the core of each of the 6 cells in a table (no generator left)
    assert h["fold-scenario-table"]["params"] == 6 * k * k + n * k + k * m
    # fold-scenario-layers: U, V shared, each cell's core (for small batches) and core times V
    # (K x M, for grouped batches) held by the layer; the grouped form costs 2(NK + KM) FLOPs;
    # nothing generated (the unread table goes in the last dce)
    cells = n * k + k * m + 6 * k * k + 6 * k * m
    assert h["fold-scenario-layers"]["params"] == 6 * k * k + cells
    assert h["fold-scenario-layers"]["generated_per_sample"] == 0
    assert h["fold-scenario-layers"]["flops_per_sample"] == 2 * (n * k + k * m)
    layer = next(x for x in report["layers"] if x["name"] == "h")
    assert layer["inference"]["params"] == cells
    assert layer["training"]["params"] == generator(k * k) + n * p + p * k + k * p + p * m


def test_explain_table_shows_passes(tmp_path, capsys):
    spec = tmp_path / "one.dw"
    spec.write_text(SPEC.format(n=16, m=12, k=3, p=6, dz=4))
    assert main(["explain", str(spec), "-O1"]) == 0
    out = capsys.readouterr().out
    assert "after each pass (totals):" in out
    assert [line.split()[0] for line in out.split("after each pass")[1].splitlines()[3:]] == [
        "lowered", "lowrank", "share", "overparam", "decompose", "dce", "strip-training", "dce"]
