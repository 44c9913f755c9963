"""The ONNX backend: the folded inference module exported with one named input per feature, one
named output per task and a dynamic batch axis; checked with onnx.checker; optionally a Triton
model repository."""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator

import torch

from dwc.backends.export import InferenceModel, Positional, example_args, to_bytes

DEFAULT_OPSET = 17

_EXPECTED_WARNINGS = (
    # dwc exports with the TorchScript exporter on purpose (dynamo=False): torch announces that
    # it is the legacy one, and its internals call their own deprecated helpers.
    (DeprecationWarning, r"You are using the legacy TorchScript-based ONNX export"),
    (DeprecationWarning, r"The feature will be removed\. Please remove usage of this function"),
    # The inference helpers update fresh temporaries in place (`bias.index_select(...).addmm_`);
    # the exporter rewrites them out of place, which is the same function (`dwc verify`).
    (UserWarning, r"ONNX Preprocess - Removing mutation from node aten::addmm_ on block input"),
)
"""Warnings every export of a dwc model triggers inside torch.onnx: dropped by category and exact
message; any other warning (a TracerWarning above all: a trace that may not generalise) is shown."""


@contextlib.contextmanager
def expected_warnings() -> Iterator[None]:
    """Runs the block with `_EXPECTED_WARNINGS` ignored and every other filter as it was."""
    with warnings.catch_warnings():
        for category, message in _EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


def export_onnx(im: InferenceModel, opset: int = DEFAULT_OPSET, metadata: dict[str, str] | None
                = None) -> tuple[bytes, list[str]]:
    """Returns (model bytes, the input names the ONNX graph kept)."""
    import onnx

    wrapper = Positional(im.module, im.input_names, im.output_names).eval()
    axes = {name: {0: "batch"} for name in [*im.input_names, *im.output_names]}
    with expected_warnings():
        data = to_bytes(lambda buffer: torch.onnx.export(
            wrapper, example_args(im, 2), buffer, dynamo=False, input_names=im.input_names,
            output_names=im.output_names, dynamic_axes=axes, opset_version=opset))
    model = onnx.load_from_string(data)
    for key, value in sorted((metadata or {}).items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model, full_check=True)
    kept = [i.name for i in model.graph.input]
    return model.SerializeToString(), kept


_TRITON_TYPES = {"int64": "TYPE_INT64", "float32": "TYPE_FP32"}


def triton_config(manifest: dict, max_batch: int) -> str:
    """config.pbtxt for Triton's onnxruntime backend (batch is the implicit first dimension)."""
    lines = [f'name: "{manifest["model"]}"', 'platform: "onnxruntime_onnx"',
             f"max_batch_size: {max_batch}", "input ["]
    used = [i for i in manifest["signature"]["inputs"] if i["used_by_artifact"]]
    for n, spec in enumerate(used):
        dims = spec["shape"][1:]
        entry = [f'    name: "{spec["name"]}"', f"    data_type: {_TRITON_TYPES[spec['dtype']]}"]
        if dims:
            entry.append(f"    dims: [ {', '.join(map(str, dims))} ]")
        else:  # one value per sample: Triton needs a non-empty shape, reshaped away
            entry += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
        lines += ["  {", *entry, "  }" + ("," if n < len(used) - 1 else "")]
    lines += ["]", "output ["]
    outputs = manifest["signature"]["outputs"]
    for n, spec in enumerate(outputs):
        lines += ["  {", f'    name: "{spec["name"]}"', "    data_type: TYPE_FP32",
                  f"    dims: [ {', '.join(map(str, spec['shape'][1:]))} ]",
                  "  }" + ("," if n < len(outputs) - 1 else "")]
    lines += ["]", "dynamic_batching {", "  max_queue_delay_microseconds: 100", "}",
              'instance_group [ { kind: KIND_AUTO } ]']
    return "\n".join(lines) + "\n"


def metadata_for(result, im: InferenceModel) -> dict[str, str]:
    from dwc import __version__

    return {"dwc.version": __version__, "dwc.model": result.inference.model,
            "dwc.spec_sha256": str(result.inference.options.get("spec_hash", "")),
            "dwc.weights": im.weights,
            "dwc.outputs": json.dumps(im.output_names)}
