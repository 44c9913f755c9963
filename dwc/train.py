"""`dwc train`: train a generated module on a .npz data set, with per-scenario metrics.

    dwc data generate data.npz --rows 200000 --seed 0
    dwc train experiments/apg.dw --data data.npz --out runs/apg --epochs 5
    .venv/bin/torchrun --nproc_per_node=2 -m dwc train experiments/apg.dw --data data.npz --out runs/ddp

The data file follows the contract of docs/data.md (dwc.dataset checks every row before the first
step). Every epoch evaluates the validation split — per output and per scenario cell: AUC and
logloss for bce outputs, MSE, Poisson NLL or accuracy for the others — keeps the best checkpoint
(`best.pt`, a plain state_dict that `dwc compile --weights` accepts) and stops early after
`patience` epochs without improvement. The selection metric is the loss-weighted mean AUC of the
bce outputs (`weight =` in the spec), or the weighted validation loss when no output is binary.
The best checkpoint is evaluated on the test split when the file has one. `two_stage = N`
(`--two-stage N`) is the schedule of methods with scenario parts over a shared model (MLoRA):
N epochs (fewer if stage 1 stops improving) with the scenario parts frozen at their start, then,
from the best checkpoint, only the scenario parts train. Under torchrun (RANK /
WORLD_SIZE set) the module is wrapped in DistributedDataParallel with the gloo backend; each
process reads its shard of every epoch; rank 0 evaluates and writes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dwc.backends.export import load_generated
from dwc.dataset import Split, TrainingData, cell_name, load_training_data, scenario_cells
from dwc.driver import atomic_file
from dwc.ir.graph import Graph, OutputSpec
from dwc.metrics import auc, logloss

OPTIMIZERS = ("adam", "adamw", "sgd")
METRICS_SCHEMA = 1


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 512
    lr: float = 3e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    seed: int = 0
    patience: int = 2
    max_steps: int | None = None
    two_stage: int | None = None
    """Epochs of stage 1 (scenario parts frozen at their start) before stage 2 trains only the
    scenario parts from the best stage-1 checkpoint; None: one stage, everything trained."""
    progress: bool = True


@dataclass
class TrainResult:
    best_epoch: int
    best_metric: float
    selection: dict = field(default_factory=dict)
    """How the best epoch was chosen: metric name, per-output weights, direction."""
    history: list[dict] = field(default_factory=list)
    test: dict | None = None


def _torch(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}


def _output_metrics(out: OutputSpec, value: np.ndarray, target: np.ndarray) -> dict:
    """The metrics of one output on some rows: its loss, and what suits the loss kind."""
    if out.loss == "bce":
        p, y = value.reshape(len(value), -1), target.reshape(len(target), -1)
        aucs = [a for j in range(p.shape[1]) if not math.isnan(a := auc(y[:, j], p[:, j]))]
        entry = {"auc": float(np.mean(aucs)) if aucs else float("nan"), "logloss": logloss(y, p)}
        entry["loss"] = entry["logloss"]
    elif out.loss == "ce":
        p = np.clip(value[np.arange(len(value)), target], 1e-7, 1.0)
        entry = {"accuracy": float((value.argmax(1) == target).mean()),
                 "logloss": float(-np.log(p).mean())}
        entry["loss"] = entry["logloss"]
    elif out.loss == "poisson":
        rate = np.maximum(value.astype(np.float64), 1e-12)
        entry = {"poisson_nll": float((rate - target * np.log(rate)).mean())}
        entry["loss"] = entry["poisson_nll"]
    else:
        entry = {"mse": float(((value.astype(np.float64) - target) ** 2).mean())}
        entry["loss"] = entry["mse"]
    entry["rows"] = int(len(value))
    return entry


def evaluate(model: nn.Module, split: Split, graph: Graph, batch_size: int = 4096,
             rule: dict | None = None) -> dict:
    """Per-output (and per-scenario-cell) metrics of `model` on a validated split, the weighted
    loss the model trains on, and the selection metric of `rule` (default: `selection(graph)`)."""
    model.eval()
    data = _torch(split.inputs)
    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for start in range(0, split.rows, batch_size):
            batch = {k: v[start:start + batch_size] for k, v in data.items()}
            for name, value in model(batch).items():
                parts.setdefault(name, []).append(value.numpy())
    cells = scenario_cells(split.inputs, graph)
    outputs = {}
    for out in graph.outputs:
        value, target = np.concatenate(parts[out.name]), split.targets[out.name]
        entry = _output_metrics(out, value, target)
        if cells is not None:
            entry["scenarios"] = {}
            for cell in np.unique(cells):
                rows = cells == cell
                entry["scenarios"][int(cell)] = {"name": cell_name(int(cell), graph),
                                                 **_output_metrics(out, value[rows], target[rows])}
        outputs[out.name] = entry
    loss = float(sum(out.weight * outputs[out.name]["loss"] for out in graph.outputs))
    report = {"loss": loss, "outputs": outputs}
    report["metric"] = selection_metric(report, graph, rule)
    return report


def selection(graph: Graph, valid: Split | None = None) -> dict:
    """How the best epoch is chosen: the loss-weighted mean AUC of the bce outputs (higher is
    better), or the weighted loss (lower is better) when no bce output has a positive weight and,
    in `valid`, both classes (AUC is undefined on one class); `note` says why it fell back."""
    binary = {out.name: out.weight for out in graph.outputs if out.loss == "bce" and out.weight}
    note = None
    if valid is not None:
        one_class = sorted(n for n in binary if len(np.unique(valid.targets[n] > 0.5)) < 2)
        if one_class and len(one_class) == len(binary):
            note = (f"valid/{', valid/'.join(one_class)} holds one class only, so AUC is "
                    "undefined: the best epoch is chosen by the weighted validation loss")
        binary = {n: w for n, w in binary.items() if n not in one_class}
    if binary:
        total = sum(binary.values())
        return {"metric": "auc", "weights": {k: w / total for k, w in binary.items()},
                "higher_is_better": True}
    rule = {"metric": "loss", "weights": {out.name: out.weight for out in graph.outputs},
            "higher_is_better": False}
    return {**rule, "note": note} if note else rule


def selection_metric(report: dict, graph: Graph, rule: dict | None = None) -> float:
    rule = rule or selection(graph)
    if rule["metric"] == "loss":
        return report["loss"]
    values = [(report["outputs"][name]["auc"], w) for name, w in rule["weights"].items()]
    values = [(v, w) for v, w in values if not math.isnan(v)]
    if not values:  # one class only in every binary target: AUC is undefined
        return float("nan")
    return float(sum(v * w for v, w in values) / sum(w for _, w in values))


def _progress(epoch: int, step: int, steps: int, loss: float, started: float, enabled: bool):
    if not enabled:
        return
    width = 30
    done = int(width * step / max(steps, 1))
    rate = step / max(time.perf_counter() - started, 1e-9)
    end = "\n" if step == steps else ""
    sys.stderr.write(f"\repoch {epoch} [{'#' * done}{'.' * (width - done)}] {step}/{steps} "
                     f"loss {loss:.4f} {rate:.0f} it/s{end}")
    sys.stderr.flush()


def _optimizer(config: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9,
                               weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r} (choices: {', '.join(OPTIMIZERS)})")


def _better(metric: float, best: float, higher: bool) -> bool:
    if math.isnan(metric) or math.isnan(best):
        return math.isnan(best) or math.isinf(best)  # the first epoch is the best one so far
    return metric > best if higher else metric < best


def scenario_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters that are scenario parts: those named by a runtime module's
    `dwc_scenario_parameters` (MLoRA's per-domain factors, ...), in module order."""
    found: dict[int, nn.Parameter] = {}
    for module in model.modules():
        for name in getattr(module, "dwc_scenario_parameters", ()):
            param = getattr(module, name)
            found[id(param)] = param
    return list(found.values())


