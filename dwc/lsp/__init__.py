"""The language server (`dwc lsp`): diagnostics, hover, completion, navigation, formatting and
quick fixes for .dw specs in any LSP editor (docs/editors.md). analysis.py computes with the
compiler's stages; server.py speaks the protocol through pygls; text.py holds positions and
the token scan used when a spec does not parse."""
