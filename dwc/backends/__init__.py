"""Backends: turn (passed) IR into artifacts. `torch` emits a standalone PyTorch module."""
