"""`dwc verify`: every backend against the torch reference on the same random inputs.

The reference is the generated training module in eval mode (with --weights if given). Each
target is built the way a user builds it (the inference form for torch; artifacts written to a
temporary directory and loaded through dwc.runtime for onnx and tvm) and run at every batch size.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Row:
    target: str
    batch: int
    output: str
    max_error: float


def verify_spec(source, targets: list[str], batches: list[int], export, level: int = 2,
                passes: str | None = None, verify_each: bool = False,
                on_pass=None) -> list[Row]:
    import torch

    from dwc.backends.artifacts import export_artifact
    from dwc.backends.export import load_generated, load_weights
    from dwc.driver import compile_source, write_artifacts
    from dwc.runtime import load

    # the pipeline runs once (so --print-after, --time-passes and --verify-each report it once);
    # every artifact is exported from its result, as `dwc compile --target T` exports it
    result = compile_source(source, "torch", level, passes, verify_each, on_pass)
    cls = load_generated(result.files["model.py"], result.graph.model)
    torch.manual_seed(0)
    reference = cls(validate_inputs=False)
    if export.weights is not None:
        load_weights(reference, export.weights)
    reference.eval()
    runners = {}
    with tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            if target == "torch":
                folded = reference.for_inference()
                runners[target] = lambda x, m=folded: {k: v.numpy() for k, v in m(x).items()}
                continue
            directory = write_artifacts(export_artifact(result, target, export), f"{tmp}/{target}")
            artifact = load(directory)
            runners[target] = lambda x, a=artifact: a(x)
            if target == "aoti":  # each package at every batch, whichever serves it
                packages = artifact.packages()
                runners[target] = packages.pop(artifact.manifest["files"]["package"])
                if packages:  # the prepacked one
                    (runners["aoti-prepacked"],) = packages.values()
        rows = []
        for batch in batches:
            inputs = cls.example_inputs(batch, torch.Generator().manual_seed(1000 + batch))
            with torch.no_grad():
                expected = {k: v.numpy() for k, v in reference(inputs).items()}
                for target, run in runners.items():
                    got = run(inputs)
                    for name, value in expected.items():
                        error = float(np.abs(np.asarray(got[name]) - value).max())
                        rows.append(Row(target, batch, name, error))
    return rows
