"""Reproduce docs/results.md: a shared MLP, STAR, APG, LHUC, PEPNet, M2M, HMoE, AdaSparse, HAMUR,
MLoRA, POSO and M3oE, all compiled by dwc from the specs in this directory, trained on the same synthetic multi-scenario data (dwc.data:
scenarios of 80 / 15 / 4 / 1 % of the rows) with the same budget, 3 seeds each.

    python experiments/run.py            # ~15-25 min on 2 CPU cores; writes docs/results.md
                                          # (its synthetic section) and docs/results.png
    python experiments/run.py --dataset movielens
                                          # the same models on MovieLens-100K, as a user runs
                                          # them: dwc data movielens, dwc data prepare, dwc train;
                                          # writes the MovieLens section and results-movielens.png

It also checks scale-out (the APG model trained by `torchrun --nproc_per_node=2` with the gloo
backend, compared with the single-process run) and deployment (the best model exported to ONNX
with its trained weights, its per-scenario test AUC recomputed through dwc.runtime).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dwc.backends.export import load_generated  # noqa: E402
from dwc.data import SHARES, load, save  # noqa: E402
from dwc.dataset import load_training_data, scenario_cells  # noqa: E402
from dwc.driver import ExportOptions, compile_source, write_artifacts  # noqa: E402
from dwc.metrics import auc  # noqa: E402
from dwc.runtime import load as load_artifact  # noqa: E402
from dwc.source import SourceFile  # noqa: E402
from dwc.train import TrainConfig, evaluate, train  # noqa: E402

MODELS = ["shared_mlp", "star", "apg", "lhuc", "pepnet", "m2m",
          "hmoe", "adasparse", "hamur", "mlora", "poso", "m3oe"]
SEEDS = [0, 1, 2]
ROWS = 200_000
CONFIG = dict(epochs=4, batch_size=1024, lr=3e-3, patience=1, progress=False)


def compile_spec(name: str):
    path = ROOT / "experiments" / f"{name}.dw"
    return compile_source(SourceFile(str(path.relative_to(ROOT)), path.read_text())), path


def test_report(model_py: str, weights: Path, data, graph) -> dict:
    """Test-split metrics of the weights; `data` is the checked TrainingData of this model."""
    cls = load_generated(model_py, "eval")
    model = cls(validate_inputs=False)
    model.load_state_dict(torch.load(weights, weights_only=True))
    return evaluate(model, data.splits["test"], graph)["outputs"]["ctr"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="rerun the experiments of docs/results.md")
    parser.add_argument("--dataset", choices=("synthetic", "movielens"), default="synthetic")
    parser.add_argument("--models", default=None,
                        help="comma-separated subset of the models (default: all)")
    args = parser.parse_args(argv)
    if args.dataset == "movielens":
        run_movielens(args.models.split(",") if args.models else ML_MODELS)
    else:
        run_synthetic()


def run_synthetic() -> None:
    started = time.perf_counter()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    work = Path(tempfile.mkdtemp(prefix="dwc-experiments-"))
    data = str(work / "data.npz")
    save(data, ROWS, seed=0)
    results: dict[str, list[dict]] = {}
    for name in MODELS:
        result, _ = compile_spec(name)
        checked = load_training_data(data, result.graph)  # read and checked once per model
        for seed in SEEDS:
            out = work / f"{name}-{seed}"
            t0 = time.perf_counter()
            train(result.files["model.py"], checked, out, TrainConfig(seed=seed, **CONFIG),
                  result.graph)
            report = test_report(result.files["model.py"], out / "best.pt", checked,
                                 result.graph)
            report["seconds"] = time.perf_counter() - t0
            results.setdefault(name, []).append(report)
            print(f"{name} seed {seed}: test AUC {report['auc']:.4f} "
                  f"({report['seconds']:.0f} s)", flush=True)

    # --- scale-out: the APG model under torchrun, 2 processes, gloo ---
    ddp_out = work / "apg-ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node=2",
                    "-m", "dwc", "train", str(ROOT / "experiments" / "apg.dw"), "--data", data,
                    "--out", str(ddp_out), "--epochs", str(CONFIG["epochs"]),
                    "--batch-size", str(CONFIG["batch_size"] // 2), "--seed", "0",
                    "--patience", str(CONFIG["patience"])], check=True, env=env, cwd=ROOT,
                   capture_output=True)
    apg_result, _ = compile_spec("apg")
    ddp = test_report(apg_result.files["model.py"], ddp_out / "best.pt",
                      load_training_data(data, apg_result.graph), apg_result.graph)

    # --- deployment: the best model to ONNX with its trained weights ---
    small = [2, 3]
    score = {m: np.mean([[_cell(r, s)["auc"] for s in small] for r in rs])
             for m, rs in results.items()}
    best = max((m for m in MODELS if m != "shared_mlp"), key=score.get)
    best_result, best_path = compile_spec(best)
    exported = compile_source(SourceFile(best_path.name, best_path.read_text()), "onnx",
                              export=ExportOptions(weights=str(work / f"{best}-0" / "best.pt")))
    artifact = load_artifact(write_artifacts(exported.files, work / "onnx"))
    test = load(data, "test")
    chunk = artifact.max_batch
    probabilities = np.concatenate([
        artifact({k: v[i:i + chunk] for k, v in test.items()})["ctr"][:, 0]
        for i in range(0, len(test["ctr"]), chunk)])
    cells = scenario_cells(test, best_result.graph)
    onnx_auc = {int(c): auc(test["ctr"][cells == c, 0], probabilities[cells == c])
                for c in np.unique(cells)}
    write_results(results, ddp, best, onnx_auc, time.perf_counter() - started)


def _cell(report: dict, s: int | str) -> dict:
    return report["scenarios"].get(s) or report["scenarios"].get(str(s))


def _auc_table(results: dict[str, list[dict]], cells) -> tuple[dict, list[list[str]]]:
    """Per (model, cell) the test AUC's mean and std over the seeds, and the table rows (each
    cell "mean ± std", then the overall AUC)."""
    stats, rows = {}, []
    for name, reports in results.items():
        line = [name]
        for c in cells:
            values = np.array([_cell(r, c)["auc"] for r in reports], dtype=float)
            stats[(name, c)] = (values.mean(), values.std(ddof=1))
            line.append(f"{values.mean():.4f} ± {values.std(ddof=1):.4f}")
        overall = np.array([r["auc"] for r in reports])
        line.append(f"{overall.mean():.4f} ± {overall.std(ddof=1):.4f}")
        rows.append(line)
    return stats, rows


def _gain(stats: dict, name: str, cell) -> tuple[float, float]:
    """A model's mean AUC gain over the shared MLP on a cell, and the noise it must exceed (the
    larger of the two seed-to-seed standard deviations)."""
    mean, std = stats[(name, cell)]
    base_mean, base_std = stats[("shared_mlp", cell)]
    return mean - base_mean, max(std, base_std)


def _auc_bars(stats: dict, models, cells, labels: list[str], title: str, path: Path,
              width_inches: int, ncol: int, label_size: int | None = None) -> None:
    """The per-cell AUC bar chart (mean ± std, one bar per model and cell) saved to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width_inches, 5))
    width = 0.8 / len(models)
    for i, name in enumerate(models):
        ax.bar(np.arange(len(cells)) + i * width, [stats[(name, c)][0] for c in cells], width,
               yerr=[stats[(name, c)][1] for c in cells], label=name, capsize=2)
    ax.set_xticks(np.arange(len(cells)) + width * (len(models) - 1) / 2)
    ax.set_xticklabels(labels, fontsize=label_size)
    ax.set_ylabel(f"test AUC (mean ± std, {len(SEEDS)} seeds)")
    low = min(m - sd for m, sd in stats.values())
    ax.set_ylim(max(0.0, low - 0.02), None)
    ax.legend(ncol=ncol, fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_results(results, ddp, best, onnx_auc, seconds) -> None:
    scenarios = range(len(SHARES))
    header = ["model", *[f"scenario {s} ({SHARES[s]:.0%})" for s in scenarios], "overall"]
    stats, rows = _auc_table(results, scenarios)
    verdict = []
    for name in results:
        if name == "shared_mlp":
            continue
        for s in (2, 3):
            gain, noise = _gain(stats, name, s)
            verdict.append(f"| {name} | {s} | {gain:+.4f} | {noise:.4f} | "
                           f"{'yes' if gain > noise else 'no'} |")
    winners = {name: [s for s in (2, 3) if (g := _gain(stats, name, s))[0] > g[1]]
               for name in results if name != "shared_mlp"}
    both = [n for n, w in winners.items() if w == [2, 3]] or ["none"]
    some = [f"{n} (scenario {w[0]})" for n, w in winners.items() if len(w) == 1] or ["none"]
    neither = [n for n, w in winners.items() if not w] or ["none"]
    reading = (f"Beat the shared baseline by more than the noise on both small scenarios: "
               f"{', '.join(both)}; on one of them: {', '.join(some)}; on neither: "
               f"{', '.join(neither)}. The small scenarios' test sets are small (see above), so "
               "seed-to-seed deviations there are large; the big scenario is the same for every "
               "model (it dominates training either way). The data's per-scenario effects are "
               "full re-weightings of the user-item affinity and sign flips; a per-scenario gate "
               "(LHUC, PEPNet: a diagonal rescaling of shared features) can express only part of "
               "that, while STAR, APG, M2M, MLoRA and M3oE change whole weight matrices per scenario.")
    apg0 = results["apg"][0]
    test_rows = {s: _cell(apg0, s)["rows"] for s in scenarios}
    _auc_bars(stats, list(results), scenarios,
              [f"scenario {s}\n{SHARES[s]:.0%} of rows" for s in scenarios],
              "Per-scenario AUC on synthetic unbalanced multi-scenario data (dwc.data)",
              ROOT / "docs" / "results.png", width_inches=12, ncol=4)
    ddp_cells = " / ".join(f"{_cell(ddp, s)['auc']:.4f}" for s in scenarios)
    single_cells = " / ".join(f"{_cell(apg0, s)['auc']:.4f}" for s in scenarios)
    best_seed0 = results[best][0]
    onnx_line = " / ".join(f"{_cell(best_seed0, s)['auc']:.4f} vs {onnx_auc[s]:.4f}"
                           for s in scenarios)
    text = f"""# Results: dynamic weights on unbalanced scenarios

Reproduce with `python experiments/run.py` ({seconds / 60:.1f} min on this machine; needs the
`experiments` extra: `pip install -e '.[experiments]'`).

**Data** (`dwc.data`, seed 0): {ROWS:,} impressions, train/valid/test 80/10/10 %, four scenarios
with {' / '.join(f'{x:.0%}' for x in SHARES)} of the rows. Shared structure (user-item affinity,
history interest match, item popularity) plus per-scenario interactions: a per-scenario matrix
re-weights the user-item affinity, the price effect flips sign across scenarios, and category
tastes differ. Test rows per scenario: {', '.join(f'{s}: {test_rows[s]:,}' for s in scenarios)}.

**Models** (`experiments/*.dw`, compiled by dwc at -O2): a shared MLP with the domain as an input
feature (baseline), STAR (partitioned norm + star FCN + auxiliary network), APG (low-rank dynamic
tower, rank 32/16, over-parameterised 2x), LHUC (per-domain hidden-unit scaling), PEPNet (EPNet +
PPNet tower), M2M (experts, meta attention, residual meta tower), HMoE (experts, per-domain
gates, towers and heads, label-space fusion), AdaSparse (per-domain neuron pruning of one FCN),
HAMUR (per-domain backbone with a hyper-network adapter reading the whole input), MLoRA (per-domain
low-rank adapters on a shared MLP), POSO (experts and a tower gated by the domain) and M3oE
(single task: STAR slot, shared and domain experts, two-level fusion). Same budget for all: Adam
{CONFIG['lr']}, batch {CONFIG['batch_size']}, at most {CONFIG['epochs']} epochs with early stopping on
validation AUC (patience {CONFIG['patience']}), seeds {SEEDS}; the best validation checkpoint is
evaluated on the test split.

## Per-scenario test AUC (mean ± std over 3 seeds)

{chr(10).join(['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)] + ['| ' + ' | '.join(r) + ' |' for r in rows])}

![per-scenario AUC](results.png)

## Do the dynamic-weight models beat the shared baseline on the small scenarios?

Gain = model mean AUC - shared MLP mean AUC; noise = the larger of the two seed-to-seed standard
deviations. "yes" only when the gain exceeds the noise.

| model | scenario | gain | noise | beats baseline by more than noise |
|---|---|---|---|---|
{chr(10).join(verdict)}

{reading}

## Scale-out: DistributedDataParallel

`.venv/bin/torchrun --nproc_per_node=2 -m dwc train experiments/apg.dw --data ... --batch-size {CONFIG['batch_size'] // 2}`
(gloo, CPU; each process reads its half of every epoch, so the global batch is the same
{CONFIG['batch_size']}). Per-scenario test AUC, seed 0:

| run | scenario 0 / 1 / 2 / 3 | overall |
|---|---|---|
| single process | {single_cells} | {apg0['auc']:.4f} |
| 2 processes (DDP) | {ddp_cells} | {ddp['auc']:.4f} |

The same command runs across nodes with torchrun's `--nnodes` / `--rdzv-endpoint`.

## Deployment: the best model through ONNX

Best model on the small scenarios (2 and 3): **{best}**. Its seed-0 checkpoint exported with
`dwc compile experiments/{best}.dw --target onnx --weights best.pt`, run through `dwc.runtime`
(onnxruntime) on the test split; per-scenario AUC torch vs ONNX: {onnx_line}.
"""
    write_section("synthetic", text)
    print(text)


ML_MODELS = ["shared_mlp", "star", "apg", "lhuc", "pepnet", "m2m",
             "hmoe", "adasparse", "hamur", "mlora", "poso", "m3oe"]
ML_CONFIG = dict(epochs=4, batch_size=1024, lr=3e-3, patience=1)


def _dwc(*arguments: str) -> None:
    """One dwc command, as a user runs it (its output kept for the error message)."""
    run = subprocess.run([sys.executable, "-m", "dwc", *arguments], cwd=ROOT, text=True,
                         capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if run.returncode:
        raise SystemExit(f"dwc {' '.join(arguments)} failed:\n{run.stdout}{run.stderr}")


def run_movielens(models: list[str]) -> None:
    """Every model of experiments/movielens/ on MovieLens-100K through the CLI: the raw log from
    the recbole wheel (`dwc data movielens`), a time-ordered 80/10/10 split prepared per spec
    (`dwc data prepare --split-by order`), 3 seeds of `dwc train` each; the per-cell test AUC of
    each best checkpoint is read from its metrics.json."""
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="dwc-movielens-"))
    log = work / "ml100k.parquet"
    _dwc("data", "movielens", "--out", str(log))
    reports: dict[str, list[dict]] = {}
    for name in models:
        spec = f"experiments/movielens/{name}.dw"
        prepared = work / f"prepared-{name}"
        _dwc("data", "prepare", spec, "--train", str(log), "--split-by", "order",
             "--out", str(prepared))
        for seed in SEEDS:
            out = work / f"{name}-{seed}"
            t0 = time.perf_counter()
            _dwc("train", spec, "--data", str(prepared), "--out", str(out), "--seed", str(seed),
                 *(f"--{k.replace('_', '-')}={v}" for k, v in ML_CONFIG.items()))
            test = json.loads((out / "metrics.json").read_text())["test"]["outputs"]["ctr"]
            test["seconds"] = time.perf_counter() - t0
            reports.setdefault(name, []).append(test)
            print(f"{name} seed {seed}: test AUC {test['auc']:.4f} ({test['seconds']:.0f} s)",
                  flush=True)
    write_movielens(reports, time.perf_counter() - started)


