"""Load and run dwc artifacts (ONNX, TVM or AOTInductor) from their directory, without the
compiler.

    from dwc.runtime import load
    model = load("out/apg_onnx")          # reads manifest.json
    outputs = model({"user_id": ids, ...}) # numpy arrays (or torch tensors) in, numpy arrays out
    model = load("out/apg_onnx", device="cuda")  # ONNX Runtime's CUDA execution provider

An artifact runs on the device it was built for (a TVM CUDA build, an AOTInductor package built
on a GPU), an ONNX model on the CPU or, with device="cuda", on the GPU; inputs and outputs stay
numpy arrays on the host either way. A device this machine lacks is refused with ArtifactError.

Inputs are checked against the manifest's signature (names, dtypes, per-sample shapes, ids within
their vocabulary, sequence lengths within 0 .. max_len, and the declared maximum batch); inputs the
artifact does not use are accepted and ignored.

An artifact compiled with `--vocab DIR` also takes raw values, encoded exactly as `dwc data
prepare` encoded the training data (dwc.encoding, shared by both):

    model({"user_id": ["u17", None], "history": ["i3^i9", ""], "price": [12.5, None], ...})

Strings, Python lists and numpy object arrays are raw values ([N, T] string or object arrays are
sequences of T items; a set is refused, its order being undefined); integer arrays stay ids,
float32 [N, w] arrays stay numerics, and a sequence given with its `NAME_len` stays ids. Torch
tensors are read on the host; one numpy cannot hold (bfloat16) is an ArtifactError. `model(inputs,
raw=True)` (or `model.encode(inputs, raw=True)`) treats every value as raw, so integer tokens (a
user id column of ints) are looked up in the vocabulary too.
"""

from __future__ import annotations

