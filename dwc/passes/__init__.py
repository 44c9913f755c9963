"""Middle end: IR passes (APG rewrites, inference folds, fusion, DCE) and the pass manager.

Importing this package registers every pass, the layer kinds' own too (dwc/layers/<kind>/passes.py);
`PIPELINES` and `parse_pipeline` are the entry points.
"""

import importlib as _importlib
import importlib.util as _util
import pkgutil as _pkgutil

from dwc import layers as _layers
from dwc.passes import (  # noqa: F401  (each module registers its pass)
    dce,
    fold_batch_norm,
    fold_scenario_layers,
    fold_scenario_table,
    fuse_generators,
    strip_training,
)
from dwc.passes.base import (
    PASSES,
    PIPELINES,
    Pass,
    PassError,
    PassManager,
    PassRecord,
    PassResult,
    Pipeline,
    parse_pipeline,
    pipeline_for,
)

__all__ = [
    "PASSES", "PIPELINES", "Pass", "PassError", "PassManager", "PassRecord", "PassResult",
    "Pipeline", "parse_pipeline", "pipeline_for",
]

# A layer kind's own passes (dwc/layers/<kind>/passes.py) register themselves when imported.
for _info in _pkgutil.iter_modules(_layers.__path__):
    if _info.ispkg and _util.find_spec(f"dwc.layers.{_info.name}.passes") is not None:
        _importlib.import_module(f"dwc.layers.{_info.name}.passes")
