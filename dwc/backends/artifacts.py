"""Deployable artifacts: the files of an ONNX, TVM or AOTInductor export (model, weights,
manifest, spec copy, optionally a Triton repository), built from the folded inference module."""

from __future__ import annotations

import json

from dwc.diagnostics import Diagnostic, DiagnosticError
from dwc.manifest import manifest


def _fail(code: str, message: str, help: str) -> DiagnosticError:
    return DiagnosticError([Diagnostic.file_level(code, message, help=help)])


def _require(package: str) -> None:
    import importlib.util

    if importlib.util.find_spec(package) is None:
        raise _fail("DW408", f"the '{package}' package is needed for this target",
                    "install the export extra: pip install -e '.[export]' in a dwc checkout "
                    "(pip install 'dwc[export]' where dwc came from a wheel)")


def torch_version() -> str:
    """The torch that built an AOTInductor package: the package loads only under the same one."""
    import torch

    return torch.__version__


def export_artifact(result, target: str, options) -> dict[str, str | bytes]:
    """Build the artifact files for `target` ("onnx", "tvm" or "aoti")."""
    _require("torch")
    if target != "aoti":  # AOTInductor is part of torch
        _require("onnx" if target == "onnx" else "tvm")
    from dwc.backends.export import inference_model

    model_py = result.files["model.py"]
    im = inference_model(model_py, result.inference.model, options.weights)
    files: dict[str, str | bytes] = {"spec.dw": result.source.text}
    try:
        if target == "onnx":
            from dwc.backends.onnx_export import export_onnx, metadata_for, triton_config

            data, kept = export_onnx(im, options.opset, metadata_for(result, im))
            files["model.onnx"] = data
            text = manifest(result.inference, result.records,
                            {"kind": "onnx", "opset": options.opset},
                            {"model": "model.onnx", "spec": "spec.dw"}, options.max_batch,
                            im.weights, kept)
            files["manifest.json"] = text
            if options.triton:
                name = result.inference.model
                files[f"triton/{name}/1/model.onnx"] = data
                files[f"triton/{name}/config.pbtxt"] = triton_config(json.loads(text),
                                                                     options.max_batch)
        elif target == "aoti":
            from dwc.backends.aoti_export import PREPACKED_FROM, build_aoti, prepacked_verdict

            files["model.pt2"] = plain = build_aoti(im, options.max_batch, options.wrapper_opt)
            about = {"kind": "aoti", "torch": torch_version(), "wrapper_opt": options.wrapper_opt}
            listed = {"package": "model.pt2", "spec": "spec.dw"}
            if options.prepack and options.max_batch >= PREPACKED_FROM:
                prepacked = build_aoti(im, options.max_batch, options.wrapper_opt, prepacked=True)
                serving, ratios = prepacked_verdict(im, plain, prepacked, options.max_batch)
                measured = ", ".join(f"{r:.2f}x at B = {b}" for b, r in ratios.items())
                if serving is None:
                    print(f"dwc: prepacked package left out (its time / the plain package's: "
                          f"{measured})")
                else:
                    files["model-prepacked.pt2"] = prepacked
                    listed["prepacked"] = "model-prepacked.pt2"
                    about["prepacked_from"] = serving
                    print(f"dwc: prepacked package serves batches of {serving} or more (its "
                          f"time / the plain package's: {measured})")
            files["manifest.json"] = manifest(result.inference, result.records, about, listed,
                                              options.max_batch, im.weights)
        else:
            from dwc.backends.tvm_export import build_tvm, target_for

            tvm_target = target_for(options.device, options.arch)
            library, params, built = build_tvm(im, tvm_target, options.max_batch,
                                               options.tune)
            files["model.so"] = library
            files["model.params"] = params
            files["manifest.json"] = manifest(
                result.inference, result.records, {**tvm_target, **built},
                {"library": "model.so", "params": "model.params", "spec": "spec.dw"},
                options.max_batch, im.weights)
    except DiagnosticError:
        raise
    except Exception as error:  # a backend's own failure, reported with its message
        raise _fail("DW407", f"the {target} backend failed: {type(error).__name__}: "
                    f"{str(error).splitlines()[0] if str(error) else ''}",
                    "please report this with the spec; rerun with DWC_DEBUG=1 for details") \
            from error
    return files
