"""PTUPCDR's attention pooling of a padded sequence (the characteristic encoder).

Inlined into every generated model.py that needs it (dwc/backends/torch/inline.py)."""

from __future__ import annotations

import torch
from torch import nn


class _DwcAttentionPool(nn.Module):
    """PTUPCDR's characteristic encoder: a_j = w2 . relu(W1 v_j + b1), masked softmax, sum."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(dim, dim)
        self.score = nn.Linear(dim, 1, bias=False)

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(embedded.shape[1], device=embedded.device)
        valid = positions.unsqueeze(0) < lengths.unsqueeze(1)
        # relu in place on the fresh hidden layer output (autograd-safe: relu saves its result)
        scores = self.score(torch.relu_(self.hidden(embedded))).squeeze(2)
        weights = torch.softmax(scores.masked_fill(~valid, -1e8), dim=1) * valid
        # the weighted sum as one bmm: no B x T x dim temporary
        return torch.bmm(weights.unsqueeze(1), embedded).squeeze(1)
