"""What every deployable artifact shares: the folded inference module (with trained weights),
a positional wrapper for exporters, the manifest and the spec copy.

Artifacts are always built from `for_inference()` of the generated training module, so ONNX and
TVM compute exactly what the torch inference form computes (one source of semantics).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import pickle
import sys
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dwc.diagnostics import Diagnostic, DiagnosticError

_counter = 0


def load_generated(source: str, name: str = "model"):
    """Import generated model.py source; returns its training class."""
    global _counter
    _counter += 1
    module_name = f"_dwc_generated_{name}_{_counter}"
    spec = importlib.util.spec_from_loader(module_name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    exec(compile(source, f"<dwc {name}>", "exec"), module.__dict__)
    return next(v for v in vars(module).values() if isinstance(v, type)
                and v.__module__ == module_name and hasattr(v, "for_inference"))


def _weights_error(message: str, notes: list[str]) -> DiagnosticError:
    return DiagnosticError([Diagnostic.file_level(
        "DW405", message, notes=tuple(notes),
        help="save the state_dict of the training module compiled from this spec: "
        "torch.save(model.state_dict(), path)")])


def _some(names: list[str], shown: int = 4) -> str:
    """The first `shown` names, and how many more there are."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a saved state_dict (or the weights of a `dwc train` checkpoint, last.pt) strictly;
    mismatches become one DW405 naming every parameter."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError,
            zipfile.BadZipFile) as error:
        if isinstance(error, pickle.UnpicklingError):  # torch's text suggests unsafe loading
            reason = ("it is not a torch.save file of tensors only (weights are loaded with "
                      "weights_only=True: no other Python object is unpickled)")
        else:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else \
                type(error).__name__
        raise _weights_error(f"cannot load weights from '{path}': {reason}", []) from None
    if isinstance(state, dict) and state.get("format") == "dwc-checkpoint":
        state = state["model"]  # dwc train's last.pt: the weights beside the optimizer's state
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise _weights_error(f"'{path}' does not hold a state_dict (a dict of tensors by "
                             "parameter name)", [])
    unusual = sorted(k for k, v in state.items() if v.layout != torch.strided or v.is_meta)
    if unusual:
        raise _weights_error(f"'{path}' holds tensors without values (meta or sparse): "
                             f"{_some(unusual)}", [])
    broken = sorted(k for k, v in state.items()
                    if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if broken:
        raise _weights_error(f"'{path}' holds NaN or infinite values in {_some(broken)} "
                             "(a training run that diverged?)", [])
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shaped = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shaped:
        notes = []
        if missing:
            notes.append("missing: " + ", ".join(missing))
        if unexpected:
            notes.append("unexpected: " + ", ".join(unexpected))
        for k in shaped:
            notes.append(f"mis-shaped: {k} is {list(state[k].shape)} in the file, "
                         f"{list(own[k].shape)} in the model")
        raise _weights_error(f"the weights in '{path}' do not fit this model", notes)
    model.load_state_dict(state, strict=True)


@dataclass
class InferenceModel:
    """The folded inference module and the facts every exporter needs."""

    module: nn.Module
    training_class: type
    input_names: list[str]
    output_names: list[str]
    weights: str
    """"init (seed 0)" or the weights file with its sha256."""


def inference_model(model_py: str, name: str, weights: str | Path | None) -> InferenceModel:
    cls = load_generated(model_py, name)
    torch.manual_seed(0)  # without weights, artifacts are still reproducible
    model = cls(validate_inputs=False)
    described = "init (torch seed 0)"
    if weights is not None:
        load_weights(model, weights)
        digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
        described = f"{Path(weights).name} (sha256 {digest})"
    folded = model.eval().for_inference()
    folded.validate_inputs = False
    return InferenceModel(folded, cls, list(cls.INPUTS), list(cls.OUTPUTS), described)


class Positional(nn.Module):
    """Wraps a generated module for exporters: inputs in INPUTS order, outputs as a tuple."""

    def __init__(self, model: nn.Module, input_names: list[str], output_names: list[str]):
        super().__init__()
        self.model = model
        self.input_names = input_names
        self.output_names = output_names

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(dict(zip(self.input_names, inputs, strict=True)))
        return tuple(outputs[name] for name in self.output_names)


def example_args(im: InferenceModel, batch: int) -> tuple[torch.Tensor, ...]:
    inputs = im.training_class.example_inputs(batch, torch.Generator().manual_seed(batch))
    return tuple(inputs[n] for n in im.input_names)


def to_bytes(write) -> bytes:
    buffer = io.BytesIO()
    write(buffer)
    return buffer.getvalue()


@contextlib.contextmanager
def export_warnings() -> Iterator[None]:
    """Drops the Python warning every torch.export of a dwc model triggers inside torch."""
    with warnings.catch_warnings():
        # torch.export's run_decompositions deep-copies torch's own pytree specs and so trips
        # torch's deprecation of LeafSpec: internal to torch, nothing a spec can change.
        warnings.filterwarnings("ignore", category=FutureWarning,
                                message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
        yield


def export_program(im: InferenceModel, max_batch: int, example_batch: int = 2):
    """torch.export of the positional wrapper with a dynamic batch 1 .. max_batch (what the TVM
    and AOTInductor backends compile), traced on `example_batch` rows (2 or more: a batch of 1
    would be specialised). The program is the same for any example batch; TorchInductor takes
    its size as the batch's hint when it decides which loops to run in parallel."""
    wrapper = Positional(im.module, im.input_names, im.output_names).eval()
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    return torch.export.export(wrapper, example_args(im, example_batch),
                               dynamic_shapes=(tuple({0: batch} for _ in im.input_names),))
