"""The generic dynamic linear: each sample's generated weight applied to its input.

Inlined into every generated model.py that needs it (dwc/backends/torch/inline.py)."""

from __future__ import annotations

import torch


def _dwc_dynamic_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """Apply per-sample weights: y[b] = x[b] @ weight[b] (+ bias[b]); weight is B x in x out."""
    y = torch.bmm(x.unsqueeze(1), weight).squeeze(1)
    return y if bias is None else y + bias
