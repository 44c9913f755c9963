"""The PyTorch backend: IR -> view model -> Jinja2 templates -> one standalone model.py."""

from dwc.backends.torch.emit import GeneratedModule, generate

__all__ = ["GeneratedModule", "generate"]
