"""`--target aoti`: an AOTInductor package of the folded inference module, with trained weights,
a dynamic batch up to --max-batch, loadable by torch alone and through dwc.runtime, verified
against the torch reference on every example, both packages (plain and, from --max-batch 1024,
prepacked). (Each package compiles C++: ~15-30 s, ~5-10 s with `--wrapper-opt O0`.)"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from dwc.cli import main
from dwc.runtime import ArtifactError, load
from tests.artifacts.test_artifacts import _train_and_save
from tests.conftest import EXAMPLES, ROOT, example_ids

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

CAN = ROOT / "examples" / "can.dw"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """can.dw trained a few steps, compiled with its weights and --max-batch 64 (the quick
    wrapper: a third of the build time, the same kernels)."""
    tmp = tmp_path_factory.mktemp("aoti")
    model, cls, weights = _train_and_save(CAN, tmp)
    out = tmp / "out"
    assert main(["compile", str(CAN), "--target", "aoti", "--weights", str(weights),
                 "--max-batch", "64", "--wrapper-opt", "O0", "-o", str(out)]) == 0
    return model, cls, out


def test_the_package_computes_what_the_trained_module_computes(trained):
    model, cls, out = trained
    artifact = load(out)
    for batch in (1, 7, 64):
        inputs = cls.example_inputs(batch, torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = model(inputs)
        got = artifact(inputs)
        for key, value in expected.items():
            assert got[key].shape == tuple(value.shape)
            assert np.abs(got[key] - value.numpy()).max() <= 1e-4, (batch, key)
    with pytest.raises(ArtifactError, match="outside 1 .. 64"):
        artifact(cls.example_inputs(65))


def test_the_package_and_its_manifest(trained):
    _, cls, out = trained
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.pt2", "spec.dw"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"] == {"kind": "aoti", "torch": torch.__version__, "wrapper_opt": "O0"}
    # --max-batch 64: no prepacked package
    assert manifest["files"] == {"package": "model.pt2", "spec": "spec.dw"}
    assert "prepacked_from" not in manifest["target"]
    assert manifest["signature"]["max_batch"] == 64
    assert [i["name"] for i in manifest["signature"]["inputs"]] == list(cls.INPUTS)
    assert manifest["weights"].startswith("state.pt (sha256 ")
    assert (out / "spec.dw").read_text() == CAN.read_text()


def test_the_optimised_wrapper_is_the_default():
    from dwc.cli import _build_parser

    args = _build_parser().parse_args(["compile", str(CAN), "--target", "aoti", "-o", "out"])
    assert args.wrapper_opt == "O1"


LOAD_WITH_TORCH_ALONE = """
import json, sys
import torch
directory = sys.argv[1]
manifest = json.load(open(directory + "/manifest.json"))
runner = torch._inductor.aoti_load_package(directory + "/model.pt2")
args = []
for spec in manifest["signature"]["inputs"]:
    shape = [3, *spec["shape"][1:]]
    if spec["dtype"] == "int64":
        args.append(torch.randint(0, spec["vocab"] or 2, shape))
    else:
        args.append(torch.randn(shape))
