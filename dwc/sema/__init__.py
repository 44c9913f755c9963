"""Front end, stage 2: semantic analysis and lowering of the AST into IR (`dwc.sema.elaborate`).

The package imports nothing itself: layer kinds (dwc/layers/) use `dwc.sema.params` and
`dwc.sema.values` while the signature table (`dwc.sema.signatures`) is being assembled from them.
"""