def write_movielens(reports: dict[str, list[dict]], seconds: float) -> None:
    first = next(iter(reports.values()))[0]["scenarios"]
    cells = sorted(first, key=lambda c: -first[c]["rows"])  # largest test cell first
    names = {c: first[c]["name"] for c in cells}
    stats, rows = _auc_table(reports, cells)
    header = ["model", *[f"{names[c]} ({first[c]['rows']:,})" for c in cells], "overall"]
    small = cells[-3:]  # the three smallest test cells
    verdict, winners = [], set()
    if "shared_mlp" in reports:
        for model in reports:
            if model == "shared_mlp":
                continue
            for c in small:
                gain, noise = _gain(stats, model, c)
                verdict.append(f"| {model} | {names[c]} | {gain:+.4f} | {noise:.4f} | "
                               f"{'yes' if gain > noise else 'no'} |")
                if gain > noise:
                    winners.add(model)
    overall = {m: np.mean([r["auc"] for r in runs]) for m, runs in reports.items()}
    best = max(overall, key=overall.get)
    winners = sorted(winners)
    reading = (f"Best overall test AUC: {best} ({overall[best]:.4f}; shared MLP "
               f"{overall.get('shared_mlp', float('nan')):.4f}). Beat the shared MLP by more than "
               f"the noise on at least one of the three smallest cells: "
               f"{', '.join(winners) if winners else 'none'}. Each test cell holds a few hundred "
               "to a few thousand future ratings, so on the small cells the seed-to-seed "
               "deviations are as large as the differences between the models.")
    _auc_bars(stats, list(reports), cells, [names[c].replace(", ", "\n") for c in cells],
              "MovieLens-100K: per-cell test AUC (age group x gender, time-ordered split)",
              RESULTS.parent / "results-movielens.png", width_inches=14, ncol=6, label_size=8)
    table = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    table += [f"| {' | '.join(r)} |" for r in rows]
    text = f"""## MovieLens-100K

Reproduce with `python experiments/run.py --dataset movielens` ({seconds / 60:.1f} min on this
machine), which runs what a user runs: `dwc data movielens --out ml100k.parquet` (the ratings
from the recbole 1.2.1 wheel; the data is read from the downloaded wheel and never
redistributed), then per spec `dwc data prepare experiments/movielens/MODEL.dw --train
ml100k.parquet --split-by order` and `dwc train ... --data DIR` for seeds {SEEDS}.

**Task**: click = rating >= 4 (docs/data.md, "MovieLens-100K"); one row per rating, ordered by
time, train/valid/test the first 80 / next 10 / last 10 % (the test split is the future).
Scenario cells: age group x gender (the users' own attributes). Features: user, movie,
occupation, the movie's genres (a sequence), release year, the user's previous 20 movies.
**Models** (`experiments/movielens/*.dw`): the same architectures as the synthetic experiment
above, over these features. Budget for all: Adam {ML_CONFIG['lr']}, batch
{ML_CONFIG['batch_size']}, at most {ML_CONFIG['epochs']} epochs, early stopping on validation AUC
(patience {ML_CONFIG['patience']}); the best validation checkpoint is evaluated on the test split.

### Per-cell test AUC (mean ± std over {len(SEEDS)} seeds; test rows in parentheses)

{chr(10).join(table)}

![MovieLens-100K per-cell AUC](results-movielens.png)

### Gains over the shared MLP on the three smallest test cells

Gain = model mean AUC - shared MLP mean AUC; noise = the larger of the two seed-to-seed standard
deviations; "yes" only when the gain exceeds the noise.

| model | cell | gain | noise | beats baseline by more than noise |
|---|---|---|---|---|
{chr(10).join(verdict)}

{reading}
"""
    write_section("movielens", text)
    print(text)


RESULTS = ROOT / "docs" / "results.md"


def write_section(name: str, text: str) -> None:
    """Replace the `name` section of docs/results.md (between its marker comments), keeping the
    others; a missing section is appended."""
    begin, end = f"<!-- results:{name} -->", f"<!-- /results:{name} -->"
    block = f"{begin}\n{text.strip()}\n{end}\n"
    current = RESULTS.read_text() if RESULTS.exists() else ""
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        current = (current.rstrip("\n") + "\n\n" if current.strip() else "") + block
    RESULTS.write_text(current)


if __name__ == "__main__":
    main()