print(json.dumps([list(t.shape) for t in runner(*args)]))
assert "dwc" not in sys.modules
"""


def test_the_package_loads_with_torch_alone(trained):
    _, _, out = trained
    proc = subprocess.run([sys.executable, "-c", LOAD_WITH_TORCH_ALONE, str(out)],
                          capture_output=True, text=True, cwd=out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [[3, 1]]


def test_a_package_from_another_torch_is_refused(trained, tmp_path):
    _, _, out = trained
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in out.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["target"]["torch"] = "1.0.0"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="built with torch 1.0.0"):
        load(copy)


def _keep_prepacked(monkeypatch):
    """Builds keep the prepacked package from PREPACKED_FROM rows, whatever it measures (the
    verdict depends on this machine's timing; the tests need both packages)."""
    from dwc.backends import aoti_export

    monkeypatch.setattr(aoti_export, "prepacked_verdict", lambda im, plain, prepacked, top: (
        aoti_export.PREPACKED_FROM, {aoti_export.PREPACKED_FROM: 0.5}))


@pytest.mark.parametrize("path", EXAMPLES, ids=example_ids())
def test_every_example_verifies_through_aoti(path, capsys, monkeypatch):
    """`dwc verify --targets aoti` on every example, both packages (plain and prepacked) at
    every batch; the quick wrapper (O0) keeps each build to ~6 s, and the kernels it calls are
    the same as O1's."""
    _keep_prepacked(monkeypatch)
    assert main(["verify", str(path), "--targets", "aoti", "--wrapper-opt", "O0",
                 "--batches", "1,33"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("aoti")]
    assert {(line.split()[0], line.split()[2]) for line in lines} == {
        (package, batch) for package in ("aoti", "aoti-prepacked") for batch in ("1", "33")}
    assert all(line.endswith("ok") for line in lines)


def test_the_packages_loops_run_on_every_core():
    """The batch is exported with a realistic size hint, so TorchInductor splits the kernels'
    batch loops across threads (planned for the 2 rows of a plain export, every loop ran on one
    core)."""
    import io
    import zipfile

    from dwc.backends.aoti_export import build_aoti
    from dwc.backends.export import inference_model
    from dwc.driver import compile_source, load_source

    result = compile_source(load_source(ROOT / "examples" / "ctr_mlp.dw"), "torch")
    im = inference_model(result.files["model.py"], result.inference.model, None)
    package = zipfile.ZipFile(io.BytesIO(build_aoti(im, 8192, "O0")))
    kernels = "".join(package.read(n).decode() for n in package.namelist()
                      if n.endswith(".kernel.cpp"))
    assert kernels.count("extern \"C\"") >= 2  # the input gathers, the activations
    assert "#pragma omp parallel" in kernels


_KERNEL = """extern "C" void cpp_fused_sum_0(const float* in_ptr0, float* out_ptr0, const int64_t ks0)
{
    #pragma omp parallel
    {
        #pragma omp for
        for(int64_t x0=0; x0<ks0; x0+=1)
        {
INNER        }
    }
}
"""


@pytest.mark.parametrize(("inner", "forks"), [
    ("            out_ptr0[x0] = in_ptr0[x0];\n", False),
    ("            #pragma omp parallel\n            {\n            }\n", True),  # per row
])
def test_a_parallel_region_inside_a_loop_is_detected(inner, forks):
    import io
    import zipfile

    from dwc.backends.aoti_export import forks_per_iteration

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("m/data/aotinductor/model/k.kernel.cpp", _KERNEL.replace("INNER", inner))
        archive.writestr("m/data/aotinductor/model/w.wrapper.cpp", "#pragma omp parallel\n")
    assert forks_per_iteration(buffer.getvalue()) is forks


BAG_SPEC = """
model bags
feature item : categorical(vocab = 50, dim = 8)
feature summed : sequence(item, max_len = 6, pool = sum)
feature averaged : sequence(item, max_len = 4, pool = mean)
feature highest : sequence(item, max_len = 5, pool = max)
x = concat(item, summed, averaged, highest)
output y = sigmoid(linear(x, 1)) loss = bce
"""


def test_pooled_sequences_become_embedding_bags():
    """The masked embedding sums of sum and mean pooling become ATen embedding bags in the
    AOTInductor build's graph, computing the same; max pooling keeps its form."""
    from dwc.backends.aoti_bags import pool_sequences_as_bags
    from dwc.backends.export import example_args, export_program, inference_model
    from tests.conftest import compile_text

    result, _ = compile_text(BAG_SPEC, "bags.dw", target="torch")
    im = inference_model(result.files["model.py"], result.inference.model, None)
    program = export_program(im, 64, 16)
    args = example_args(im, 9)
    with torch.no_grad():
        before = program.module()(*args)
    assert pool_sequences_as_bags(program) == 2
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert targets.count(torch.ops.aten.embedding_bag.padding_idx) == 2
    assert targets.count(torch.ops.aten.embedding.default) == 2  # the item itself, and max
    with torch.no_grad():
        after = program.module()(*args)
    for old, new in zip(before, after, strict=True):
        torch.testing.assert_close(new, old, rtol=1e-6, atol=1e-6)


LHUC = ROOT / "examples" / "lhuc.dw"


@pytest.fixture(scope="module")
def prepacked(tmp_path_factory):
    """lhuc.dw compiled with --max-batch PREPACKED_FROM: both packages."""
    from dwc.backends.aoti_export import PREPACKED_FROM

    out = tmp_path_factory.mktemp("prepacked") / "out"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _keep_prepacked(monkeypatch)
        assert main(["compile", str(LHUC), "--target", "aoti", "--wrapper-opt", "O0",
                     "--max-batch", str(PREPACKED_FROM), "-o", str(out)]) == 0
    return out


def test_the_prepacked_package_is_timed_against_the_plain_one(prepacked):
    """The verdict times both packages at the sizes it measures (here only PREPACKED_FROM, the
    --max-batch) and keeps the prepacked one from the smallest size where it, and every larger
    one, takes at most VERDICT_MARGIN of the plain one's time."""
    from dwc.backends import aoti_export
    from dwc.backends.export import inference_model
    from dwc.driver import compile_source, load_source

    result = compile_source(load_source(LHUC), "torch")
    im = inference_model(result.files["model.py"], result.inference.model, None)
    top = aoti_export.PREPACKED_FROM
    serving, ratios = aoti_export.prepacked_verdict(
        im, (prepacked / "model.pt2").read_bytes(),
        (prepacked / "model-prepacked.pt2").read_bytes(), top)
    assert list(ratios) == [top] and ratios[top] > 0
    assert serving == (top if ratios[top] <= aoti_export.VERDICT_MARGIN else None)
    serving_from = aoti_export.serving_from
    assert serving_from({1024: 0.7, 4096: 0.6, 8192: 0.5}) == 1024
    assert serving_from({1024: 1.2, 4096: 0.9, 8192: 0.5}) == 4096
    assert serving_from({1024: 0.5, 4096: 1.1, 8192: 0.5}) == 8192  # only the sizes above
    assert serving_from({1024: 0.5, 4096: 0.6, 8192: 0.97}) is None


def test_large_batches_run_on_the_prepacked_package(prepacked, tmp_path):
    """With --max-batch of PREPACKED_FROM or more the artifact also holds the prepacked package;
    the runtime sends each call to the package made for its batch, and both compute what the
    torch module computes. --no-prepack builds the plain one alone."""
    from dwc.backends.aoti_export import PREPACKED_FROM
    from tests.conftest import compile_example

    _, cls = compile_example(LHUC)
    out = prepacked
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json", "model-prepacked.pt2", "model.pt2", "spec.dw"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"]["prepacked"] == "model-prepacked.pt2"
    assert manifest["target"]["prepacked_from"] == PREPACKED_FROM
    artifact = load(out)
    packages = artifact.packages()
    assert sorted(packages) == ["model-prepacked.pt2", "model.pt2"]

    ran = []

    def recording(label, pair):
        runner, flat_run = pair
        return runner, lambda tensors: ran.append(label) or flat_run(tensors)

    artifact._plain = recording("plain", artifact._plain)
    artifact._prepacked = recording("prepacked", artifact._prepacked)
    torch.manual_seed(0)  # the weights `dwc compile` gives a spec without --weights
    reference = cls(validate_inputs=False).eval()
    for batch in (1, PREPACKED_FROM - 1, PREPACKED_FROM):
        inputs = cls.example_inputs(batch, torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = reference(inputs)
        ran.clear()
        served = artifact(inputs)
        assert ran == ["prepacked" if batch >= PREPACKED_FROM else "plain"], batch
        for name, run in {"served": lambda x, got=served: got, **artifact.packages()}.items():
            for key, value in run(inputs).items():
                assert np.abs(value - expected[key].numpy()).max() <= 1e-4, (batch, name, key)

    bare = tmp_path / "bare"  # --no-prepack: not even built
    assert main(["compile", str(LHUC), "--target", "aoti", "--wrapper-opt", "O0", "--no-prepack",
                 "--max-batch", str(PREPACKED_FROM), "-o", str(bare)]) == 0
    assert "model-prepacked.pt2" not in {p.name for p in bare.iterdir()}
    assert list(load(bare).packages()) == ["model.pt2"]


@pytest.mark.parametrize("damage", ["missing", "truncated", "threshold", "unlisted"])
def test_a_damaged_prepacked_package_is_a_clear_error(prepacked, tmp_path, damage):
    """A prepacked package that is gone or cut short, or a manifest whose prepacked entries do
    not fit together, is refused on load with what to do."""
    import shutil

    out = shutil.copytree(prepacked, tmp_path / "out")
    package = out / "model-prepacked.pt2"
    manifest = json.loads((out / "manifest.json").read_text())
    if damage == "missing":
        package.unlink()
    elif damage == "truncated":
        package.write_bytes(package.read_bytes()[:4096])
    elif damage == "threshold":
        manifest["target"]["prepacked_from"] = "1024"
    else:
        del manifest["target"]["prepacked_from"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="rebuild the artifact"):
        load(out)


def test_only_a_mask_per_id_makes_an_embedding_bag():
    """A mask that broadcasts over the batch (1 x T) weights no id of its own: not rewritten."""
    from torch.nn import functional as F

    from dwc.backends.aoti_bags import pool_sequences_as_bags

    class Broadcast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Parameter(torch.randn(10, 4))

        def forward(self, ids):
            mask = (torch.arange(ids.shape[1]) < 2).to(torch.float32).unsqueeze(0)  # 1 x T
            return (F.embedding(ids, self.table) * mask.unsqueeze(2)).sum(dim=1)

    ids = torch.randint(0, 10, (4, 3))
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(Broadcast(), (ids,), dynamic_shapes=({0: batch},))
    assert pool_sequences_as_bags(program) == 0


class _Products(torch.nn.Module):
    """Four batched products: per-sample 3 x 4 times 4 x 8 (rewritten), per-sample 1 x 4 times
    4 x 8 (a vector: kept), per-sample 8 x 16 times 16 x 50 (too large: kept), and 2 x B x 4
    times 2 x 4 x 8 over a static batch of two (kept)."""

    def __init__(self):
        super().__init__()
        self.towers = torch.nn.Parameter(torch.randn(2, 4, 8))

    def forward(self, rows, vector, weights, wide, wider, shared):
        products = (torch.bmm(rows, weights), torch.bmm(vector, weights), torch.bmm(wide, wider),
                    torch.bmm(shared, self.towers))
        return tuple(torch.relu(p) for p in products)  # an output itself is never rewritten


def test_only_small_per_sample_products_become_reductions():
    """A per-sample bmm of at most MAX_MACS multiplies (and more than one row) becomes a
    multiply and a sum over the shared dimension in the AOTInductor build's graph, computing the
    same; vectors, large matrices and a static batch keep their bmm."""
    from dwc.backends.aoti_per_sample import MAX_MACS, reduce_per_sample_products

    assert 3 * 4 * 8 <= MAX_MACS < 8 * 16 * 50
    args = (torch.randn(5, 3, 4), torch.randn(5, 1, 4), torch.randn(5, 4, 8),
            torch.randn(5, 8, 16), torch.randn(5, 16, 50), torch.randn(2, 5, 4))
    batch = torch.export.Dim("batch", min=2, max=64)
    program = torch.export.export(_Products(), args, dynamic_shapes=(
        *({0: batch} for _ in range(5)), {1: batch}))
    with torch.no_grad():
        before = program.module()(*args)
    assert reduce_per_sample_products(program) == 1
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert targets.count(torch.ops.aten.bmm.default) == 3
    assert torch.ops.aten.sum.dim_IntList in targets
    with torch.no_grad():
        after = program.module()(*args)
    for old, new in zip(before, after, strict=True):
        torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-5)


def test_hmoe_mixes_its_experts_as_a_reduction():
    """HMoE's per-scenario expert mixing (B x T x E times B x E x H) is the product the rewrite
    is for: exactly one bmm of the example's exported graph becomes a reduction."""
    from dwc.backends.aoti_per_sample import reduce_per_sample_products
    from dwc.backends.export import export_program, inference_model
    from tests.conftest import compile_example

    result, _ = compile_example(ROOT / "examples" / "hmoe.dw", target="torch")
    im = inference_model(result.files["model.py"], result.inference.model, None)
    assert reduce_per_sample_products(export_program(im, 64, 16)) == 1
