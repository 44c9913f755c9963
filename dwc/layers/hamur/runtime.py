"""HAMUR at run time: inlined into every generated model.py with a hamur cell (the hyper-network
and the adapter cell)."""

import torch
from torch import nn


class _DwcHamurHyperNetwork(nn.Module):
    """HAMUR's hyper-network: (Linear -> BatchNorm -> ReLU) per hidden width, then the same to
    rank x rank numbers per sample, the core H(z) >= 0 every adapter cell reading it applies.

    `norm=False` is the inference form, each batch norm merged into the linear before it
    (`folded`): Linear -> ReLU per layer.
    """

    def __init__(self, n_in: int, hidden: list[int], rank: int, norm: bool = True) -> None:
        super().__init__()
        widths = [n_in, *hidden, rank * rank]
        pairs = list(zip(widths, widths[1:], strict=False))
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for _, b in pairs) if norm else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for i, linear in enumerate(self.linears):
            z = linear(z)
            if self.norms is not None:
                z = self.norms[i](z)
            z = torch.relu(z)
        return z

    def folded(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer i's weight and bias with its batch norm's running statistics and affine merged
        in: BN(x W^T + b) = x (s W)^T + ((b - mean) s + beta), s = gamma / sqrt(var + eps)."""
        linear, norm = self.linears[i], self.norms[i]
        scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
        bias = (linear.bias - norm.running_mean) * scale + norm.bias
        return linear.weight * scale.unsqueeze(1), bias


def _dwc_hamur_map(
    x: torch.Tensor, u: torch.Tensor, core: torch.Tensor, v: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """x U H V + bias with a per-sample core H (B x K x K), applied factor by factor: the
    per-sample matrix U H V (in x out) is never formed."""
    h = torch.bmm((x @ u).unsqueeze(1), core).squeeze(1)
    return torch.addmm(bias, h, v)


class _DwcHamurAdapter(nn.Module):
    """HAMUR's adapter cell: y = h + DN_d(u), with the bottleneck s = sigmoid(h U1 H V1 + b1) and
    u = s U2 H V2 + b2, the core H per sample from the hyper-network.

    U and V start random, scaled so that h U1 H V1 starts with a fan-in layer's variance for
    H = ReLU(BN(.)) (E[H^2] = 1/2): distinct bottleneck units (all-ones factors would keep them
    identical copies). The domain norm DN has one scale and shift and per-domain statistics:
    training normalises each domain's samples by that domain's batch statistics and updates its
    running averages; inference uses the running averages only, so a sample's output never
    depends on the rest of its batch. `folded=True` is the inference form: the domain norm is
    one scale and shift per domain (`norm_scale`, `norm_shift`), which `for_inference()`
    computes from the training form's `norm_scale_shift()`.
    """

    def __init__(
        self,
        width: int,
        bottleneck: int,
        rank: int,
        domains: int,
        momentum: float = 0.1,
        eps: float = 1e-5,
        folded: bool = False,
    ) -> None:
        super().__init__()
        self.domains, self.momentum, self.eps = domains, momentum, eps
        self.u_down = nn.Parameter(torch.randn(width, rank) / width**0.5)
        self.v_down = nn.Parameter(torch.randn(rank, bottleneck) * (2**0.5 / rank))
        self.bias_down = nn.Parameter(torch.zeros(bottleneck))
        self.u_up = nn.Parameter(torch.randn(bottleneck, rank) / bottleneck**0.5)
        self.v_up = nn.Parameter(torch.randn(rank, width) * (2**0.5 / rank))
        self.bias_up = nn.Parameter(torch.zeros(width))
        self.folded = folded
        if folded:
            self.norm_scale = nn.Parameter(torch.ones(domains, width))
            self.norm_shift = nn.Parameter(torch.zeros(domains, width))
            return
        self.norm_weight = nn.Parameter(torch.ones(width))
        self.norm_bias = nn.Parameter(torch.zeros(width))
        self.register_buffer("running_mean", torch.zeros(domains, width))
        self.register_buffer("running_var", torch.ones(domains, width))

    def forward(self, h: torch.Tensor, core: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(_dwc_hamur_map(h, self.u_down, core, self.v_down, self.bias_down))
        u = _dwc_hamur_map(s, self.u_up, core, self.v_up, self.bias_up)
        return h + self.domain_norm(u, domain)

    def norm_scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The domain norm at inference as one scale and shift per domain (domains x width)."""
        scale = self.norm_weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.norm_bias - self.running_mean * scale

    def domain_norm(self, u: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        if self.folded:
            scale, shift = self.norm_scale, self.norm_shift
        elif self.training:
            return self._train_domain_norm(u, domain)
        else:
            scale, shift = self.norm_scale_shift()
        return torch.addcmul(shift.index_select(0, domain), u, scale.index_select(0, domain))

    def _train_domain_norm(self, u: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        """Each domain's samples normalised by that domain's batch statistics, its running
        averages updated."""
        counts = torch.bincount(domain, minlength=self.domains).to(u.dtype).unsqueeze(1)
        total = u.new_zeros(self.domains, u.shape[1])
        mean = total.index_add(0, domain, u) / counts.clamp(min=1)
        centered = u - mean.index_select(0, domain)
        var = total.index_add(0, domain, centered * centered) / counts.clamp(min=1)
        with torch.no_grad():
            m, seen, spread = self.momentum, counts.squeeze(1) > 0, counts.squeeze(1) > 1
            self.running_mean[seen] = (1 - m) * self.running_mean[seen] + m * mean[seen]
            unbiased = var * counts / (counts - 1).clamp(min=1)  # one sample: no variance
            self.running_var[spread] = (1 - m) * self.running_var[spread] + m * unbiased[spread]
        normalised = centered * torch.rsqrt(var + self.eps).index_select(0, domain)
        return normalised * self.norm_weight + self.norm_bias