import functools
import json
import threading
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
        self._checks = [_InputCheck(i, self.max_lengths.get(i["name"])) for i in self.inputs]
        """What every call checks of each input, worked out once."""
        self.raw_inputs: dict[str, dict] = self.manifest.get("raw_inputs") or {}
        """Feature -> how its raw values are encoded (artifacts compiled with --vocab)."""
        self._vocabularies: dict[str, object] = {}

    def vocabulary(self, path: str):
        """The dwc.encoding.Vocabulary of a vocab/FEATURE.json in the artifact (read once)."""
        from dwc.encoding import Vocabulary

        if path not in self._vocabularies:
            try:
                body = json.loads((self.directory / path).read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise ArtifactError(f"cannot read the vocabulary {path}: {error}") from None
            self._vocabularies[path] = Vocabulary.from_json(body)
        return self._vocabularies[path]

    def encode(self, inputs: dict, raw: bool = False) -> dict:
        """The inputs with raw values encoded as prepare did (see the module docstring); other
        values pass through unchanged."""
        if not self.raw_inputs:
            if raw:
                raise ArtifactError("this artifact has no vocabularies: compile it with "
                                    "--vocab DIR to serve raw values")
            return inputs
        from dwc import encoding

        out = dict(inputs)
        for name, entry in self.raw_inputs.items():
            if name not in inputs:
                continue
            value, kind = _host(name, inputs[name]), entry["kind"]
            if not raw and _prepared(value, kind, f"{name}_len" in inputs):
                continue
            try:
                values = encoding.as_arrow(value)
                if kind == "numeric":
                    out[name] = encoding.encode_numeric(values, entry["width"], entry["fill"])
                elif kind == "sequence":
                    out[name], out[f"{name}_len"] = encoding.encode_sequence(
                        values, self.vocabulary(entry["vocabulary"]), entry["max_len"],
                        entry["splitter"])
                else:
                    out[name] = self.vocabulary(entry["vocabulary"]).encode(values)
            except encoding.EncodingError as error:
                raise ArtifactError(f"input {name!r} row {error.row}: {error.message}") from None
            except (TypeError, ValueError) as error:  # pyarrow cannot make an array of it
                raise ArtifactError(f"input {name!r}: cannot read its raw values ({error})") \
                    from None
        return out

    def _arrays(self, inputs: dict) -> tuple[dict[str, np.ndarray], int]:
        arrays: dict[str, np.ndarray] = {}
        batch = None
        for check in self._checks:
            name = check.name
            if name not in inputs:
                raise ArtifactError(f"missing input {name!r}")
            value = inputs[name]
            if type(value) is not np.ndarray:
                value = np.asarray(_host(name, value))
            if value.dtype != check.dtype:
                raise ArtifactError(f"input {name!r} must be {check.dtype}, got {value.dtype}")
            if value.ndim != len(check.shape) or value.shape[1:] != check.per_sample:
                raise ArtifactError(f"input {name!r} must have shape {check.shape}, "
                                    f"got {list(value.shape)}")
            if check.highest is not None and value.size \
                    and int(value.view(check.unsigned).max()) > check.highest:
                # one reduction: viewed unsigned, a negative id is larger than any in range.
                # Compiled gathers do not bounds-check: an out-of-range id must never reach
                # them, and a length past T (or below 0) would silently change a pooled value.
                if check.lengths:
                    raise ArtifactError(f"input {name!r} has lengths outside 0 .. "
                                        f"{check.highest}")
                raise ArtifactError(f"input {name!r} has ids outside [0, {check.highest + 1})")
            if batch is None:
                batch = value.shape[0]
            elif value.shape[0] != batch:
                raise ArtifactError(f"input {name!r} has batch {value.shape[0]}, expected {batch}")
            arrays[name] = value if value.flags.c_contiguous else np.ascontiguousarray(value)
        if batch is None or not 1 <= batch <= self.max_batch:
            raise ArtifactError(f"batch size {batch} outside 1 .. {self.max_batch} (the artifact's "
                                "declared maximum)")
        return arrays, batch

    def __call__(self, inputs: dict, raw: bool = False) -> dict[str, np.ndarray]:
        return self._outputs(inputs, raw)

    def _outputs(self, inputs: dict, raw: bool = False, **run) -> dict[str, np.ndarray]:
        """A call's outputs by name; `run`: the artifact kind's own options of `_run`."""
        arrays, batch = self._arrays(self.encode(inputs, raw))
        return dict(zip(self.outputs, self._run(arrays, batch, **run), strict=True))

    def _run(self, arrays: dict[str, np.ndarray], batch: int) -> list[np.ndarray]:
        """The outputs, in manifest order, for the checked `arrays` of `batch` rows."""
        raise NotImplementedError


class _InputCheck:
    """One input's signature as each call checks it: dtype, shape, and the largest id (vocab - 1)
    or length (T) it may hold, if any."""

    __slots__ = ("name", "dtype", "shape", "per_sample", "highest", "lengths", "unsigned")

    def __init__(self, spec: dict, max_length: int | None) -> None:
        self.name = spec["name"]
        self.dtype = np.dtype(spec["dtype"])
        self.shape = spec["shape"]
        self.per_sample = tuple(spec["shape"][1:])
        vocab = spec.get("vocab")
        self.lengths = max_length is not None
        self.highest = max_length if self.lengths else (vocab - 1 if vocab else None)
        self.unsigned = (np.dtype(f"u{self.dtype.itemsize}") if self.highest is not None
                         else None)


def _host(name: str, value):
    """A torch tensor as a numpy array on the host (other values unchanged); ArtifactError for
    a tensor numpy cannot hold (bfloat16 and the other dtypes numpy lacks)."""
    if not hasattr(value, "detach"):
        return value
    try:
        return value.detach().cpu().numpy()
    except (TypeError, RuntimeError) as error:
        raise ArtifactError(f"input {name!r} is a {value.dtype} tensor, which numpy cannot "
                            f"hold ({error}); convert it first, e.g. tensor.float() for "
                            "numerics or tensor.long() for ids") from None


def _prepared(value, kind: str, with_lengths: bool) -> bool:
    """Whether a value (numpy, after `_host`) is already what the model reads (ids, float32
    numerics), not raw."""
    dtype = getattr(value, "dtype", None)
    if dtype is None or not hasattr(value, "shape"):
        return False  # a Python list: raw
    kind_char = np.dtype(dtype).kind
    if kind == "numeric":
        return str(dtype).endswith("float32") and len(value.shape) == 2
    if kind == "sequence":
        return with_lengths and kind_char in "iu"
    return kind_char in "iu"


class OnnxArtifact(Artifact):
    def __init__(self, directory: str | Path, device: str = "cpu") -> None:
        super().__init__(directory)
        import onnxruntime

        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise ArtifactError("this onnxruntime has no CUDAExecutionProvider (it comes with "
                                    "the onnxruntime-gpu package)")
            providers.insert(0, "CUDAExecutionProvider")  # the CPU one takes what CUDA cannot
        self.device = device
        self.session = onnxruntime.InferenceSession(
            str(self.directory / "model.onnx"), providers=providers)
        if self.session.get_providers()[0] != providers[0]:  # e.g. no CUDA driver or GPU
            raise ArtifactError(f"onnxruntime could not start {providers[0]} here")

    def _run(self, arrays, batch):
        return self.session.run(self.outputs, {n: arrays[n] for n in self.used})


class TvmArtifact(Artifact):
    def __init__(self, directory: str | Path) -> None:
        super().__init__(directory)
        import tvm
        from tvm import relax

        self.device = tvm.cuda() if self.kind == "cuda" else tvm.cpu()
        if self.kind == "cuda" and not self.device.exist:
            raise ArtifactError("this TVM artifact was built for CUDA and no CUDA GPU is visible "
                                "here (or this TVM was built without CUDA)")
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
        self._staging = threading.local()
        """Per thread: input name -> {shape: (aligned staging array, the TVM tensor on it)};
        see `_tensor`."""
        self._lock = threading.Lock()
        """Held around each call of the compiled module: Relax's VirtualMachine keeps one call's
        registers at a time, and two threads calling it at once corrupted each other's
        arguments. Threads stage their inputs in parallel and run the module one at a time."""

    def _tensor(self, name: str, array: np.ndarray):
        """A TVM tensor holding an input. On CPU: a large 64-byte aligned array itself (zero-copy
        through DLPack; TVM requires that alignment); anything else copied into this thread's
        staging tensor for that input and shape, made on first use (the last _STAGED_SHAPES
        shapes of each input are kept). Wrapping a fresh aligned copy of every input on every
        call cost more than the compiled code at small batches (lhuc, B = 64: 67 us around a
        41 us call; see docs/backends.md). The outputs never alias a staging tensor: every
        output of a dwc model is computed, never an input passed through."""
        if self.kind == "cuda":
            return self._tvm.runtime.tensor(array, self.device)
        if array.nbytes > _STAGED_BYTES and not array.ctypes.data % 64:
            return self._tvm.runtime.from_dlpack(array)
        stages = self._staging.__dict__.setdefault(name, {})
        stage = stages.get(array.shape)
        if stage is None:
            if len(stages) >= _STAGED_SHAPES:
                del stages[next(iter(stages))]  # the oldest shape
            buffer = _aligned(array.shape, array.dtype)
            stage = stages[array.shape] = (buffer, self._tvm.runtime.from_dlpack(buffer))
        np.copyto(stage[0], array)
        return stage[1]

    def _run(self, arrays, batch):
        args = [self._tensor(i["name"], arrays[i["name"]]) for i in self.inputs]
        function = self.buckets.get(batch, self.main)
        with self._lock:
            result = function(*args, *self.params)
        values = list(result) if len(self.outputs) > 1 or hasattr(result, "__len__") else [result]
        if self.kind == "cuda":
            return [v.numpy() for v in values]
        return [np.from_dlpack(v) for v in values]  # each call's outputs are fresh tensors


_STAGED_BYTES = 1 << 16
"""Inputs up to this size are always copied into a staging tensor (a copy of 64 KiB costs less
than wrapping the array); larger ones are passed zero-copy when aligned."""

_STAGED_SHAPES = 8
"""Staging tensors kept per input and thread, one per shape (batch size) last used."""


def _aligned(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary."""
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class AotiArtifact(Artifact):
    """An AOTInductor package (needs the torch that built it, manifest `target.torch`)."""

    def __init__(self, directory: str | Path) -> None:
        super().__init__(directory)
        import torch

        built = self.manifest["target"].get("torch")
        if built and built != torch.__version__:
            raise ArtifactError(f"this AOTInductor package was built with torch {built}; it "
                                f"cannot run under torch {torch.__version__}")
        self.device = self.manifest["target"].get("device", "cpu")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ArtifactError("this AOTInductor package was built for CUDA and this torch sees "
                                "no CUDA GPU")
        self._torch = torch
        files = self.manifest.get("files", {})
        self._plain = self._load_package(files.get("package", "model.pt2"))
        self.runner = self._plain[0]
        """The package as torch loads it (`torch._inductor.aoti_load_package` of model.pt2)."""
        self._prepacked = None
        """The package prepacked for large batches (model-prepacked.pt2), if the artifact has
        one, as a `_load_package` pair: it runs every call of `prepacked_from` rows or more."""
        self.prepacked_from = self.manifest["target"].get("prepacked_from")
        listed = files.get("prepacked")
        if (listed is None) != (self.prepacked_from is None):
            raise ArtifactError("the manifest names a prepacked package without the batch it "
                                "serves from, or the reverse (files.prepacked, "
                                "target.prepacked_from): rebuild the artifact")
        if listed is not None:
            if not isinstance(self.prepacked_from, int) or isinstance(self.prepacked_from, bool) \
                    or self.prepacked_from < 1 or not isinstance(listed, str):
                raise ArtifactError(f"the manifest's prepacked package ({listed!r}, from "
                                    f"{self.prepacked_from!r} rows) is not a file name and a "
                                    "positive batch size: rebuild the artifact")
            self._prepacked = self._load_package(listed)

    def _load_package(self, name: str):
        """(the package's runner, its C++ runner on the flat list of input tensors or None).

        The flat runner is what `runner(*args)` calls after flattening the inputs with pytree
        (~20 us per call at B = 1); None if this torch's package object has none (then the
        runner itself runs)."""
        path = self.directory / name
        if not path.is_file():
            raise ArtifactError(f"the AOTInductor package {name} is missing from "
                                f"{self.directory}: rebuild the artifact")
        try:
            runner = self._torch._inductor.aoti_load_package(str(path))
        except (OSError, RuntimeError, AssertionError, ValueError) as error:
            # torch raises all of these for a damaged or foreign file
            raise ArtifactError(f"cannot load the AOTInductor package {name}: {error} "
                                "(rebuild the artifact)") from None
        return runner, getattr(getattr(runner, "loader", None), "run", None)

    def _run(self, arrays, batch, package=None):
        """The outputs for `arrays` from `package` (a `_load_package` pair); by default the one
        made for this batch."""
        if package is None:
            large = self._prepacked and batch >= self.prepacked_from
            package = self._prepacked if large else self._plain
        # the compiled code records no autograd: no no_grad() needed around it
        tensors = [self._torch.from_numpy(arrays[i["name"]]) for i in self.inputs]
        if self.device != "cpu":
            tensors = [t.to(self.device) for t in tensors]
        runner, flat_run = package
        outputs = flat_run(tensors) if flat_run else runner(*tensors)
        if self.device != "cpu":
            outputs = [v.cpu() for v in outputs]
        return [v.numpy() for v in outputs]

    def packages(self) -> dict[str, object]:
        """Each package of the artifact as a function of the inputs (as for a call), whatever
        the batch: {"model.pt2": ..., "model-prepacked.pt2": ...} (the second only if built).
        `dwc verify` checks them all."""
        files = self.manifest.get("files", {})
        found = {files.get("package", "model.pt2"): self._plain}
        if self._prepacked:
            found[files["prepacked"]] = self._prepacked
        return {name: functools.partial(self._outputs, package=package)
                for name, package in found.items()}


def load(directory: str | Path, device: str | None = None) -> Artifact:
    """Load the artifact in `directory` (kind read from its manifest) to run on `device`: "cpu"
    or "cuda"; None means the one it was built for (the CPU for ONNX). Only an ONNX model can
    run on either; asking another artifact for a device it was not built for is refused."""
    probe = Artifact(directory)
    kind = probe.kind
    built_for = ("cuda" if kind == "cuda" or probe.manifest["target"].get("device") == "cuda"
                 else "cpu")
    if device not in (None, "cpu", "cuda"):
        raise ArtifactError(f"unknown device {device!r} (cpu or cuda)")
    if kind == "onnx":
        return OnnxArtifact(directory, device or "cpu")
    if device not in (None, built_for):
        what = {"llvm": "TVM", "cuda": "TVM", "aoti": "AOTInductor"}.get(kind, kind)
        raise ArtifactError(f"this {what} artifact was built for {built_for}, not {device}; "
                            f"rebuild it for {device}")
    if kind in ("llvm", "cuda"):
        return TvmArtifact(directory)
    if kind == "aoti":
        return AotiArtifact(directory)
    raise ArtifactError(f"unknown artifact kind {kind!r}")