def _stage_parameters(model: nn.Module, stage: int, scenario: list[nn.Parameter]) -> list:
    """Mark what stage `stage` trains (1: everything but the scenario parts, 2: only them; 0: one
    stage, everything) and return it for the optimizer."""
    parts = {id(p) for p in scenario}
    for param in model.parameters():
        param.requires_grad_(stage == 0 or (id(param) in parts) == (stage == 2))
    return [p for p in model.parameters() if p.requires_grad]


class LaunchError(ValueError):
    """The process environment does not describe a valid launch (a usage error)."""


def launch_env() -> tuple[int, int]:
    """(rank, world size) as torchrun sets them (RANK, WORLD_SIZE; 0 and 1 without torchrun),
    checked: LaunchError says what is wrong."""
    launch = "launch several processes with torchrun (.venv/bin/torchrun --nproc_per_node=2 -m dwc train ...)"
    try:
        rank = int(os.environ.get("RANK", "0"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise LaunchError(f"RANK={os.environ.get('RANK')!r} and WORLD_SIZE="
                          f"{os.environ.get('WORLD_SIZE')!r} must be integers; {launch}") from None
    if world < 1 or not 0 <= rank < world:
        raise LaunchError(f"RANK={rank} is not a process of WORLD_SIZE={world}; {launch}")
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if world > 1 and missing:
        raise LaunchError(f"WORLD_SIZE={world} without {' and '.join(missing)}; {launch}")
    return rank, world


def train(model_py: str, data: str | TrainingData, out: str | Path, config: TrainConfig,
          graph: Graph) -> TrainResult:
    """Train the generated module in `model_py` on `data` (a path or already-loaded data) and
    write best.pt, last.pt and metrics.json into `out` (see the module docstring).

    The data is checked whole before the first step (DiagnosticError on problems); `dwc train`
    also checks that `out` can be written before it starts.
    """
    rank, world = launch_env()
    distributed = world > 1
    if isinstance(data, str):
        data = load_training_data(data, graph)
    if distributed:
        torch.distributed.init_process_group("gloo")
    torch.manual_seed(config.seed)
    cls = load_generated(model_py, "train")
    model = cls(validate_inputs=False)  # the data was checked whole by load_training_data
    x_train, y_train = _torch(data.splits["train"].inputs), _torch(data.splits["train"].targets)
    scenario = scenario_parameters(model)
    if config.two_stage is not None and not scenario:
        raise ValueError("two-stage training needs scenario parts (a layer such as mlora "
                         "whose runtime names its `dwc_scenario_parameters`); this model has none")
    stage = 0 if config.two_stage is None else 1
    stage_one_ends = config.two_stage  # earlier when stage 1 stops improving
    objective = _Loss(model)
    optimizer = _optimizer(config, _stage_parameters(model, stage, scenario))
    wrapped = nn.parallel.DistributedDataParallel(objective) if distributed else objective
    out = Path(out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    rule = selection(graph, data.splits["valid"])
    higher = rule["higher_is_better"]
    if rank == 0 and rule.get("note"):
        print(f"dwc: note: {rule['note']}", file=sys.stderr)
    n = data.splits["train"].rows
    generator = torch.Generator().manual_seed(config.seed)
    result = TrainResult(best_epoch=-1, best_metric=-math.inf if higher else math.inf,
                         selection=rule)
    steps_done = 0
    stale = 0
    for epoch in range(1, config.epochs + 1):
        if stage == 1 and epoch > stage_one_ends:
            # stage 2: from the best shared model, only the scenario parts train
            stage, stale = 2, 0
            if result.best_epoch > 0 and rank == 0:
                model.load_state_dict(torch.load(out / "best.pt", weights_only=True))
            if distributed:  # every rank starts stage 2 from rank 0's weights
                for tensor in model.state_dict().values():
                    torch.distributed.broadcast(tensor, 0)
            optimizer = _optimizer(config, _stage_parameters(model, stage, scenario))
            if distributed:
                wrapped = nn.parallel.DistributedDataParallel(objective)
            if rank == 0:
                print(f"dwc: stage 2 from epoch {epoch}: training the scenario parts only "
                      f"({sum(p.numel() for p in scenario):,} parameters)", file=sys.stderr)
        order = torch.randperm(n, generator=generator)  # the same order on every rank
        shard = order[rank::world]
        steps = math.ceil(len(shard) / config.batch_size)
        if config.max_steps is not None:
            steps = min(steps, max(0, config.max_steps - steps_done))
        wrapped.train()
        started, total = time.perf_counter(), 0.0
        for step in range(steps):
            index = shard[step * config.batch_size:(step + 1) * config.batch_size]
            batch = {k: v[index] for k, v in x_train.items()}
            targets = {k: v[index] for k, v in y_train.items()}
            optimizer.zero_grad()
            loss = wrapped(batch, targets)
            loss.backward()
            optimizer.step()
            total += loss.item()
            if step % 20 == 0 or step == steps - 1:
                _progress(epoch, step + 1, steps, total / (step + 1), started,
                          config.progress and rank == 0 and sys.stderr.isatty())
        steps_done += steps
        train_loss = total / max(steps, 1)
        if distributed:  # the mean over every rank's steps, not rank 0's shard alone
            summed = torch.tensor([total, float(steps)], dtype=torch.float64)
            torch.distributed.all_reduce(summed)
            train_loss = float(summed[0] / summed[1].clamp(min=1))
        if rank == 0:
            report = evaluate(model, data.splits["valid"], graph, rule=rule)
            entry = {"epoch": epoch, "steps": steps, "train_loss": train_loss,
                     "valid": report, "seconds": time.perf_counter() - started}
            if stage:
                entry["stage"] = stage
            result.history.append(entry)
            improved = _better(report["metric"], result.best_metric, higher)
            if improved:
                result.best_epoch, result.best_metric = epoch, report["metric"]
                _save(model.state_dict(), out / "best.pt")
            _save(model.state_dict(), out / "last.pt")
            print(f"epoch {epoch}: train loss {entry['train_loss']:.4f}, valid "
                  f"{rule['metric']} {report['metric']:.4f}{' (best)' if improved else ''}",
                  file=sys.stderr)
            stale = 0 if improved else stale + 1
        if distributed:
            flag = torch.tensor([stale >= config.patience], dtype=torch.int64)
            torch.distributed.broadcast(flag, 0)
            stop = bool(flag.item())
        else:
            stop = stale >= config.patience
        if stop and stage == 1:  # stage 1 has converged: go on with stage 2 at once
            stage_one_ends, stop = epoch, False
        if stop or (config.max_steps is not None and steps_done >= config.max_steps):
            break
    if rank == 0:
        if "test" in data.splits and result.best_epoch > 0:
            model.load_state_dict(torch.load(out / "best.pt", weights_only=True))
            result.test = evaluate(model, data.splits["test"], graph, rule=rule)
        text = json.dumps(_json_safe(_metrics_json(result, data, graph, config, world)),
                          indent=2, allow_nan=False)
        with atomic_file(out / "metrics.json", "output directory with --out") as handle:
            handle.write(text.encode() + b"\n")
    if distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result


def _metrics_json(result: TrainResult, data: TrainingData, graph: Graph, config: TrainConfig,
                  world: int) -> dict:
    """metrics.json (schema in docs/data.md)."""
    return {
        "schema": METRICS_SCHEMA,
        "model": graph.model,
        "data": data.path,
        "rows": {name: split.rows for name, split in data.splits.items()},
        "scenario": {"features": list(graph.scenario), "cells": graph.scenario_cells},
        "config": {k: v for k, v in asdict(config).items() if k != "progress"},
        "world_size": world,
        "selection": result.selection,
        "best_epoch": result.best_epoch,
        "best_valid_metric": result.best_metric,
        "history": result.history,
        "test": result.test,
    }


def _save(state: dict, path: Path) -> None:
    """torch.save, replacing `path` atomically (a reader never loads half a checkpoint)."""
    with atomic_file(path, "output directory with --out") as handle:
        torch.save(state, handle)


def _json_safe(value):
    """metrics.json is strict JSON: an undefined metric (AUC of a one-class cell) is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


class _Loss(nn.Module):
    """The generated module's loss as a forward pass, so DDP sees (and all-reduces) it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch, targets) -> torch.Tensor:
        return self.model.loss(batch, targets)
