"""Pooling of an embedded, padded id sequence over its valid positions.

Inlined into every generated model.py that needs it (dwc/backends/torch/inline.py)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from dwc.backends.torch.helpers.static import _dwc_is_static


def _dwc_seq_pool(
    weight: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor, mode: str
) -> torch.Tensor:
    """Pool the embeddings (rows of `weight`) of ids[b, :lengths[b]], B x T ids (empty -> zeros).

    Eager sum and mean pooling run one embedding_bag weighted by the validity mask, so the
    B x T x d embeddings are never materialised; traced or compiled (export), and for max, the
    embeddings are looked up and reduced under the mask.
    """
    positions = torch.arange(ids.shape[1], device=ids.device)
    valid = positions.unsqueeze(0) < lengths.unsqueeze(1)
    if mode == "max":
        embedded = F.embedding(ids, weight)
        pooled = embedded.masked_fill(~valid.unsqueeze(2), float("-inf")).amax(dim=1)
        return torch.where(lengths.unsqueeze(1) > 0, pooled, torch.zeros_like(pooled))
    mask = valid.to(weight.dtype)
    if _dwc_is_static():
        summed = (F.embedding(ids, weight) * mask.unsqueeze(2)).sum(dim=1)
    else:
        summed = F.embedding_bag(ids, weight, per_sample_weights=mask, mode="sum")
    if mode == "sum":
        return summed
    return summed / lengths.to(weight.dtype).clamp(min=1.0).unsqueeze(1)
