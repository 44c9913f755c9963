"""Pooled id sequences in the AOTInductor build: one embedding bag each.

A sequence feature's sum or mean pooling (`_dwc_seq_pool`) runs eagerly as `embedding_bag`
weighted by the validity mask from 2,048 ids (below, as the lookup times the mask). Traced,
it takes the form every exporter understands (ONNX has no embedding bag), and torch.export
records

    summed = sum(embedding(W, ids) * unsqueeze(mask, 2), [1])      # ids, mask: B x T

TorchInductor compiles that into one loop nest vectorised along the T steps, each lane a gather
from a different row of W: at B = 8192, T = 20, d = 16 it took 2.6 ms where ATen's embedding
bag, which reads each row's d contiguous values, takes 0.6 ms (ctr_mlp's whole forward: 3.7 ms,
ORT 2.6 ms). This rewrite gives the AOTInductor build the eager form back: the graph then calls
ATen's `embedding_bag` with the mask as per-sample weights, and the B x T x d embeddings are
never materialised.
"""

from __future__ import annotations

import operator

import torch

from dwc.backends.aoti_graph import called, example_value, rewrite_matches, same_size

aten = torch.ops.aten


def _tensor(node, dims: int, *dtypes) -> torch.Tensor | None:
    """The example value of `node` if it is a tensor of `dims` dimensions and one of `dtypes`."""
    found = example_value(node)
    if isinstance(found, torch.Tensor) and found.dim() == dims and found.dtype in dtypes:
        return found
    return None


def _match(total):
    """(weight, ids, mask, the embedding node, the mask's unsqueeze node) of a masked
    embedding sum over the steps, or None.

    Exactly the exported form: sum(mul(embedding(W, ids), unsqueeze(mask, 2)), [1]) (the mul
    either way round) with W float32 V x d, ids int32/int64 B x T, mask float32 B x T, and the
    embedding and the product used by nothing else."""
    if called(total, aten.sum.dim_IntList) is None or total.kwargs or len(total.args) != 2 \
            or not isinstance(total.args[1], (list, tuple)) or list(total.args[1]) != [1]:
        return None
    if any(user.op == "output" for user in total.users):  # its name is in the signature
        return None
    product = called(total.args[0], aten.mul.Tensor)
    if product is None or len(product.users) != 1 or product.kwargs:
        return None
    for looked_up, widened in (product.args, product.args[::-1]):
        embedding = called(looked_up, aten.embedding.default)
        unsqueeze = called(widened, aten.unsqueeze.default)
        if embedding is None or unsqueeze is None or len(embedding.users) != 1 \
                or len(embedding.args) != 2 or embedding.kwargs or unsqueeze.args[1] not in (2, -1):
            continue
        weight, ids = embedding.args
        mask = unsqueeze.args[0]
        wv = _tensor(weight, 2, torch.float32)
        iv = _tensor(ids, 2, torch.int32, torch.int64)
        mv = _tensor(mask, 2, torch.float32)
        if wv is None or iv is None or mv is None or not isinstance(iv.shape[1], int):
            continue
        if not (same_size(mv.shape[0], iv.shape[0]) and mv.shape[1] == iv.shape[1]):
            continue  # one weight per id: a broadcast mask would not do
        return weight, ids, mask, embedding, unsqueeze
    return None


def pool_sequences_as_bags(program: torch.export.ExportedProgram) -> int:
    """Rewrites, in place, every masked embedding sum of `program`'s graph (see the module
    docstring) into an embedding bag; returns how many it rewrote. Anything else is left as it
    is; the embedding and the product it replaces are removed (the mask stays: the bag reads
    it, and a mean divides by the lengths it was made from). Only the bag's result carries an
    example value (`meta["val"]`): TorchInductor traces the program again before lowering it,
    as for `gather_reduce_per_cell`."""
    return rewrite_matches(program, _match, _as_bag)


def _as_bag(graph, total, found) -> None:
    """Replaces one matched masked sum (`_match`'s `found`) by an embedding bag."""
    weight, ids, mask, embedding, unsqueeze = found
    steps = example_value(ids).shape[1]
    product = total.args[0]
    with graph.inserting_before(total):
        flat_ids = graph.call_function(aten.reshape.default, (ids, [-1]))
        flat_mask = graph.call_function(aten.reshape.default, (mask, [-1]))
        count = graph.call_function(aten.sym_numel.default, (ids,))
        offsets = graph.call_function(aten.arange.start_step, (0, count, steps), {
            "dtype": example_value(ids).dtype, "device": example_value(ids).device})
        # mode 0 = sum, weighted per position by the mask
        bag = graph.call_function(aten.embedding_bag.padding_idx, (
            weight, flat_ids, offsets, False, 0, False, flat_mask, False, None))
        pooled = graph.call_function(operator.getitem, (bag, 0))
    pooled.meta["val"] = example_value(total)
    total.replace_all_uses_with(pooled)
    for dead in (total, product, embedding):
        graph.erase_node(dead)
    if not unsqueeze.users:
        graph.erase_node(unsqueeze)
