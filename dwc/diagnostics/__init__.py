"""Diagnostics: the coded messages every stage reports instead of raising (see codes.py)."""

from dwc.diagnostics.codes import CODES, Code, Severity
from dwc.diagnostics.model import Diagnostic, DiagnosticError, Edit, Fix, Label, did_you_mean
from dwc.diagnostics.render import render_json, render_text

__all__ = [
    "CODES",
    "Code",
    "Diagnostic",
    "DiagnosticError",
    "Edit",
    "Fix",
    "Label",
    "Severity",
    "did_you_mean",
    "render_json",
    "render_text",
]
