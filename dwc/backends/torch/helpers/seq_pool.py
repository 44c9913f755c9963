"""Pooling of an embedded, padded id sequence over its valid positions.

Inlined into every generated model.py that needs it (dwc/backends/torch/inline.py)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from dwc.backends.torch.helpers.static import _dwc_is_static

_DWC_BAGGED_POOL_IDS = 2048
"""From this many ids (B x T) an eager sum or mean pool runs as one embedding_bag: below it, the
lookup times the mask costs less (at B = 1 the bag's setup is 20 us of a 55 us forward; at
B x T = 2560 the two are even; at 20K ids the bag is 2.4x faster; torch 2.13 on x86)."""


def _dwc_seq_pool(
    weight: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor, mode: str
) -> torch.Tensor:
    """Pool the embeddings (rows of `weight`) of ids[b, :lengths[b]], B x T ids (empty -> zeros).

    Eager sum and mean pooling of a large batch run one embedding_bag weighted by the validity
    mask, so the B x T x d embeddings are never materialised; a small batch, a traced or compiled
    one (export), and max pooling look the embeddings up and reduce them under the mask.
    """
    positions = torch.arange(ids.shape[1], device=ids.device)
    valid = positions.unsqueeze(0) < lengths.unsqueeze(1)
    if mode == "max":
        embedded = F.embedding(ids, weight)
        pooled = embedded.masked_fill(~valid.unsqueeze(2), float("-inf")).amax(dim=1)
        return torch.where(lengths.unsqueeze(1) > 0, pooled, torch.zeros_like(pooled))
    static = _dwc_is_static()
    if not static and ids.numel() < _DWC_BAGGED_POOL_IDS:  # few values: fewest dispatches
        summed = (F.embedding(ids, weight) * valid.unsqueeze(2)).sum(dim=1)
        return summed if mode == "sum" else summed / lengths.clamp(min=1).unsqueeze(1)
    mask = valid.to(weight.dtype)
    if static:
        summed = (F.embedding(ids, weight) * mask.unsqueeze(2)).sum(dim=1)
    else:
        summed = F.embedding_bag(ids, weight, per_sample_weights=mask, mode="sum")
    if mode == "sum":
        return summed
    # a divisor of summed's own dtype: the division's vectorised kernel (not the casting one)
    return summed / lengths.to(weight.dtype).clamp(min=1.0).unsqueeze(1)
