"""Load and run dwc artifacts (ONNX, TVM or AOTInductor) from their directory, without the
compiler.

    from dwc.runtime import load
    model = load("out/apg_onnx")          # reads manifest.json
    outputs = model({"user_id": ids, ...}) # numpy arrays (or torch tensors) in, numpy arrays out

Inputs are checked against the manifest's signature (names, dtypes, per-sample shapes, ids within
their vocabulary, sequence lengths within 0 .. max_len, and the declared maximum batch); inputs the
artifact does not use are accepted and ignored.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class ArtifactError(ValueError):
    """Bad inputs for an artifact, or an artifact this runtime cannot load."""


class Artifact:
    """A loaded artifact: call it with a dict of named inputs."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            self.manifest = json.loads((self.directory / "manifest.json").read_text())
        except OSError as error:
            raise ArtifactError(f"no manifest.json in {self.directory}: {error}") from None
        signature = self.manifest["signature"]
        self.inputs = signature["inputs"]
        self.outputs = [o["name"] for o in signature["outputs"]]
        self.max_batch = int(signature["max_batch"])
        self.kind = self.manifest["target"]["kind"]
        self.used = [i["name"] for i in self.inputs if i["used_by_artifact"]]
        shapes = {i["name"]: i["shape"] for i in self.inputs}
        self.max_lengths = {i["name"]: int(shapes[i["feature"]][1]) for i in self.inputs
                            if i.get("role") == "lengths"}
        """A sequence's lengths input -> the sequence's padded length (lengths lie in 0 .. T)."""

    def _arrays(self, inputs: dict) -> tuple[dict[str, np.ndarray], int]:
        arrays: dict[str, np.ndarray] = {}
        batch = None
        for spec in self.inputs:
            name = spec["name"]
            if name not in inputs:
                raise ArtifactError(f"missing input {name!r}")
            value = inputs[name]
            value = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
            if value.dtype != np.dtype(spec["dtype"]):
                raise ArtifactError(f"input {name!r} must be {spec['dtype']}, got {value.dtype}")
            if list(value.shape[1:]) != spec["shape"][1:]:
                raise ArtifactError(f"input {name!r} must have shape {spec['shape']}, "
                                    f"got {list(value.shape)}")
            vocab = spec.get("vocab")
            if vocab and value.size and (value.min() < 0 or value.max() >= vocab):
                # compiled gathers do not bounds-check: an out-of-range id must never reach them
                raise ArtifactError(f"input {name!r} has ids outside [0, {vocab})")
            max_len = self.max_lengths.get(name)
            if max_len is not None and value.size and (value.min() < 0 or value.max() > max_len):
                # a length past T (or below 0) would silently change the pooled value
                raise ArtifactError(f"input {name!r} has lengths outside 0 .. {max_len}")
            if batch is None:
                batch = value.shape[0]
            elif value.shape[0] != batch:
                raise ArtifactError(f"input {name!r} has batch {value.shape[0]}, expected {batch}")
            arrays[name] = np.ascontiguousarray(value)
        if batch is None or not 1 <= batch <= self.max_batch:
            raise ArtifactError(f"batch size {batch} outside 1 .. {self.max_batch} (the artifact's "
                                "declared maximum)")
        return arrays, batch

    def __call__(self, inputs: dict) -> dict[str, np.ndarray]:
        arrays, _ = self._arrays(inputs)
        return dict(zip(self.outputs, self._run(arrays), strict=True))

    def _run(self, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError


class OnnxArtifact(Artifact):
    def __init__(self, directory: str | Path) -> None:
        super().__init__(directory)
        import onnxruntime

        self.session = onnxruntime.InferenceSession(
            str(self.directory / "model.onnx"), providers=["CPUExecutionProvider"])

    def _run(self, arrays):
        return self.session.run(self.outputs, {n: arrays[n] for n in self.used})


class TvmArtifact(Artifact):
    def __init__(self, directory: str | Path) -> None:
        super().__init__(directory)
        import tvm
        from tvm import relax

        self.device = tvm.cuda() if self.kind == "cuda" else tvm.cpu()
        library = tvm.runtime.load_module(str(self.directory / "model.so"))
        self.vm = relax.VirtualMachine(library, self.device)
        params = tvm.runtime.load_param_dict_from_file(str(self.directory / "model.params"))
        self.params = [params[k].copyto(self.device) if self.kind == "cuda" else params[k]
                       for k in sorted(params)]
        target = self.manifest["target"]
        transform = target.get("transform_params")
        if transform:  # the weights' layout changes, lifted out of main: run once, here
            self.params = list(self.vm[transform](self.params))
        self.buckets = {int(b): self.vm[name] for b, name in target.get("buckets", {}).items()}
        """Batch size -> the function tuned for exactly that batch; other sizes run `main`."""
        self.main = self.vm["main"]
        self._tvm = tvm

    def _tensor(self, array: np.ndarray):
        """A TVM tensor for an input: on CPU the array itself (zero-copy through DLPack) when
        it is 64-byte aligned, as TVM requires, else an aligned copy."""
        if self.kind == "cuda":
            return self._tvm.runtime.tensor(array, self.device)
        if array.ctypes.data % 64:
            raw = np.empty(array.nbytes + 64, np.uint8)
            start = -raw.ctypes.data % 64
            aligned = raw[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
            aligned[...] = array
            array = aligned
        return self._tvm.runtime.from_dlpack(array)

    def _run(self, arrays):
        args = [self._tensor(arrays[i["name"]]) for i in self.inputs]
        function = self.buckets.get(args[0].shape[0], self.main) if args else self.main
        result = function(*args, *self.params)
        values = list(result) if len(self.outputs) > 1 or hasattr(result, "__len__") else [result]
        if self.kind == "cuda":
            return [v.numpy() for v in values]
        return [np.from_dlpack(v) for v in values]  # each call's outputs are fresh tensors


class AotiArtifact(Artifact):
    """An AOTInductor package (needs the torch that built it, manifest `target.torch`)."""

    def __init__(self, directory: str | Path) -> None:
        super().__init__(directory)
        import torch

        built = self.manifest["target"].get("torch")
        if built and built != torch.__version__:
            raise ArtifactError(f"this AOTInductor package was built with torch {built}; it "
                                f"cannot run under torch {torch.__version__}")
        self._torch = torch
        self.runner = torch._inductor.aoti_load_package(str(self.directory / "model.pt2"))

    def _run(self, arrays):
        args = [self._torch.from_numpy(arrays[i["name"]]) for i in self.inputs]
        with self._torch.no_grad():
            return [v.numpy() for v in self.runner(*args)]


def load(directory: str | Path) -> Artifact:
    """Load the artifact in `directory` (kind read from its manifest)."""
    kind = Artifact(directory).kind
    if kind == "onnx":
        return OnnxArtifact(directory)
    if kind in ("llvm", "cuda"):
        return TvmArtifact(directory)
    if kind == "aoti":
        return AotiArtifact(directory)
    raise ArtifactError(f"unknown artifact kind {kind!r}")
