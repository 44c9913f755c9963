"""dwc, the Dynamic Weight Compiler.

Compiles `.dw` specs of multi-scenario recommendation models (dynamic-weight layers conditioned on
scenario-sensitive features) into standalone PyTorch modules, with a cost model and coded
diagnostics. The pipeline is parse -> sema -> lower (IR) -> passes -> backends; see
docs/architecture.md. Importing dwc is cheap: nothing here imports torch.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "compile_source", "check_source", "CompileResult"]


def __getattr__(name: str):  # lazy public API keeps `import dwc` (and the CLI start-up) fast
    if name in ("compile_source", "check_source", "CompileResult"):
        from dwc import driver

        return getattr(driver, name)
    raise AttributeError(f"module 'dwc' has no attribute {name!r}")
