"""Residual initialisation of a generator's last layer (init = residual, the default for
self-wise generators).

Inlined into every generated model.py that needs it (dwc/backends/torch/inline.py)."""

from __future__ import annotations

import torch
from torch import nn


def _dwc_residual_init_(last: nn.Linear, slots: list[tuple[int, int, int]]) -> None:
    """Residual init of a generator's last layer: G(z) = W0 + A z with A = 0 at the start.

    Each output slot (start, end, fan_in) generates one target tensor; its part of the bias, W0,
    gets nn.Linear's fan-in init U(+-1/sqrt(fan_in)), so the generated layer starts as a static
    layer whatever the scale of the generator's input, and the condition's effect A is learned
    from zero. Bias slots (fan_in 0) start at zero.
    """
    with torch.no_grad():
        last.weight.zero_()
        for start, end, fan_in in slots:
            if fan_in == 0:
                last.bias[start:end].zero_()
            else:
                bound = fan_in**-0.5
                last.bias[start:end].uniform_(-bound, bound)
