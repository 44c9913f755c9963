"""`dwc train`: train a generated module on a prepared directory or a .npz, with per-scenario
metrics, checkpoints, resume and learning-rate schedules.

    dwc data generate data.npz --rows 200000 --seed 0
    dwc train experiments/apg.dw --data data.npz --out runs/apg --epochs 5
    dwc train experiments/apg.dw --data prepared/ --out runs/apg --lr-schedule cosine --warmup-steps 200
    dwc train experiments/apg.dw --data prepared/ --out runs/apg --epochs 8 --resume
    .venv/bin/torchrun --nproc_per_node=2 -m dwc train experiments/apg.dw --data data.npz --out runs/ddp

The data is read through dwc.prepared's batch interface: a prepared directory (`dwc data
prepare`) is streamed from its Parquet shards, a .npz (docs/data.md) is checked whole and held in
memory. Every epoch shows a progress bar on a terminal (loss, rows/s, ETA; one line per epoch
otherwise), then evaluates the validation split — per output and per scenario cell, named from
the vocabularies: AUC and logloss for bce outputs, MSE, Poisson NLL or accuracy for the others —
and prints that table. It keeps the best checkpoint (`best.pt`, a plain state_dict that `dwc
compile --weights` accepts), writes `last.pt` (weights, optimizer, schedule position, epoch, RNG
state: what `--resume` continues from exactly) and stops early after `patience` epochs without
improvement. The selection metric is the loss-weighted mean AUC of the bce outputs (`weight =` in
the spec), or the weighted validation loss when no output is binary. The best checkpoint is
evaluated on the test split when there is one. The learning rate follows `lr_schedule` (constant,
cosine or step decay, after `warmup_steps` of linear warm-up), set before every step.
`two_stage = N` (`--two-stage N`) is the schedule of methods with scenario parts over a shared
model (MLoRA): N epochs (fewer if stage 1 stops improving) with the scenario parts frozen at their
start, then, from the best checkpoint, only the scenario parts train. Under torchrun (RANK /
WORLD_SIZE set) the module is wrapped in DistributedDataParallel with the gloo backend; each
process reads its disjoint part of every epoch with the same number of steps; rank 0 evaluates and
writes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dwc.backends.export import load_generated
from dwc.dataset import Split as Arrays
from dwc.dataset import TrainingData, cell_name, scenario_cells
from dwc.diagnostics import Diagnostic, DiagnosticError
from dwc.driver import atomic_file
from dwc.ir.graph import Graph, OutputSpec
from dwc.metrics import auc, logloss
from dwc.prepared import (
    SHUFFLE_BUFFER,
    ArraySplit,
    Source,
    Split,
    npz_source,
    open_training_data,
    scenario_names,
)

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step")
METRICS_SCHEMA = 1
CHECKPOINT = "dwc-checkpoint"
TABLE_ROWS = 20
"""Scenario cells the console table shows (the largest); metrics.json has them all."""


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
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    step_size: int | None = None
    """step schedule: epochs between two decays of the learning rate by `gamma`."""
    gamma: float = 0.1
    shuffle_buffer: int = SHUFFLE_BUFFER
    """Rows a prepared directory's reader shuffles at a time (a .npz is permuted whole)."""
    progress: bool = True


RESUMABLE = ("epochs", "patience", "max_steps", "progress")
"""Settings a resumed run may change (the others decide what the weights become)."""


