"""Front end, stage 2: semantic analysis and lowering of the AST into IR (see elaborate.py)."""

from dwc.sema.elaborate import elaborate

__all__ = ["elaborate"]
