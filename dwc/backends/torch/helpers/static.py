"""Whether the forward is being traced or compiled (the helpers' static paths).

Inlined into every generated model.py that needs it (dwc/backends/torch/inline.py)."""

from __future__ import annotations

import torch


def _dwc_is_static() -> bool:
    """Whether the forward is being traced or compiled (torch.export, ONNX, torch.compile): the
    helpers then take their static paths, free of data-dependent Python control flow."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()
