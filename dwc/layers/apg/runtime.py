"""APG's low-rank factors at run time: inlined into every generated model.py that has a
low-rank dynamic layer (apg(...), or the lowrank pass)."""

import torch
from torch import nn


class _DwcLowRankFactors(nn.Module):
    """APG's static factors U (in x rank) and V (rank x out), shared by every sample.

    With over-parameterisation (overparam = P) they are trained as products of larger factors,
    U = U_l U_r (in x P . P x rank) and V = V_l V_r (rank x P . P x out), purely linear, so
    they can be multiplied out once for inference. Xavier-normal init, as FuxiCTR's APG.
    """

    def __init__(
        self, n_in: int, n_out: int, rank: int, overparam: int | None, share: bool, bias: bool
    ) -> None:
        super().__init__()
        self.overparam = overparam
        if share and overparam:
            self.u_left = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_in, overparam)))
            self.u_right = nn.Parameter(nn.init.xavier_normal_(torch.empty(overparam, rank)))
            self.v_left = nn.Parameter(nn.init.xavier_normal_(torch.empty(rank, overparam)))
            self.v_right = nn.Parameter(nn.init.xavier_normal_(torch.empty(overparam, n_out)))
        elif share:
            self.u_weight = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_in, rank)))
            self.v_weight = nn.Parameter(nn.init.xavier_normal_(torch.empty(rank, n_out)))
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None

    def u(self) -> torch.Tensor:
        return self.u_left @ self.u_right if self.overparam else self.u_weight

    def v(self) -> torch.Tensor:
        return self.v_left @ self.v_right if self.overparam else self.v_weight


def _dwc_lowrank_linear(
    x: torch.Tensor,
    u: torch.Tensor,
    s: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None,
    decompose: bool,
) -> torch.Tensor:
    """y = x U S V (+ bias); S is per sample (B x K x K), U and V static (2-D) or per sample (3-D).

    decompose=True applies the factors in turn and never forms the B x in x out matrix.
    """
    if decompose:
        h = x @ u if u.dim() == 2 else torch.bmm(x.unsqueeze(1), u).squeeze(1)
        h = torch.bmm(h.unsqueeze(1), s).squeeze(1)
        if v.dim() == 2 and bias is not None:
            return torch.addmm(bias, h, v)  # the bias enters the GEMM, not a second pass
        y = h @ v if v.dim() == 2 else torch.bmm(h.unsqueeze(1), v).squeeze(1)
    else:
        weight = torch.matmul(torch.matmul(u, s), v)
        y = torch.bmm(x.unsqueeze(1), weight).squeeze(1)
    return y if bias is None else y + bias
