"""AdaSparse's neuron pruners at run time: inlined into every generated model.py that has an
adasparse network."""

import torch
from torch import nn


class _DwcAdaSparsePruner(nn.Module):
    """AdaSparse's domain-aware pruner: x * pi, one factor per unit, exactly 0 for a pruned unit.

    Scores s = z W_e (the domain condition only: one sparse structure per domain), or, with
    `hidden`, s = [z ; v] [W_e ; W_v] = z W_e + v W_v (also the activations v being gated, as the
    public port). With a = alpha s (binarization, fusion) or s (scaling) and the threshold test
    written in logit space, m = a - logit(eps) (binarization) or a - logit(eps / beta), a unit is
    kept where m > 0:
        binarization  pi = 1[sigmoid(alpha s) > eps]
        scaling       pi = q 1[q > eps],  q = beta sigmoid(s)
        fusion        pi = q 1[q > eps],  q = beta sigmoid(alpha s)
    The hard step gets a straight-through gradient: its backward is that of sigmoid(m), the
    annealed sigmoid centred on the threshold, which sharpens as alpha grows; its forward stays
    exactly 0 or 1. alpha is a buffer (saved with the weights), advanced by `alpha_step` after
    every training forward and never in eval.

    With `sparsity_weight` > 0 a training forward records the auxiliary loss
    sparsity_weight * |(1 - mean(sigmoid(m))) - sparsity|: the soft pruned fraction of the batch's
    units against the target, which `dwc_auxiliary_loss()` returns (and the model's `loss()`
    adds); it is 0 in eval.
    """

    def __init__(
        self,
        n_in: int,
        width: int,
        pruner: str = "fusion",
        eps: float = 0.01,
        beta: float = 2.0,
        alpha: float = 1.0,
        alpha_step: float = 1e-4,
        hidden: bool = False,
        sparsity: float = 0.0,
        sparsity_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.pruner, self.beta, self.alpha_step = pruner, beta, alpha_step
        self.sparsity, self.sparsity_weight = sparsity, sparsity_weight
        kept = eps if pruner == "binarization" else eps / beta
        self.threshold = float(torch.logit(torch.tensor(kept, dtype=torch.float64)))
        # PyTorch's default init of one bias-free nn.Linear(n_in [+ width], width), split in two
        bound = (n_in + (width if hidden else 0)) ** -0.5
        self.domain_weight = nn.Parameter(torch.empty(n_in, width).uniform_(-bound, bound))
        self.hidden_weight = (
            nn.Parameter(torch.empty(width, width).uniform_(-bound, bound)) if hidden else None
        )
        self.register_buffer("alpha", torch.tensor(float(alpha)))
        self._auxiliary: torch.Tensor | None = None

    def domain_scores(self, z: torch.Tensor) -> torch.Tensor:
        """The condition's share of the scores, z W_e."""
        return z @ self.domain_weight

    def factors(self, z: torch.Tensor, v: torch.Tensor | None = None) -> torch.Tensor:
        """pi for condition z (and activations v): what the layer multiplies by."""
        return self._factors(self.domain_scores(z), v)[0]

    def _factors(
        self, scores: torch.Tensor, v: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(pi, sigmoid(m) when a gradient or the regulariser needs it) for the domain scores."""
        s = scores if v is None else torch.addmm(scores, v, self.hidden_weight)
        if not (torch.is_grad_enabled() or (self.training and self.sparsity_weight > 0)):
            # serving: no soft step; the scores are fresh, so everything is updated in place
            # and the pruned units are filled with 0 (no bool -> float conversion of a mask)
            a = s if self.pruner == "scaling" else s.mul_(self.alpha)
            pruned = a <= self.threshold
            if self.pruner == "binarization":
                return torch.ones_like(a).masked_fill_(pruned, 0.0), None
            return torch.sigmoid(a).mul_(self.beta).masked_fill_(pruned, 0.0), None
        a = s if self.pruner == "scaling" else s * self.alpha
        margin = a - self.threshold
        soft = torch.sigmoid(margin)
        keep = soft + ((margin > 0).to(s.dtype) - soft).detach()  # exactly 0 or 1; sigmoid' back
        if self.pruner == "binarization":
            return keep, soft
        return self.beta * torch.sigmoid(a) * keep, soft

    def forward(
        self, x: torch.Tensor, z: torch.Tensor, v: torch.Tensor | None = None
    ) -> torch.Tensor:
        pi, soft = self._factors(self.domain_scores(z), v)
        if self.training:
            if self.sparsity_weight > 0:
                pruned = 1.0 - soft.mean()
                self._auxiliary = self.sparsity_weight * (pruned - self.sparsity).abs()
            with torch.no_grad():  # a new tensor, not in place: autograd saved the old alpha
                self.alpha = self.alpha + self.alpha_step
        return x * pi if torch.is_grad_enabled() else pi.mul_(x)

    def dwc_auxiliary_loss(self) -> torch.Tensor:
        """The sparsity regulariser of the last training forward (0 in eval or when off)."""
        if self.training and self._auxiliary is not None:
            return self._auxiliary
        return self.alpha.new_zeros(())


class _DwcAdaSparseCellPruner(_DwcAdaSparsePruner):
    """Inference form of a pruner that reads the activations and a condition of the scenario
    cell alone: the condition's share of the scores is a per-cell table, C[c] = z_c W_e
    (`domain_weight`, cells x width), so s = C[c] + v W_v; the rest as the training pruner (its
    alpha frozen at its value when folded)."""

    def __init__(
        self,
        cells: int,
        width: int,
        pruner: str = "fusion",
        eps: float = 0.01,
        beta: float = 2.0,
    ) -> None:
        super().__init__(cells, width, pruner, eps, beta, hidden=True)

    def domain_scores(self, z: torch.Tensor) -> torch.Tensor:
        return self.domain_weight.index_select(0, z)
