"""STAR's runtime helpers against the paper's equations, on tiny hand-set examples."""

from __future__ import annotations

import pytest
import torch

from dwc.backends.torch.helpers.per_domain import _dwc_domain_rows
from dwc.backends.torch.inline import helper_source
from dwc.layers.star.runtime import _DwcStarLinear
from dwc.layers.star.runtime_partitioned_norm import _DwcPartitionedNorm

X = torch.tensor([[1.0, 2.0], [0.5, -1.0], [-2.0, 0.0], [3.0, 1.0]])
DOMAIN = torch.tensor([0, 1, 0, 1])


@pytest.mark.parametrize("grouped", [False, True])
def test_star_linear_is_shared_times_domain_weights(grouped):
    """y = x (W * W_p[d]) + (b + b_p[d]) for each sample's domain d."""
    layer = _DwcStarLinear(2, 3, domains=2)
    w = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    wp = torch.tensor([[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], [[2.0, 0.5, 0.0], [-1.0, 3.0, 1.0]]])
    b, bp = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 2.0]])
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.domain_weight.copy_(wp)
        layer.bias.copy_(b)
        layer.domain_bias.copy_(bp)
    rows = _dwc_domain_rows(DOMAIN) if grouped else None  # eager: grouped by domain
    expected = torch.stack([X[i] @ (w * wp[d]) + (b + bp[d]) for i, d in enumerate(DOMAIN)])
    torch.testing.assert_close(layer(X, DOMAIN, rows), expected)


def test_star_linear_starts_as_the_shared_model():
    layer = _DwcStarLinear(2, 3, domains=2)
    shared = X @ layer.weight + layer.bias
    torch.testing.assert_close(layer(X, DOMAIN, None), shared)


def _partitioned_norm():
    norm = _DwcPartitionedNorm(2, domains=2)
    gamma, gamma_d = torch.tensor([2.0, 0.5]), torch.tensor([[1.0, 1.0], [3.0, -1.0]])
    beta, beta_d = torch.tensor([0.1, 0.0]), torch.tensor([[0.0, 1.0], [-1.0, 2.0]])
    with torch.no_grad():
        norm.weight.copy_(gamma)
        norm.domain_weight.copy_(gamma_d)
        norm.bias.copy_(beta)
        norm.domain_bias.copy_(beta_d)
    return norm, gamma, gamma_d, beta, beta_d


def test_partitioned_norm_normalises_each_domain_by_its_own_statistics():
    """Training: z = (x - mu_d) / sqrt(var_d + eps), y = (gamma * gamma_d) z + (beta + beta_d),
    mu_d and var_d over the batch's samples of domain d; running statistics follow them."""
    norm, gamma, gamma_d, beta, beta_d = _partitioned_norm()
    y = norm.train()(X, DOMAIN)
    for d in (0, 1):
        part = X[DOMAIN == d]
        mean, var = part.mean(0), part.var(0, unbiased=False)
        z = (part - mean) / torch.sqrt(var + norm.eps)
        torch.testing.assert_close(y[DOMAIN == d], gamma * gamma_d[d] * z + beta + beta_d[d])
        torch.testing.assert_close(norm.running_mean[d], 0.1 * mean)
        torch.testing.assert_close(norm.running_var[d], 0.9 + 0.1 * part.var(0, unbiased=True))


def test_partitioned_norm_serves_with_running_statistics():
    norm, gamma, gamma_d, beta, beta_d = _partitioned_norm()
    mean, var = torch.tensor([[1.0, -1.0], [0.0, 2.0]]), torch.tensor([[4.0, 1.0], [0.25, 9.0]])
    norm.running_mean.copy_(mean)
    norm.running_var.copy_(var)
    y = norm.eval()(X, DOMAIN)
    expected = torch.stack([gamma * gamma_d[d] * (X[i] - mean[d]) / torch.sqrt(var[d] + norm.eps)
                            + beta + beta_d[d] for i, d in enumerate(DOMAIN)])
    torch.testing.assert_close(y, expected)


def test_star_helpers_inline_without_their_imports():
    code, needs = helper_source("dwc.layers.star.runtime")
    assert code.startswith("class _DwcStarLinear(nn.Module):") and "import" not in code
    assert needs == ("dwc.backends.torch.helpers.per_domain",)
    code, _ = helper_source("dwc.layers.star.runtime_partitioned_norm")
    assert code.startswith("class _DwcPartitionedNorm(nn.Module):")


def test_fold_star_marks_its_layers_by_type_not_a_derived_string():
    """The folded STAR layer is an IndexedLinear (it runs and prints as one) of its own type,
    which selects its for_inference() fold; a `linear(x, n, per = d)` stays a plain one."""
    from dwc import layers
    from dwc.driver import check_source, optimize
    from dwc.ir import ops as ir
    from dwc.layers.star.op import FoldedStarLinear
    from dwc.source import SourceFile

    spec = ("model m\nfeature a : categorical(vocab = 5, dim = 4)\n"
            "feature d : categorical(vocab = 3, dim = 2) scenario\nscenarios d\n"
            "h = star(a, [4], by = d)\n"
            "output y = sigmoid(linear(h, 1, per = d)) loss = bce\n")
    inference = optimize(check_source(SourceFile("m.dw", spec)), level=2, verify_each=True)[2]
    folded = [op for op in inference.ops if isinstance(op, ir.IndexedLinear)]
    assert [type(op) for op in folded] == [FoldedStarLinear, ir.IndexedLinear]
    assert all(op.kind == "indexed_linear" for op in folded)
    assert FoldedStarLinear in layers.torch_folds() and ir.IndexedLinear not in layers.torch_folds()


def test_star_ops_verify_their_domain_ids():
    from dwc.ir.ops import VerificationError
    from dwc.ir.types import IdsType, VecType
    from dwc.layers.star.op import PartitionedNorm, StarLinear

    star = StarLinear(result="h", inputs=("x", "d"), type=VecType(3), in_features=2,
                      out_features=3, domains=4)
    star.verify((VecType(2), IdsType(4)), {})
    norm = PartitionedNorm(result="n", inputs=("x", "d"), type=VecType(2), domains=4)
    norm.verify((VecType(2), IdsType(4)), {})
    for op, ins in ((star, (VecType(2), IdsType(3))), (star, (VecType(5), IdsType(4))),
                    (norm, (VecType(2), IdsType(5))), (norm, (VecType(3), IdsType(4)))):
        with pytest.raises(VerificationError):
            op.verify(ins, {})
