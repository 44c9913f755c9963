"""M2M's meta attention at run time: inlined into every generated model.py with a
meta_attention (with the activation and softmax helpers it imports)."""

import torch
from torch import nn

from dwc.backends.torch.helpers.activation import _dwc_activation_
from dwc.backends.torch.helpers.softmax import _dwc_softmax_experts


class _DwcMetaAttention(nn.Module):
    """M2M meta attention for one task (docs/models.md, 'M2M').

    Each expert output E_i is joined with the task's learned representation T, passed through the
    meta unit (its layers' weights and biases are read from `generated`, made from the scenario
    representation), scored by v, and the experts are mixed by softmax over the scores.
    `slots` lists (weight start, bias start, bias end, in, out) per meta-unit layer.
    """

    def __init__(
        self, task_dim: int, score_dim: int, slots: list[tuple[int, ...]], act: str
    ) -> None:
        super().__init__()
        self.task = nn.Parameter(torch.randn(task_dim) * 0.1)
        self.score = nn.Parameter(torch.ones(score_dim))
        self.slots = slots
        self.act = act

    def forward(self, experts: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
        count = experts.shape[1]
        task = self.task.expand(experts.shape[0], count, -1)
        h = torch.cat([experts, task], dim=2)
        for w_start, b_start, b_end, n_in, n_out in self.slots:
            weight = generated[:, w_start:b_start].reshape(-1, n_in, n_out)
            bias = generated[:, b_start:b_end].unsqueeze(1)
            h = _dwc_activation_(torch.bmm(h, weight).add_(bias), self.act)
        alpha = _dwc_softmax_experts(h @ self.score)
        return torch.einsum("be,beh->bh", alpha, experts)
