"""Hyperfan-in initialisation of a generator's last layer (init = hyperfan).

Inlined into every generated model.py that needs it (dwc/backends/torch/inline.py)."""

from __future__ import annotations

import torch
from torch import nn


def _dwc_hyperfan_(last: nn.Linear, slots: list[tuple[int, int, int]]) -> None:
    """Hyperfan-in init of a generator's last layer (Chang et al., ICLR 2020).

    Each output slot (start, end, fan_in) generates one target tensor; its rows are drawn so the
    generated weights have the variance of a standard fan-in init, Var = 1 / (3 * fan_in), given
    unit-variance generator features. Bias slots (fan_in 0) start at zero.
    """
    with torch.no_grad():
        last.bias.zero_()
        for start, end, fan_in in slots:
            if fan_in == 0:
                last.weight[start:end].zero_()
            else:
                bound = (1.0 / (fan_in * last.in_features)) ** 0.5
                last.weight[start:end].uniform_(-bound, bound)
