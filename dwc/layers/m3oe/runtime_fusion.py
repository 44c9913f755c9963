"""M3oE's two-level fusion at run time (its training form and its folded inference form):
inlined into every generated model.py with an m3oe layer."""

import torch
from torch import nn


def _dwc_m3oe_fuse(
    experts: torch.Tensor,
    gates: torch.Tensor,
    domain: torch.Tensor,
    coefficients: torch.Tensor,
    shared: int,
    domains: int,
    tasks: int,
) -> torch.Tensor:
    """f_t for every task t at each sample's own domain d, B x T x H, from the B x (E + D + T)
    x H experts (shared, domain, task) and the B x T*E gate logits of the sample's domain:

        f_t = sum_k softmax(g_t)_k S_k + c0 D_d + c1 sum_j D_j + c2 T_t + c3 sum_j T_j

    `coefficients` = (c0, c1, c2, c3), the fusion weights folded (`_DwcM3oEFusion`)."""
    width = experts.shape[2]
    shared_experts, domain_experts, task_experts = experts.split([shared, domains, tasks], dim=1)
    weights = torch.softmax(gates.reshape(-1, tasks, shared), dim=2)
    fused = torch.bmm(weights, shared_experts)
    own = domain_experts.gather(1, domain.view(-1, 1, 1).expand(-1, 1, width))
    c = coefficients
    fused = fused + (c[0] * own + c[1] * domain_experts.sum(dim=1, keepdim=True))
    return fused + (c[2] * task_experts + c[3] * task_experts.sum(dim=1, keepdim=True))


class _DwcM3oEFusion(nn.Module):
    """M3oE's two-level fusion with its four trained scalars, each used through a sigmoid:

        f_t = sum_k g_{t,k} S_k + s(a_D) u_d + s(a_T) v_t
        u_d = s(b_D) D_d + (1 - s(b_D)) / (D - 1) sum_{j != d} D_j   (v_t alike over tasks)

    All four start at 1 (so s = 0.731). With one domain (or task) the sum over the others is
    empty and counts zero."""

    def __init__(self, shared: int, domains: int, tasks: int) -> None:
        super().__init__()
        self.shared, self.domains, self.tasks = shared, domains, tasks
        self.alpha_domain = nn.Parameter(torch.tensor(1.0))
        self.alpha_task = nn.Parameter(torch.tensor(1.0))
        self.beta_domain = nn.Parameter(torch.tensor(1.0))
        self.beta_task = nn.Parameter(torch.tensor(1.0))

    def coefficients(self) -> torch.Tensor:
        """(c0, c1, c2, c3) of `_dwc_m3oe_fuse`: the mean over the others, (1 - s(b)) / (n - 1)
        times (all - own), moves into the own and the all terms."""
        weight_d, weight_t = torch.sigmoid(self.alpha_domain), torch.sigmoid(self.alpha_task)
        own_d, own_t = torch.sigmoid(self.beta_domain), torch.sigmoid(self.beta_task)
        others_d = weight_d * (1 - own_d) / (self.domains - 1) if self.domains > 1 else 0 * own_d
        others_t = weight_t * (1 - own_t) / (self.tasks - 1) if self.tasks > 1 else 0 * own_t
        return torch.stack(
            [weight_d * own_d - others_d, others_d, weight_t * own_t - others_t, others_t]
        )

    def forward(
        self, experts: torch.Tensor, gates: torch.Tensor, domain: torch.Tensor
    ) -> torch.Tensor:
        c = self.coefficients()
        return _dwc_m3oe_fuse(experts, gates, domain, c, self.shared, self.domains, self.tasks)


class _DwcM3oEFoldedFusion(nn.Module):
    """M3oE's fusion for inference: the four fusion factors are constants (`coefficients`,
    computed once by `for_inference()` from the training scalars)."""

    def __init__(self, shared: int, domains: int, tasks: int) -> None:
        super().__init__()
        self.shared, self.domains, self.tasks = shared, domains, tasks
        self.register_buffer("coefficients", torch.zeros(4))

    def forward(
        self, experts: torch.Tensor, gates: torch.Tensor, domain: torch.Tensor
    ) -> torch.Tensor:
        c = self.coefficients
        return _dwc_m3oe_fuse(experts, gates, domain, c, self.shared, self.domains, self.tasks)
