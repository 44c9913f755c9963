"""`dwc train`: train a generated module on a .npz data set, with per-scenario metrics.

    dwc data generate data.npz --rows 200000 --seed 0
    dwc train examples/apg.dw --data data.npz --out runs/apg --epochs 5
    torchrun --nproc_per_node=2 -m dwc train examples/apg.dw --data data.npz --out runs/apg_ddp

The spec's feature names must be columns of the data, and each output's name a label column.
Every epoch evaluates the validation split (AUC and logloss per scenario cell and overall, for
binary outputs), keeps the best checkpoint (`best.pt`, a plain state_dict that
`dwc compile --weights` accepts) and stops early after `patience` epochs without improvement.
Under torchrun (RANK / WORLD_SIZE set) the module is wrapped in DistributedDataParallel with the
gloo backend; each process reads its shard of every epoch; rank 0 evaluates and writes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dwc.backends.export import load_generated
from dwc.data import load
from dwc.metrics import auc, logloss


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 512
    lr: float = 3e-3
    weight_decay: float = 0.0
    seed: int = 0
    patience: int = 2
    max_steps: int | None = None
    progress: bool = True


@dataclass
class TrainResult:
    best_epoch: int
    best_metric: float
    history: list[dict] = field(default_factory=list)
    test: dict | None = None


def _tensors(arrays: dict[str, np.ndarray], names: list[str]) -> dict[str, torch.Tensor]:
    missing = sorted(set(names) - set(arrays))
    if missing:
        raise ValueError(f"the data has no column(s) {', '.join(missing)} "
                         f"(columns: {', '.join(sorted(arrays))})")
    return {n: torch.from_numpy(arrays[n]) for n in names}


def scenario_cells(arrays: dict[str, np.ndarray], scenario: tuple[str, ...],
                   vocab: dict[str, int]) -> np.ndarray:
    cells = np.zeros(len(next(iter(arrays.values()))), dtype=np.int64)
    for feature in scenario:
        cells = cells * vocab[feature] + arrays[feature]
    return cells


def evaluate(model: nn.Module, data: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
             cells: np.ndarray | None, batch_size: int = 4096) -> dict:
    """Overall and per-scenario-cell AUC / logloss of every binary output."""
    model.eval()
    n = len(next(iter(data.values())))
    outputs: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = {k: v[start:start + batch_size] for k, v in data.items()}
            for name, value in model(batch).items():
                outputs.setdefault(name, []).append(value.numpy())
    report = {}
    for name, parts in outputs.items():
        if name not in targets:
            continue
        p, y = np.concatenate(parts)[:, 0], targets[name].numpy()[:, 0]
        entry = {"auc": auc(y, p), "logloss": logloss(y, p), "rows": int(n)}
        if cells is not None:
            entry["scenarios"] = {}
            for c in np.unique(cells):
                rows = cells == c
                entry["scenarios"][int(c)] = {"auc": auc(y[rows], p[rows]),
                                              "logloss": logloss(y[rows], p[rows]),
                                              "rows": int(rows.sum())}
        report[name] = entry
    return report


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


def train(model_py: str, data_path: str, out: str | Path, config: TrainConfig,
          scenario: tuple[str, ...] = ()) -> TrainResult:
    """Train the generated module in `model_py` (see the module docstring)."""
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    distributed = world > 1
    if distributed:
        torch.distributed.init_process_group("gloo")
    torch.manual_seed(config.seed)
    cls = load_generated(model_py, "train")
    model = cls(validate_inputs=False)
    names = list(cls.INPUTS)
    outputs = list(cls.OUTPUTS)
    train_arrays, valid_arrays = load(data_path, "train"), load(data_path, "valid")
    x_train, y_train = _tensors(train_arrays, names), _tensors(train_arrays, outputs)
    x_valid, y_valid = _tensors(valid_arrays, names), _tensors(valid_arrays, outputs)
    vocab = dict(cls.VOCABULARIES)
    cells = scenario_cells(valid_arrays, scenario, vocab) if scenario else None
    objective = _Loss(model)
    wrapped = nn.parallel.DistributedDataParallel(objective) if distributed else objective
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    out = Path(out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    n = len(next(iter(x_train.values())))
    generator = torch.Generator().manual_seed(config.seed)
    result = TrainResult(best_epoch=-1, best_metric=-math.inf)
    steps_done = 0
    stale = 0
    for epoch in range(1, config.epochs + 1):
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
        if rank == 0:
            report = evaluate(model, x_valid, y_valid, cells)
            metric = float(np.nanmean([r["auc"] for r in report.values()])) if report else \
                -total / max(steps, 1)
            entry = {"epoch": epoch, "train_loss": total / max(steps, 1), "valid": report,
                     "seconds": time.perf_counter() - started}
            result.history.append(entry)
            improved = metric > result.best_metric
            if improved:
                result.best_epoch, result.best_metric = epoch, metric
                torch.save(model.state_dict(), out / "best.pt")
            torch.save(model.state_dict(), out / "last.pt")
            print(f"epoch {epoch}: train loss {entry['train_loss']:.4f}, valid AUC "
                  f"{metric:.4f}{' (best)' if improved else ''}", file=sys.stderr)
            stale = 0 if improved else stale + 1
        if distributed:
            flag = torch.tensor([stale >= config.patience], dtype=torch.int64)
            torch.distributed.broadcast(flag, 0)
            stop = bool(flag.item())
        else:
            stop = stale >= config.patience
        if stop or (config.max_steps is not None and steps_done >= config.max_steps):
            break
    if rank == 0:
        (out / "metrics.json").write_text(json.dumps(
            {"best_epoch": result.best_epoch, "best_valid_auc": result.best_metric,
             "history": result.history, "world_size": world}, indent=2))
    if distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result


class _Loss(nn.Module):
    """The generated module's loss as a forward pass, so DDP sees (and all-reduces) it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch, targets) -> torch.Tensor:
        return self.model.loss(batch, targets)