@dataclass
class TrainResult:
    best_epoch: int
    best_metric: float
    selection: dict = field(default_factory=dict)
    """How the best epoch was chosen: metric name, per-output weights, direction."""
    history: list[dict] = field(default_factory=list)
    test: dict | None = None
    resumed: list[dict] = field(default_factory=list)
    """Each resume: the checkpoint it continued from and the epochs done before."""


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int, epoch: int) -> float:
    """The learning rate of step `step` (0-based, over the whole run) of epoch `epoch` (1-based)
    relative to `--lr`: linear warm-up over `warmup_steps` (step k of it trains at
    (k + 1) / warmup_steps), then constant, a cosine from 1 down to 0 at the last step of
    `epochs` epochs, or `gamma` to the power of the epochs done before `epoch` divided by
    `step_size` (counted in epochs, not steps: an epoch cut short by --max-steps and resumed
    still counts once)."""
    warm = config.warmup_steps
    factor = (step + 1) / warm if step < warm else 1.0
    if config.lr_schedule == "cosine":
        horizon = config.epochs * steps_per_epoch
        progress = min(max(step - warm, 0) / max(horizon - warm - 1, 1), 1.0)
        factor *= 0.5 * (1.0 + math.cos(math.pi * progress))
    elif config.lr_schedule == "step":
        factor *= config.gamma ** ((epoch - 1) // (config.step_size or 1))
    return factor


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


def _batches(split: Split | Arrays) -> Split:
    return ArraySplit(split) if isinstance(split, Arrays) else split


def evaluate(model: nn.Module, split: Split | Arrays, graph: Graph, batch_size: int = 4096,
             rule: dict | None = None, names: dict[str, list[str]] | None = None) -> dict:
    """Per-output (and per-scenario-cell) metrics of `model` on a split (read in file order),
    the weighted loss the model trains on, and the selection metric of `rule` (default:
    `selection(graph)`). Cells are named with `names` (the vocabularies), else by their ids."""
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    truth: dict[str, list[np.ndarray]] = {}
    cells_parts: list[np.ndarray] = []
    with torch.no_grad():
        for inputs, targets in _batches(split).batches(batch_size):
            for name, value in model(inputs).items():
                parts.setdefault(name, []).append(value.numpy())
            for name, value in targets.items():
                truth.setdefault(name, []).append(value.numpy())
            cells = scenario_cells({k: v.numpy() for k, v in inputs.items()}, graph)
            if cells is not None:
                cells_parts.append(cells)
    cells = np.concatenate(cells_parts) if cells_parts else None
    outputs = {}
    for out in graph.outputs:
        value, target = np.concatenate(parts[out.name]), np.concatenate(truth[out.name])
        entry = _output_metrics(out, value, target)
        if cells is not None:
            entry["scenarios"] = {}
            for cell in np.unique(cells):
                rows = cells == cell
                entry["scenarios"][int(cell)] = {"name": cell_name(int(cell), graph, names),
                                                 **_output_metrics(out, value[rows], target[rows])}
        outputs[out.name] = entry
    loss = float(sum(out.weight * outputs[out.name]["loss"] for out in graph.outputs))
    report = {"loss": loss, "outputs": outputs}
    report["metric"] = selection_metric(report, graph, rule)
    return report


def selection(graph: Graph, valid: Split | Arrays | None = None) -> dict:
    """How the best epoch is chosen: the loss-weighted mean AUC of the bce outputs (higher is
    better), or the weighted loss (lower is better) when no bce output has a positive weight and,
    in `valid`, both classes (AUC is undefined on one class); `note` says why it fell back."""
    binary = {out.name: out.weight for out in graph.outputs if out.loss == "bce" and out.weight}
    note = None
    if valid is not None and binary:
        targets = _batches(valid).read_targets()
        one_class = sorted(n for n in binary if len(np.unique(targets[n] > 0.5)) < 2)
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


_COLUMNS = {"bce": ("auc", "logloss"), "ce": ("accuracy", "logloss"), "mse": ("mse",),
            "poisson": ("poisson_nll",)}


def scenario_table(report: dict, graph: Graph, title: str) -> str:
    """The console table of one evaluation: a row for all rows and one per scenario cell (the
    TABLE_ROWS largest), a column per output metric; undefined values print as `-`."""
    columns = [(out.name, metric) for out in graph.outputs for metric in _COLUMNS[out.loss]]
    first = report["outputs"][graph.outputs[0].name]
    rows = [("all", first["rows"], [report["outputs"][o][m] for o, m in columns])]
    cells = sorted(first.get("scenarios", {}), key=lambda c: -first["scenarios"][c]["rows"])
    for cell in cells[:TABLE_ROWS]:
        entries = [report["outputs"][o]["scenarios"][cell] for o, _ in columns]
        rows.append((first["scenarios"][cell]["name"], first["scenarios"][cell]["rows"],
                     [e[m] for e, (_, m) in zip(entries, columns, strict=True)]))
    headers = [f"{o} {m}" if len(graph.outputs) > 1 else m for o, m in columns]
    name_width = max(len(title), *(len(r[0]) for r in rows))
    widths = [max(len(h), 7) for h in headers]
    lines = [f"{title:<{name_width}}  {'rows':>9}  " +
             "  ".join(f"{h:>{w}}" for h, w in zip(headers, widths, strict=True))]
    for name, count, values in rows:
        cells_text = ["-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"
                      for v in values]
        lines.append(f"{name:<{name_width}}  {count:>9,}  " +
                     "  ".join(f"{c:>{w}}" for c, w in zip(cells_text, widths, strict=True)))
    if len(cells) > TABLE_ROWS:
        lines.append(f"({len(cells) - TABLE_ROWS} smaller cells in metrics.json)")
    return "\n".join(lines)


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


# --- checkpoints and resume ---------------------------------------------------------------------


class ResumeError(DiagnosticError):
    """A checkpoint `--resume` cannot continue from (DW647, DW648), reported against last.pt."""


def _resume_error(code: str, message: str, help: str) -> ResumeError:
    return ResumeError([Diagnostic.file_level(code, message, help=help)])


_FRESH = "start without --resume, or point --resume at the --out of an earlier dwc train"
_REQUIRED = {"model": dict, "optimizer": dict, "progress": dict, "rng": dict,
             "best_epoch": int, "best_metric": float, "history_json": str, "resumed_json": str}
"""What `_restore` reads from a checkpoint, and the type it must have."""


def load_checkpoint(directory: str | Path) -> dict:
    """The training checkpoint `directory/last.pt` that `--resume` continues from; DW647 when
    there is none or it is not one."""
    path = Path(directory) / "last.pt"
    fresh = _FRESH
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise _resume_error("DW647", f"cannot resume: '{path}' does not exist", fresh) from None
    except Exception as error:  # noqa: BLE001 - a corrupt file fails in the unpickler in many ways
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise _resume_error("DW647", f"cannot resume from '{path}': it is not a readable "
                            f"checkpoint ({type(error).__name__}: {reason})", fresh) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT:
        raise _resume_error("DW647", f"'{path}' is not a dwc training checkpoint (a plain "
                            "state_dict has no optimizer or epoch to resume)",
                            "checkpoints of dwc train since --resume was added can be resumed; "
                            + fresh)
    if int(state.get("version", 0)) != 1:
        raise _resume_error("DW647", f"'{path}' is a version {state.get('version')} checkpoint; "
                            "this dwc resumes version 1", fresh)
    broken = [f"'{key}'" for key, kind in _REQUIRED.items()
              if not isinstance(state.get(key), kind | int if kind is float else kind)]
    if not broken and not isinstance(state["rng"].get("torch"), torch.Tensor):
        broken.append("'rng.torch'")
    if broken:
        raise _resume_error("DW647", f"'{path}' is an incomplete checkpoint: "
                            f"{', '.join(broken)} {'is' if len(broken) == 1 else 'are'} missing "
                            "or not what dwc train writes", "the file was cut short or changed; "
                            + fresh)
    return state


def check_resume(checkpoint: dict, config: TrainConfig, spec_sha256: str, source: Source,
                 world: int, where: str) -> None:
    """DiagnosticError(DW648) listing every way the run differs from the checkpoint's in what
    decides the weights: the spec, the data, the world size, the settings (RESUMABLE aside)."""
    differences = []
    if checkpoint.get("spec_sha256") != spec_sha256:
        differences.append("the spec differs from the one the checkpoint was trained from "
                           "(its sha256 changed)")
    if checkpoint.get("data") != source.identity:
        differences.append(f"the data differs: {_describe(checkpoint.get('data'))} in the "
                           f"checkpoint, {_describe(source.identity)} now")
    if checkpoint.get("world_size") != world:
        differences.append(f"the checkpoint was trained by {checkpoint.get('world_size')} "
                           f"process(es), this run has {world}")
    saved = checkpoint.get("config", {})
    now = asdict(config)
    for key, value in now.items():
        if key in RESUMABLE:
            continue
        if saved.get(key) != value:
            differences.append(f"--{key.replace('_', '-')} {_show(saved.get(key))} in the "
                               f"checkpoint, {_show(value)} now")
    if config.lr_schedule == "cosine" and saved.get("epochs") != config.epochs:
        differences.append(f"--epochs {saved.get('epochs')} in the checkpoint, {config.epochs} "
                           "now: the cosine schedule's length is --epochs")
    if differences:
        raise DiagnosticError([Diagnostic.file_level(
            "DW648", f"cannot resume from '{where}': the run differs from the checkpoint's",
            notes=tuple(differences),
            help="resume with the checkpoint's spec, data and settings (only --epochs, "
            "--patience and --max-steps may change), or start a new run without --resume")])


def _show(value) -> str:
    return "(none)" if value is None else str(value)


def _describe(identity: dict | None) -> str:
    if not identity:
        return "(unknown)"
    rows = ", ".join(f"{k} {v:,}" for k, v in identity.get("rows", {}).items())
    return f"{identity.get('kind')} ({rows} rows)"


@dataclass
class _Progress:
    """Where a run stands after an epoch: what last.pt saves and --resume restores."""

    epoch: int = 0
    steps_done: int = 0
    stage: int = 0
    stage_one_ends: int | None = None
    stale: int = 0

    def max_steps_reached(self, config: TrainConfig) -> bool:
        return config.max_steps is not None and self.steps_done >= config.max_steps


def _checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, progress: _Progress,
                result: TrainResult, config: TrainConfig, spec_sha256: str | None,
                source: Source, world: int) -> dict:
    return {
        "format": CHECKPOINT, "version": 1,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": {"lr_schedule": config.lr_schedule, "step": progress.steps_done},
        "progress": asdict(progress),
        "best_epoch": result.best_epoch, "best_metric": result.best_metric,
        "history_json": json.dumps(_json_safe(result.history)),
        "resumed_json": json.dumps(result.resumed),
        "rng": {"torch": torch.get_rng_state()},
        "spec_sha256": spec_sha256, "config": asdict(config), "data": source.identity,
        "world_size": world,
    }


