"""Activations the generated layers call: in-place and out-of-place forms, and tanh computed
through sigmoid on large eager CPU tensors.

Inlined into every generated model.py that needs it (dwc/backends/torch/inline.py)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dwc.backends.torch.helpers.static import _dwc_is_static


def _dwc_activation(x: torch.Tensor, name: str) -> torch.Tensor:
    """The activation functions a spec can name."""
    if name == "relu":
        return torch.relu(x)
    if name == "tanh":
        return _dwc_tanh(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "gelu":
        return F.gelu(x)
    if name == "leaky_relu":
        return F.leaky_relu(x, 0.01)
    if name == "silu":
        return F.silu(x)
    return x


def _dwc_activation_(x: torch.Tensor, name: str) -> torch.Tensor:
    """_dwc_activation in place where autograd allows it, for a fresh tensor nothing else reads
    (the activation saves its output, the layer that made x does not): no B x width allocation."""
    if name == "relu":
        return torch.relu_(x)
    if name == "tanh":
        return _dwc_tanh_(x)
    if name == "sigmoid":
        return torch.sigmoid_(x)
    if name == "leaky_relu":
        return F.leaky_relu_(x, 0.01)
    return _dwc_activation(x, name)


def _dwc_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh. Eager on CPU from 8K elements as 2 sigmoid(2x) - 1 (within 2e-7 of tanh): PyTorch's
    CPU tanh kernel runs about 9x slower than its sigmoid (torch 2.13, measured on x86), which
    outweighs the extra passes. Traced, exported, small or on an accelerator: torch.tanh."""
    if not _dwc_tanh_by_sigmoid(x):
        return torch.tanh(x)
    return _dwc_tanh_from_sigmoid(torch.sigmoid_(x * 2.0))


def _dwc_tanh_(x: torch.Tensor) -> torch.Tensor:
    """_dwc_tanh in place, for a fresh tensor nothing else reads."""
    if not _dwc_tanh_by_sigmoid(x):
        return torch.tanh_(x)
    return _dwc_tanh_from_sigmoid(torch.sigmoid_(x.mul_(2.0)))


def _dwc_tanh_by_sigmoid(x: torch.Tensor) -> bool:
    """Whether tanh(x) is computed as 2 sigmoid(2x) - 1: eager, on CPU, from 8K elements. The
    static check comes first, so exported graphs carry no guard on the batch size."""
    return not _dwc_is_static() and x.device.type == "cpu" and x.numel() >= 8192


def _dwc_tanh_from_sigmoid(y: torch.Tensor) -> torch.Tensor:
    """2 y - 1 for y = sigmoid(2x); sigmoid's backward reads y, so with autograd on a copy."""
    return (y.mul(2.0) if torch.is_grad_enabled() else y.mul_(2.0)).sub_(1.0)


class _DwcTanh(nn.Module):
    """nn.Tanh through _dwc_tanh (generator hidden layers are an nn.Sequential)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _dwc_tanh(x)
