"""Per-sample matrix products in the AOTInductor build: one fused multiply-and-reduce each.

Several kinds multiply each sample's own small matrices: HMoE mixes its experts per scenario
(B x T x E times B x E x H), M2M's meta attention and MMoE's mix weight the experts (B x 1 x E
times B x E x H), CAN runs each sample's micro-MLP, PTUPCDR each user's bridge. Exported, each is
`bmm(a, b)` over the batch, and the plain package hands it to MKL's batched GEMM, which spends
most of its time per matrix, not per multiply: at B = 8192 HMoE's 3 x 4 times 4 x 32 mixing took
1.5 ms, a third of the forward (`TorchInductor kernel profile`, 2-core AMD EPYC). This rewrite
writes such a product as what it is,

    y[b, m, n] = sum_k a[b, m, k] * b[b, k, n]         # sum(unsqueeze(a, 3) * unsqueeze(b, 1), 2)

which TorchInductor compiles into one loop nest over the batch (no B x M x K x N intermediate),
often fused with the kernel that produced an operand. Left as they are: products of more than
MAX_MACS multiplies per sample (CAN's 8 x 16 times 16 x 50 ran 1.4-2x slower rewritten), a
vector times a matrix per sample (M = 1: M2M's and MMoE's expert weighting, PTUPCDR's bridge,
CAN's pooled last layer, 0.94-1.08x rewritten, within noise), and a bmm whose batch is not the
program's (the per-scenario towers' T x B x H times T x H x H: few large matrices, MKL's case).
Measured on the plain package, new / old time at B = 64, 1024, 8192: HMoE 0.69, 0.73, 0.80
(an ad-hoc script alternating the two packages; `benchmarks/ab.py --targets aoti` measures it
with the whole build).
"""

from __future__ import annotations

import torch
from torch import fx

from dwc.backends.aoti_graph import called, example_value, rewrite_matches, same_size

aten = torch.ops.aten


MAX_MACS = 512
"""The most multiply-adds per sample (M x K x N) a bmm may have to be rewritten."""


def _match(node: fx.Node):
    """(a, b) of a per-sample bmm small enough to rewrite (see the module docstring), or None:
    both operands float32, 3-D, with the same symbolic first (batch) dimension and static
    matrix sizes, M x K x N at most MAX_MACS, the product not itself an output."""
    if called(node, aten.bmm.default) is None or node.kwargs or len(node.args) != 2:
        return None
    if any(user.op == "output" for user in node.users):  # its name is in the signature
        return None
    a, b = node.args
    av, bv = example_value(a), example_value(b)
    if not all(isinstance(v, torch.Tensor) and v.dim() == 3 and v.dtype == torch.float32
               for v in (av, bv)):
        return None
    if not isinstance(av.shape[0], torch.SymInt) or not same_size(av.shape[0], bv.shape[0]):
        return None  # a static batch: a few large matrices, MKL's case
    m, k, n = av.shape[1], av.shape[2], bv.shape[2]
    if not all(isinstance(d, int) for d in (m, k, n)) or m == 1 or m * k * n > MAX_MACS:
        return None  # a vector times a matrix per sample: MKL's GEMV path, no gain measured
    return a, b


def reduce_per_sample_products(program: torch.export.ExportedProgram) -> int:
    """Rewrites, in place, every small per-sample bmm of `program`'s graph into a multiply and a
    sum over the shared dimension; returns how many it rewrote. As for the other rewrites, only
    the result carries an example value: TorchInductor traces the program again before lowering
    it."""
    return rewrite_matches(program, _match, _as_reduction)


def _as_reduction(graph: fx.Graph, product: fx.Node, found) -> None:
    """Replaces one matched bmm by sum(unsqueeze(a, 3) * unsqueeze(b, 1), [2])."""
    a, b = found
    with graph.inserting_before(product):
        rows = graph.call_function(aten.unsqueeze.default, (a, 3))  # B x M x K x 1
        columns = graph.call_function(aten.unsqueeze.default, (b, 1))  # B x 1 x K x N
        terms = graph.call_function(aten.mul.Tensor, (rows, columns))
        total = graph.call_function(aten.sum.dim_IntList, (terms, [2]))
    total.meta["val"] = example_value(product)
    product.replace_all_uses_with(total)
    graph.erase_node(product)
