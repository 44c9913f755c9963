"""The Gate NU at run time: inlined into every generated model.py that has a gate (gate, ppnet)."""

import torch
from torch import nn


class _DwcGateNU(nn.Module):
    """PEPNet's Gate NU: gamma * sigmoid(W2 relu(W1 z + b1) + b2), one gate per element or field.

    For field gates, `fields` lists each field's width; a field's gate scales all its elements.
    Without `first_layer` (fuse-gates), forward's z is already relu(W1 z + b1): the first layers
    of every gate on the same condition ran as one GEMM.
    """

    def __init__(
        self,
        n_in: int,
        hidden: int,
        width: int,
        gamma: float,
        fields: list[int] | None = None,
        first_layer: bool = True,
    ) -> None:
        super().__init__()
        self.gamma = gamma
        gates = len(fields) if fields else width
        self.hidden = nn.Linear(n_in, hidden) if first_layer else None
        self.out = nn.Linear(hidden, gates)
        index = (
            torch.repeat_interleave(torch.arange(gates), torch.tensor(fields)) if fields else None
        )
        self.register_buffer("field_index", index, persistent=False)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # in place on fresh layer outputs (autograd-safe): two B x width allocations, not five
        hidden = z if self.hidden is None else torch.relu_(self.hidden(z))
        gate = torch.sigmoid_(self.out(hidden))
        if self.field_index is not None:
            gate = gate[:, self.field_index]
        if torch.is_grad_enabled():  # sigmoid's backward reads `gate`: leave it intact
            return (x * gate).mul_(self.gamma)
        return gate.mul_(x).mul_(self.gamma)  # no autograd: one B x width allocation