# --- training -----------------------------------------------------------------------------------


def _source(data: str | TrainingData | Source, graph: Graph) -> Source:
    if isinstance(data, str):
        return open_training_data(data, graph)
    if isinstance(data, TrainingData):
        return npz_source(data)
    return data


def train(model_py: str, data: str | TrainingData | Source, out: str | Path, config: TrainConfig,
          graph: Graph, resume: dict | None = None, resume_from: str | Path | None = None,
          spec_sha256: str | None = None) -> TrainResult:
    """Train the generated module in `model_py` on `data` (a path, a checked .npz, or an opened
    Source) and write best.pt, last.pt and metrics.json into `out` (see the module docstring).
    `resume` is a checkpoint of `load_checkpoint` (from the directory `resume_from`), checked by
    `check_resume`: training continues after its epoch as if it had never stopped.

    The data is checked before the first step (DiagnosticError on problems); `dwc train` also
    checks that `out` can be written before it starts.
    """
    rank, world = launch_env()
    distributed = world > 1
    source = _source(data, graph)
    if distributed:
        torch.distributed.init_process_group("gloo")
    torch.manual_seed(config.seed)
    cls = load_generated(model_py, "train")
    model = cls(validate_inputs=False)  # the data was checked before training
    scenario = scenario_parameters(model)
    if config.two_stage is not None and not scenario:
        raise ValueError("two-stage training needs scenario parts (a layer such as mlora "
                         "whose runtime names its `dwc_scenario_parameters`); this model has none")
    train_split, valid = source.splits["train"], source.splits["valid"]
    names = scenario_names(graph, source.names)
    out = Path(out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    rule = selection(graph, valid)
    higher = rule["higher_is_better"]
    if rank == 0 and rule.get("note"):
        print(f"dwc: note: {rule['note']}", file=sys.stderr)
    result = TrainResult(best_epoch=-1, best_metric=-math.inf if higher else math.inf,
                         selection=rule)
    progress = _Progress(stage=0 if config.two_stage is None else 1,
                         stage_one_ends=config.two_stage)  # earlier if stage 1 stops improving
    objective = _Loss(model)
    optimizer = _optimizer(config, _stage_parameters(model, progress.stage, scenario))
    if resume is not None:
        optimizer = _restore(resume, model, progress, result, config, scenario, resume_from,
                             out, rank)
    wrapped = nn.parallel.DistributedDataParallel(objective) if distributed else objective
    steps_per_epoch = math.ceil(train_split.rows // world / config.batch_size)
    for epoch in range(progress.epoch + 1, config.epochs + 1):
        if progress.max_steps_reached(config):
            break
        if progress.stage == 1 and epoch > progress.stage_one_ends:
            # stage 2: from the best shared model, only the scenario parts train
            progress.stage, progress.stale = 2, 0
            if result.best_epoch > 0 and rank == 0:
                model.load_state_dict(torch.load(out / "best.pt", weights_only=True))
            if distributed:  # every rank starts stage 2 from rank 0's weights
                for tensor in model.state_dict().values():
                    torch.distributed.broadcast(tensor, 0)
            optimizer = _optimizer(config, _stage_parameters(model, progress.stage, scenario))
            if distributed:
                wrapped = nn.parallel.DistributedDataParallel(objective)
            if rank == 0:
                print(f"dwc: stage 2 from epoch {epoch}: training the scenario parts only "
                      f"({sum(p.numel() for p in scenario):,} parameters)", file=sys.stderr)
        started = time.perf_counter()
        steps, total, rows, lr = _train_epoch(wrapped, optimizer, train_split, epoch, progress,
                                              config, rank, world, steps_per_epoch)
        seconds = time.perf_counter() - started
        progress.steps_done += steps
        train_loss = total / max(steps, 1)
        if distributed:  # the mean over every rank's steps, not rank 0's part alone
            summed = torch.tensor([total, float(steps)], dtype=torch.float64)
            torch.distributed.all_reduce(summed)
            train_loss = float(summed[0] / summed[1].clamp(min=1))
        if rank == 0:
            report = evaluate(model, valid, graph, rule=rule, names=names)
            entry = {"epoch": epoch, "steps": steps, "train_loss": train_loss,
                     "rows_per_second": rows * world / max(seconds, 1e-9), "lr": lr,
                     "valid": report, "seconds": time.perf_counter() - started}
            if progress.stage:
                entry["stage"] = progress.stage
            result.history.append(entry)
            improved = _better(report["metric"], result.best_metric, higher)
            if improved:
                result.best_epoch, result.best_metric = epoch, report["metric"]
                _save(model.state_dict(), out / "best.pt")
            print(f"epoch {epoch}: train loss {entry['train_loss']:.4f}, valid "
                  f"{rule['metric']} {report['metric']:.4f}{' (best)' if improved else ''}, "
                  f"{entry['rows_per_second']:,.0f} rows/s", file=sys.stderr)
            print(scenario_table(report, graph, f"valid, epoch {epoch}"), file=sys.stderr)
            progress.stale = 0 if improved else progress.stale + 1
        if distributed:
            flag = torch.tensor([progress.stale >= config.patience], dtype=torch.int64)
            torch.distributed.broadcast(flag, 0)
            stop = bool(flag.item())
        else:
            stop = progress.stale >= config.patience
        if stop and progress.stage == 1:  # stage 1 has converged: go on with stage 2 at once
            progress.stage_one_ends, stop = epoch, False
        progress.epoch = epoch
        if rank == 0:
            _save(_checkpoint(model, optimizer, progress, result, config, spec_sha256, source,
                              world), out / "last.pt")
        if stop:
            break
    if rank == 0:
        _finish(model, source, graph, rule, names, result, out, config, world)
    if distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result


def _train_epoch(wrapped: nn.Module, optimizer: torch.optim.Optimizer, split: Split, epoch: int,
                 progress: _Progress, config: TrainConfig, rank: int, world: int,
                 steps_per_epoch: int) -> tuple[int, float, int, dict]:
    """One epoch's steps on this rank: (steps, summed loss, rows, first and last lr)."""
    from tqdm import tqdm

    plan = split.epoch(epoch, config.seed, rank, world, config.batch_size, config.shuffle_buffer)
    steps = plan.steps
    if config.max_steps is not None:
        steps = min(steps, max(0, config.max_steps - progress.steps_done))
    shown = config.progress and rank == 0 and sys.stderr.isatty()
    bar = tqdm(total=min(plan.rows, steps * config.batch_size), desc=f"epoch {epoch}",
               unit=" rows", unit_scale=True, file=sys.stderr, disable=not shown, leave=False,
               dynamic_ncols=True)
    wrapped.train()
    total, rows, lr = 0.0, 0, {}
    try:
        # --max-steps may end the epoch before its batches do
        for step, (batch, targets) in zip(range(steps), plan.batches, strict=False):
            rate = config.lr * lr_factor(config, progress.steps_done + step, steps_per_epoch,
                                         epoch)
            for group in optimizer.param_groups:
                group["lr"] = rate
            lr.setdefault("first", rate)
            lr["last"] = rate
            optimizer.zero_grad()
            loss = wrapped(batch, targets)
            loss.backward()
            optimizer.step()
            total += loss.item()
            count = len(next(iter(targets.values())))
            rows += count
            bar.update(count)
            if step % 10 == 0 or step == steps - 1:  # the last one always drawn
                bar.set_postfix(loss=f"{total / (step + 1):.4f}", lr=f"{rate:.2e}",
                                refresh=step == steps - 1)
    finally:
        plan.close()
        bar.close()
    return steps, total, rows, lr


def _restore(checkpoint: dict, model: nn.Module, progress: _Progress, result: TrainResult,
             config: TrainConfig, scenario: list[nn.Parameter], resume_from, out: Path,
             rank: int) -> torch.optim.Optimizer:
    """Put the run back where the checkpoint left it; the optimizer of its stage, restored.
    ResumeError(DW647) when the checkpoint's parts do not fit this model (a changed file)."""
    where = f"{resume_from}/last.pt"
    try:
        model.load_state_dict(checkpoint["model"])
        known = {f.name for f in fields(_Progress)}
        unknown = set(checkpoint["progress"]) - known
        if unknown:
            raise ValueError(f"unknown progress fields {sorted(unknown)}")
        for key, value in checkpoint["progress"].items():
            setattr(progress, key, value)
        optimizer = _optimizer(config, _stage_parameters(model, progress.stage, scenario))
        optimizer.load_state_dict(checkpoint["optimizer"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        history = json.loads(checkpoint["history_json"])
        resumed = json.loads(checkpoint["resumed_json"])
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise _resume_error("DW647", f"cannot resume from '{where}': its saved state does not "
                            f"fit this model ({reason})", "the checkpoint was changed or "
                            "belongs to another model; " + _FRESH) from None
    result.best_epoch, result.best_metric = checkpoint["best_epoch"], checkpoint["best_metric"]
    result.history = history
    result.resumed = [*resumed, {"from": str(resume_from), "after_epoch": progress.epoch}]
    source_best = Path(resume_from) / "best.pt" if resume_from is not None else None
    if rank == 0 and source_best is not None and source_best.is_file() and \
            source_best.resolve() != (out / "best.pt").resolve():
        with atomic_file(out / "best.pt", "output directory with --out") as handle, \
                open(source_best, "rb") as original:
            shutil.copyfileobj(original, handle)
    if rank == 0:
        print(f"dwc: resuming after epoch {progress.epoch} ({progress.steps_done:,} steps) "
              f"from {resume_from}", file=sys.stderr)
    return optimizer


def _finish(model: nn.Module, source: Source, graph: Graph, rule: dict, names, result: TrainResult,
            out: Path, config: TrainConfig, world: int) -> None:
    """The best checkpoint on the test split (printed as a table too), then metrics.json."""
    if "test" in source.splits and result.best_epoch > 0:
        model.load_state_dict(torch.load(out / "best.pt", weights_only=True))
        result.test = evaluate(model, source.splits["test"], graph, rule=rule, names=names)
        print(scenario_table(result.test, graph, f"test, best.pt (epoch {result.best_epoch})"),
              file=sys.stderr)
    text = json.dumps(_json_safe(_metrics_json(result, source, graph, config, world)),
                      indent=2, allow_nan=False)
    with atomic_file(out / "metrics.json", "output directory with --out") as handle:
        handle.write(text.encode() + b"\n")


def _metrics_json(result: TrainResult, source: Source, graph: Graph, config: TrainConfig,
                  world: int) -> dict:
    """metrics.json (schema in docs/data.md)."""
    return {
        "schema": METRICS_SCHEMA,
        "model": graph.model,
        "data": source.path,
        "data_kind": source.kind,
        "rows": {name: split.rows for name, split in source.splits.items()},
        "scenario": {"features": list(graph.scenario), "cells": graph.scenario_cells,
                     "names": "vocabulary" if scenario_names(graph, source.names) else "ids"},
        "config": {k: v for k, v in asdict(config).items() if k != "progress"},
        "world_size": world,
        "selection": result.selection,
        "best_epoch": result.best_epoch,
        "best_valid_metric": result.best_metric,
        "history": result.history,
        "test": result.test,
        "resumed": result.resumed,
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
