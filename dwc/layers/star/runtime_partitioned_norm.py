"""STAR's partitioned normalisation at run time: inlined into every generated model.py with a
partitioned_norm layer."""

import torch
from torch import nn


class _DwcPartitionedNorm(nn.Module):
    """STAR's partitioned normalisation: per-domain statistics, shared x domain scale, shared +
    domain shift. Training normalises each domain's samples with that domain's batch statistics
    and updates its running averages; inference uses the running averages only, so a sample's
    output never depends on the rest of its batch.
    """

    dwc_scenario_parameters = ("domain_weight", "domain_bias")  # `dwc train --two-stage`

    def __init__(self, width: int, domains: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.domains, self.momentum, self.eps = domains, momentum, eps
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.domain_weight = nn.Parameter(torch.ones(domains, width))
        self.domain_bias = nn.Parameter(torch.zeros(domains, width))
        self.register_buffer("running_mean", torch.zeros(domains, width))
        self.register_buffer("running_var", torch.ones(domains, width))

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalisation at inference as one scale and shift per domain (domains x width):
        the running statistics and both affines merged, x s[d] + t[d] with
        s = w * w_d / sqrt(var_d + eps) and t = b + b_d - mean_d s."""
        scale = (self.weight * self.domain_weight) * torch.rsqrt(self.running_var + self.eps)
        return scale, (self.bias + self.domain_bias) - self.running_mean * scale

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        if not self.training:
            # two gathers and one fused multiply-add per sample (the inference form,
            # _DwcDomainAffine, holds the scale and shift; this eval forward derives them)
            scale, shift = self.scale_shift()
            return torch.addcmul(shift.index_select(0, domain), x, scale.index_select(0, domain))
        counts = torch.bincount(domain, minlength=self.domains).to(x.dtype).unsqueeze(1)
        total = torch.zeros(self.domains, x.shape[1], dtype=x.dtype, device=x.device)
        mean = total.index_add(0, domain, x) / counts.clamp(min=1)
        centered = x - mean.index_select(0, domain)
        var = total.index_add(0, domain, centered * centered) / counts.clamp(min=1)
        with torch.no_grad():
            present = counts.squeeze(1) > 0
            unbiased = var * counts / (counts - 1).clamp(min=1)
            m = self.momentum
            self.running_mean[present] = (1 - m) * self.running_mean[present] + m * mean[present]
            self.running_var[present] = (1 - m) * self.running_var[present] + m * unbiased[present]
        normalised = centered / torch.sqrt(var.index_select(0, domain) + self.eps)
        scale = self.weight * self.domain_weight.index_select(0, domain)
        return normalised * scale + (self.bias + self.domain_bias.index_select(0, domain))


class _DwcDomainAffine(nn.Module):
    """A partitioned normalisation folded for inference: `x * scale[d] + shift[d]`, the scale
    and shift per domain computed once by `for_inference()` (`_DwcPartitionedNorm.scale_shift`)."""

    def __init__(self, width: int, domains: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(domains, width))
        self.shift = nn.Parameter(torch.zeros(domains, width))

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        shift, scale = self.shift.index_select(0, domain), self.scale.index_select(0, domain)
        return torch.addcmul(shift, x, scale)
