"""Front end, stage 1: .dw text -> AST (frozen dataclasses with spans) or syntax diagnostics."""

from dwc.parse.ast import KEYWORDS
from dwc.parse.parser import parse

__all__ = ["KEYWORDS", "parse"]
