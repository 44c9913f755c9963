"""SENet at run time: inlined into every generated model.py that has a senet layer."""

import torch
from torch import nn


class _DwcSeNet(nn.Module):
    """FiBiNET SENet: squeeze each field to its mean, excite through a bias-free bottleneck."""

    def __init__(self, fields: int, dim: int, reduced: int, excite: str) -> None:
        super().__init__()
        self.fields, self.dim, self.excite = fields, dim, excite
        self.reduce = nn.Linear(fields, reduced, bias=False)
        self.expand = nn.Linear(reduced, fields, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = x.reshape(-1, self.fields, self.dim)
        a = self.expand(torch.relu(self.reduce(e.mean(dim=2))))
        a = torch.sigmoid(a) if self.excite == "sigmoid" else torch.relu(a)
        return (e * a.unsqueeze(2)).reshape(-1, self.fields * self.dim)
