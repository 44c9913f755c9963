"""`dwc lint`: rules over the AST, the IR and the cost model (never imports torch)."""

from dwc.lint.rules import RULES
from dwc.lint.runner import LintConfig, lint_source

__all__ = ["RULES", "LintConfig", "lint_source"]
