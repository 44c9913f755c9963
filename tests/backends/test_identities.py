"""The equivalences the passes rely on (low-rank, shared and decomposed forms of a dynamic
layer), as executable checks."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import ROOT, compile_example, compile_text

GATED = """
model gated
feature a : categorical(vocab = 20, dim = 8)
feature s : categorical(vocab = 4, dim = 4) scenario
condition z = concat(s)
pp = ppnet(a, [12, 6], by = z, placement = {placement})
base = mlp(a, [12, 6])
output y = sigmoid(linear(pp, 1)) loss = bce
output y_base = sigmoid(linear(base, 1)) loss = bce
"""


def test_ppnet_with_gates_at_one_is_the_base_mlp():
    for placement in ("pre_linear", "post_linear", "post_activation", "post_dropout"):
        _, cls = compile_text(GATED.replace("{placement}", placement))
        model = cls().eval()
        with torch.no_grad():
            for i in range(2):
                getattr(model, f"base_fc{i}").load_state_dict(
                    getattr(model, f"pp_fc{i}").state_dict())
                gate = getattr(model, f"pp_gate{i}")
                gate.out.weight.zero_()
                gate.out.bias.zero_()  # 2 * sigmoid(0) = 1
            model.y_base.load_state_dict(model.y.state_dict())
            out = model(cls.example_inputs(17))
        torch.testing.assert_close(out["y"], out["y_base"], rtol=0, atol=1e-6)


def test_lhuc_starts_as_the_base_mlp():
    result, cls = compile_example(ROOT / "examples" / "lhuc.dw")
    model = cls().eval()
    inputs = cls.example_inputs(13)
    with torch.no_grad():
        x = torch.cat([model.user_id_embedding(inputs["user_id"]),
                       model.item_id_embedding(inputs["item_id"]),
                       model.category_embedding(inputs["category"])], dim=1)
        h = torch.relu(model.h2_fc0(torch.relu(model.h1_fc0(x))))
        expected = torch.sigmoid(model.ctr(h))
        torch.testing.assert_close(model(inputs)["ctr"], expected, rtol=0, atol=1e-6)


STAR = """
model star_identity
feature a : categorical(vocab = 20, dim = 8)
feature d : categorical(vocab = 5, dim = 2) scenario
n = partitioned_norm(a, by = d)
h = star(n, [6, 3], by = d, last_act = false)
output y = identity(h) loss = mse
"""


def test_star_with_neutral_domain_parameters_is_the_shared_model():
    """W_p = 1, b_p = 0, gamma_p = 1, beta_p = 0 => the shared FCN on shared-normalised inputs."""
    _, cls = compile_text(STAR)
    torch.manual_seed(0)
    model = cls()
    inputs = cls.example_inputs(64, torch.Generator().manual_seed(3))
    model.train()
    model(inputs)  # gather per-domain running statistics
    with torch.no_grad():  # random shared parameters; domain parameters stay neutral
        for p in (model.n_norm.weight, model.n_norm.bias, model.h_fc0.weight, model.h_fc0.bias,
                  model.h_fc1.weight, model.h_fc1.bias):
            p.copy_(torch.randn_like(p))
    model.eval()
    with torch.no_grad():
        d = inputs["d"]
        a = model.a_embedding(inputs["a"])
        norm = model.n_norm
        x = (a - norm.running_mean[d]) / torch.sqrt(norm.running_var[d] + norm.eps)
        x = x * norm.weight + norm.bias
        h = torch.relu(x @ model.h_fc0.weight + model.h_fc0.bias)
        expected = h @ model.h_fc1.weight + model.h_fc1.bias
        torch.testing.assert_close(model(inputs)["y"], expected, rtol=1e-5, atol=1e-5)


def test_star_training_path_equals_exported_gather_path():
    """Grouping by domain (eager) and gathering per-sample weights (torch.export) agree."""
    _, cls = compile_text(STAR)
    model = cls()
    with torch.no_grad():
        for layer in (model.h_fc0, model.h_fc1):
            layer.domain_weight.copy_(torch.rand_like(layer.domain_weight) + 0.5)
            layer.domain_bias.copy_(torch.randn_like(layer.domain_bias))
    x = torch.randn(40, 8)
    domain = torch.randint(0, 5, (40,))
    rows = cls.forward.__globals__["_dwc_domain_rows"](domain)
    assert rows is not None and len(rows[1]) > 1  # several domains, grouped
    grouped = model.h_fc0(x, domain, rows)
    exported = torch.export.export(model.h_fc0, (x, domain, None)).module()
    torch.testing.assert_close(grouped, exported(x, domain, None), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grouped, model.h_fc0(x, domain, None), rtol=1e-5, atol=1e-5)


def test_partitioned_norm_uses_each_domains_own_batch_statistics():
    _, cls = compile_text(STAR)
    model = cls().train()
    x = torch.randn(30, 8) * 3 + 1
    domain = torch.tensor([0] * 10 + [1] * 20)
    out = model.n_norm(x, domain)
    for d in (0, 1):
        rows = out[domain == d]
        torch.testing.assert_close(rows.mean(0), torch.zeros(8), rtol=0, atol=1e-5)
        torch.testing.assert_close(rows.var(0, unbiased=False), torch.ones(8), rtol=0, atol=1e-3)


def test_partitioned_norm_at_inference_applies_the_running_statistics():
    """Eval folds statistics and affine into one scale and shift per domain; the result must be
    the definition: (x - mean[d]) / sqrt(var[d] + eps) * (w * w_d) + (b + b_d)."""
    _, cls = compile_text(STAR)
    norm = cls().n_norm
    torch.manual_seed(0)
    with torch.no_grad():
        for p in (norm.weight, norm.bias, norm.domain_weight, norm.domain_bias, norm.running_mean):
            p.normal_()
        norm.running_var.uniform_(0.5, 2.0)
    x, domain = torch.randn(30, 8), torch.randint(0, 2, (30,))
    expected = ((x - norm.running_mean[domain]) / torch.sqrt(norm.running_var[domain] + norm.eps)
                * (norm.weight * norm.domain_weight[domain]) + norm.bias + norm.domain_bias[domain])
    torch.testing.assert_close(norm.eval()(x, domain), expected, rtol=1e-5, atol=1e-5)


def test_apg_with_constant_condition_is_a_static_mlp():
    result, cls = compile_example(ROOT / "examples" / "apg.dw")
    model = cls().eval()
    inputs = cls.example_inputs(9)
    inputs["country"].fill_(2)
    inputs["page"].fill_(1)
    with torch.no_grad():
        z = torch.cat([model.country_embedding.weight[2], model.page_embedding.weight[1]])[None]
        h = torch.cat([model.user_id_embedding(inputs["user_id"]),
                       model.item_id_embedding(inputs["item_id"]),
                       model.category_embedding(inputs["category"]),
                       _pool(model, inputs)], dim=1)
        for i, k in enumerate((32, 16, 8)):
            g = getattr(model, f"h_generator{i}")(z)[0]
            f = getattr(model, f"h_fc{i}")
            w = f.u() @ g[: k * k].reshape(k, k) @ f.v()  # one static weight for everyone
            h = torch.relu(h @ w + g[k * k :])
        expected = torch.sigmoid(model.ctr(h))
        torch.testing.assert_close(model(inputs)["ctr"], expected, rtol=1e-5, atol=1e-5)


def _pool(model, inputs):
    ids, lengths = inputs["history"], inputs["history_len"]
    emb = model.item_id_embedding(ids)
    mask = (torch.arange(ids.shape[1])[None] < lengths[:, None]).unsqueeze(2)
    return (emb * mask).sum(1) / lengths.clamp(min=1)[:, None]


def test_every_per_domain_path_computes_the_same_layer():
    """_dwc_per_domain_linear picks one domain's matmul (one domain present), per-sample weight
    gathers (few rows per domain), grouped matmuls (many) or the traced side-by-side form; each
    must equal x[b] @ W[d[b]] + b[d[b]], with and without a bias."""
    _, cls = compile_text(STAR)
    helpers = cls.forward.__globals__
    rows_of, linear = helpers["_dwc_domain_rows"], helpers["_dwc_per_domain_linear"]
    torch.manual_seed(0)
    weight, bias = torch.randn(3, 64, 64), torch.randn(3, 64)
    for batch, domain in ((1, torch.tensor([2])), (8, torch.tensor([0, 2, 2, 0, 1, 0, 2, 2])),
                          (64, torch.randint(0, 3, (64,))), (64, torch.full((64,), 1))):
        x = torch.randn(batch, 64)
        expected = torch.einsum("bi,bio->bo", x, weight[domain])
        rows = rows_of(domain)
        # one domain present (B = 1, the constant batch): its matmul; otherwise B x in x out
        # floats against 32K per domain present picks the per-sample gather (B = 8) or groups
        present = len(rows[1])
        assert present == 1 or (batch * 64 * 64 <= 32768 * present) == (batch == 8)
        # a small batch of one domain is grouped as it stands: no sort (order None)
        assert (rows[0] is None) == (present == 1)
        for r in (rows, None):
            torch.testing.assert_close(linear(x, domain, r, weight, None), expected)
            torch.testing.assert_close(linear(x, domain, r, weight, bias),
                                       expected + bias[domain])
        # a batch already grouped by domain (order None): slices, written in place without
        # autograd, concatenated with it
        order = torch.arange(batch) if rows[0] is None else rows[0]
        grouped = (None, *rows[1:])
        for grad in (False, True):
            with torch.set_grad_enabled(grad):
                for b in (None, bias):
                    y = linear(x[order], domain[order], grouped, weight, b)
                    torch.testing.assert_close(
                        y, (expected + (0 if b is None else b[domain]))[order])


@pytest.mark.parametrize("batch", [8, 3000])
def test_scenario_meta_attention_equals_the_generated_meta_unit(batch):
    """fold-scenario-layers' per-cell M2M meta attention (task rows folded into the first
    layer's bias) computes what the training unit computes from each sample's generated numbers,
    on every path: per-row gathers (B = 8), one matmul per cell (B = 3000), a batch already
    grouped by cell, and the traced form (rows None)."""
    _, cls = compile_example(ROOT / "examples" / "m2m.dw")
    rows_of = cls.forward.__globals__["_dwc_domain_rows"]
    torch.manual_seed(0)
    model = cls().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    served = model.for_inference()
    unit, folded = model.r1_attention, served.r1_attention
    assert unit.slots[0][0] == 0  # r1's meta unit comes first in the generated numbers
    generated = model._scenario_table_s_generated()[:, : unit.slots[-1][2]]
    experts = torch.randn(batch, 4, 16)
    cell = torch.randint(0, 24, (batch,))
    with torch.no_grad():
        expected = unit(experts, generated[cell])
        rows = rows_of(cell)
        for r in (rows, None):
            torch.testing.assert_close(folded(experts, cell, r), expected)
        order = rows[0]
        grouped = folded(experts[order], cell[order], (None, *rows[1:]))
        torch.testing.assert_close(grouped, expected[order])


def test_grouped_batch_keeps_the_callers_row_order(monkeypatch):
    """The inference form reorders the batch by cell once (large batches with several cells) and
    restores the caller's order: outputs equal the training form's, row for row, whether or not
    the batch was grouped."""
    _, cls = compile_text(STAR)
    helpers = cls.forward.__globals__
    group, reordered = helpers["_dwc_group_batch"], []

    def spy(*args):
        out = group(*args)
        reordered.append(out[2] is not None)
        return out

    monkeypatch.setitem(helpers, "_dwc_group_batch", spy)
    torch.manual_seed(0)
    model = cls().eval()
    with torch.no_grad():
        for layer in (model.h_fc0, model.h_fc1):
            layer.domain_weight.uniform_(0.5, 1.5)
    folded = model.for_inference()
    for batch in (1, 5, 5000):
        inputs = cls.example_inputs(batch, torch.Generator().manual_seed(batch))
        with torch.no_grad():
            torch.testing.assert_close(folded(inputs)["y"], model(inputs)["y"])
    # grouped only when B x (widest cell matrix, 8 x 6) exceeds 32K per cell present
    assert reordered == [False, False, True]


@pytest.mark.parametrize("rows", [5, 400])
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_sequence_pooling_reads_only_the_valid_prefix(mode, rows, monkeypatch):
    """Eager sum/mean pool a small batch as the looked-up embeddings times the mask and a large
    one (from 2048 ids) through one embedding_bag; exported ones mask the looked-up embeddings.
    Every path must pool exactly ids[b, :lengths[b]], an empty sequence giving zeros."""
    _, cls = compile_example(ROOT / "examples" / "ctr_mlp.dw")
    pool = cls.forward.__globals__["_dwc_seq_pool"]
    bags = []
    bag = torch.nn.functional.embedding_bag
    monkeypatch.setattr(torch.nn.functional, "embedding_bag",
                        lambda *a, **k: bags.append(1) or bag(*a, **k))
    torch.manual_seed(0)
    weight, ids = torch.randn(30, 4), torch.randint(0, 30, (rows, 6))
    lengths = torch.randint(0, 7, (rows,))
    lengths[:5] = torch.tensor([0, 1, 3, 6, 2])
    samples = [weight[ids[b, :n]] for b, n in enumerate(lengths.tolist())]
    reduce = {"sum": lambda r: r.sum(0), "mean": lambda r: r.mean(0),
              "max": lambda r: r.amax(0)}[mode]
    expected = torch.stack([reduce(r) if len(r) else torch.zeros(4) for r in samples])

    class Pool(torch.nn.Module):
        def forward(self, w, i, n):
            return pool(w, i, n, mode)

    exported = torch.export.export(Pool(), (weight, ids, lengths)).module()
    assert "embedding_bag" not in str(exported.graph)  # the exporter's path is the masked one
    torch.testing.assert_close(pool(weight, ids, lengths, mode), expected)
    assert len(bags) == (rows == 400 and mode != "max")  # 2400 ids: the bag; 30: the mask
    torch.testing.assert_close(exported(weight, ids, lengths), expected)


def test_attention_pooling_is_ptupcdrs_characteristic_encoder():
    """a_j = w2 . relu(W1 v_j + b1) over the valid prefix only, softmax, sum of a_j v_j; an empty
    history gives zeros, and what sits in the padding never matters."""
    _, cls = compile_example(ROOT / "examples" / "ptupcdr.dw")
    pool = cls().src_history_attention
    torch.manual_seed(0)
    embedded, lengths = torch.randn(5, 6, 10), torch.tensor([0, 1, 3, 6, 2])
    expected = []
    with torch.no_grad():
        for b, n in enumerate(lengths.tolist()):
            v = embedded[b, :n]
            a = torch.relu(v @ pool.hidden.weight.T + pool.hidden.bias) @ pool.score.weight[0]
            expected.append(torch.softmax(a, 0) @ v if n else torch.zeros(10))
        torch.testing.assert_close(pool(embedded, lengths), torch.stack(expected))
        noisy = embedded.clone()
        noisy[0], noisy[1, 1:] = 1e3, -1e3  # padding only
        torch.testing.assert_close(pool(noisy, lengths), torch.stack(expected))


TANH = """
model t
feature a : numeric(width = 64)
h = activation(linear(a, 64), tanh)
output y = identity(h) loss = mse
"""


@pytest.mark.parametrize("batch", [3, 500])
def test_tanh_forms_compute_tanh_with_its_gradient(batch):
    """Large CPU tensors take tanh = 2 sigmoid(2x) - 1 (B = 500: 32K elements), small ones
    torch.tanh (B = 3); out of place and in place, with and without autograd, both must give
    tanh and its gradient 1 - tanh^2; exported graphs keep a Tanh node."""
    _, cls = compile_text(TANH)
    helpers = cls.forward.__globals__
    tanh, tanh_ = helpers["_dwc_tanh"], helpers["_dwc_tanh_"]
    x = torch.randn(batch, 64) * 3
    expected = torch.tanh(x)
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            torch.testing.assert_close(tanh(x), expected, atol=3e-7, rtol=0)
            torch.testing.assert_close(tanh_(x.clone()), expected, atol=3e-7, rtol=0)
    leaf = x.clone().requires_grad_()
    (tanh(leaf) * x).sum().backward()
    torch.testing.assert_close(leaf.grad, (1 - expected**2) * x, atol=3e-6, rtol=1e-5)
    leaf.grad = None
    (tanh_(leaf * 1.0) * x).sum().backward()  # in place on a fresh tensor
    torch.testing.assert_close(leaf.grad, (1 - expected**2) * x, atol=3e-6, rtol=1e-5)
    exported = torch.export.export(cls().eval(), ({"a": x},)).module()
    assert "tanh" in str(exported.graph) and "sigmoid" not in str(exported.graph)


def test_generator_hidden_tanh_is_tanh():
    """A generator's hidden layers use the same tanh (an nn.Sequential module around it)."""
    spec = ("model g\nfeature a : numeric(width = 4)\n"
            "feature s : categorical(vocab = 3, dim = 600) scenario\ncondition z = concat(s)\n"
            "h = linear(a, 2) dynamic(by = z, hidden = [40], act = tanh)\n"
            "output y = identity(h) loss = mse\n")
    _, cls = compile_text(spec)
    model = cls().eval()
    generator = model.h_generator
    assert type(generator[1]).__name__ == "_DwcTanh"
    z = torch.randn(500, 600)  # 500 x 40 hidden units: the sigmoid form
    with torch.no_grad():
        expected = generator[2](torch.tanh(generator[0](z)))
        torch.testing.assert_close(generator(z), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("experts", [4, 12])
def test_softmax_over_experts_is_a_row_softmax(experts):
    """Both forms (the transposed one for <= 8 experts) give each row's softmax."""
    _, cls = compile_example(ROOT / "examples" / "m2m.dw")
    softmax = cls.forward.__globals__["_dwc_softmax_experts"]
    scores = torch.randn(300, experts) * 4
    expected = torch.exp(scores) / torch.exp(scores).sum(dim=1, keepdim=True)
    torch.testing.assert_close(softmax(scores), expected)


def test_slice_takes_the_columns_it_names():
    spec = ("model s\nfeature a : categorical(vocab = 9, dim = 4)\nh = linear(a, 5)\n"
            "output y = identity(slice(h, 1, width = 3)) loss = mse\n"
            "output z = identity(slice(h, 4)) loss = mse\n")
    _, cls = compile_text(spec)
    model = cls().eval()
    inputs = cls.example_inputs(6)
    with torch.no_grad():
        h = model.h(model.a_embedding(inputs["a"]))
        out = model(inputs)
    torch.testing.assert_close(out["y"], h[:, 1:4])
    torch.testing.assert_close(out["z"], h[:, 4:5])


def test_slice_verifies_its_columns_lie_in_the_input():
    from dwc.ir import ops as ir

    op = ir.Slice(result="y", inputs=("h",), type=ir.VecType(2), start=3)
    op.verify((ir.VecType(5),), {})
    for width in (4, 2):
        with pytest.raises(ir.VerificationError):
            op.verify((ir.VecType(width),), {})
