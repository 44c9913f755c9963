"""LHUC at run time: inlined into every generated model.py that has an lhuc layer."""

import torch
from torch import nn


class _DwcLhuc(nn.Module):
    """LHUC: h * 2 sigmoid(r[id]); r starts at 0, so every gate starts at exactly 1.

    With few condition ids (scenario cells) the gates are computed for the table and then
    gathered, which is the same elementwise sigmoid on the same values: conditions x width of
    work instead of batch x width (at B = 1024 with 24 cells, 43x fewer sigmoids, and an
    exported graph whose per-sample part is a gather and a product). A large table (an id
    feature) gathers first. `folded=True` is the inference form: it holds the gates themselves
    (`gate`, 2 sigmoid(r) per id, computed by `for_inference()`), so a sample's gate is a gather.
    """

    TABLE_FIRST = 256
    """Up to this many condition ids, the sigmoid runs on the table."""

    def __init__(self, conditions: int, width: int, folded: bool = False) -> None:
        super().__init__()
        self.folded = folded
        if folded:
            self.gate = nn.Parameter(torch.ones(conditions, width))
        else:
            self.scale = nn.Parameter(torch.zeros(conditions, width))

    def gates(self) -> torch.Tensor:
        """Every condition id's gates, 2 sigmoid(r) (conditions x width)."""
        return 2.0 * torch.sigmoid(self.scale)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        if self.folded:
            return x * self.gate.index_select(0, ids)
        if self.scale.shape[0] <= self.TABLE_FIRST:
            return x * self.gates().index_select(0, ids)
        return x * (2.0 * torch.sigmoid(self.scale.index_select(0, ids)))
