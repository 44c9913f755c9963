"""The manifest.json written next to every artifact: its signature, what was applied, versions.

Torch-free, so `dwc compile --target torch` can write one without importing torch.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform

from dwc import __version__
from dwc.ir.graph import Graph


def versions(packages: tuple[str, ...] = ("torch", "onnx", "onnxruntime", "apache-tvm")
             ) -> dict[str, str]:
    found = {"dwc": __version__, "python": platform.python_version()}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def manifest(graph: Graph, records, target: dict[str, object], files: dict[str, str],
             max_batch: int | None, weights: str, used_inputs: list[str] | None = None) -> str:
    """The manifest (sorted keys, so the same inputs give byte-identical text)."""
    used = {s.name for s in graph.inputs} if used_inputs is None else set(used_inputs)
    inputs = [{
        "name": spec.name, "dtype": spec.dtype, "shape": ["batch", *spec.shape],
        "role": spec.role, "feature": spec.feature, "vocab": spec.vocab,
        "scenario_sensitive": spec.scenario, "used_by_artifact": spec.name in used,
    } for spec in graph.inputs]
    outputs = [{"name": o.name, "dtype": "float32", "shape": ["batch", o.width], "head": o.head,
                "loss": o.loss, "loss_weight": o.weight} for o in graph.outputs]
    data = {
        "format": "dwc-artifact/1",
        "model": graph.model,
        "target": target,
        "files": files,
        "signature": {"inputs": inputs, "outputs": outputs, "max_batch": max_batch},
        "scenario": {"features": list(graph.scenario), "cells": graph.scenario_cells},
        "passes_applied": [r.name for r in records if r.changed],
        "spec": {"file": "spec.dw", "sha256": str(graph.options.get("spec_hash", ""))},
        "weights": weights,
        "versions": versions(),
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
