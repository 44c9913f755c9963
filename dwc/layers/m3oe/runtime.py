"""M3oE's STAR slot initialisation at run time: inlined into every generated model.py with an
m3oe layer. The slot itself is STAR's `_DwcStarLinear` (dwc/layers/star/runtime.py)."""

import torch
from torch import nn


def _dwc_m3oe_slot_init_(slot: nn.Module) -> None:
    """M3oE's init of its STAR slot: the shared W_s and every domain's W_d xavier-uniform (each
    an in x out matrix), both biases zero (STAR's own init starts W_d at 1)."""
    with torch.no_grad():
        nn.init.xavier_uniform_(slot.weight)
        for weight in slot.domain_weight:
            nn.init.xavier_uniform_(weight)
        slot.bias.zero_()
        slot.domain_bias.zero_()
