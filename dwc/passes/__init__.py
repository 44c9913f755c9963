"""Middle end: IR passes (APG rewrites, inference folds, fusion, DCE) and the pass manager.

Importing this package registers every pass, the layer kinds' own too (dwc/layers/<kind>/passes.py);
`PIPELINES` and `parse_pipeline` are the entry points.
"""

from dwc.layers.apg import passes as apg  # noqa: F401  (registers APG's passes)
from dwc.layers.gate import passes as gate_passes  # noqa: F401  (fuse-gates)
from dwc.passes import (  # noqa: F401  (each module registers its pass)
    dce,
    fold_scenario_layers,
    fold_scenario_table,
)

# isort: split
from dwc.layers.star import passes as star_passes  # noqa: F401  (fold-star, where it registered)

# isort: split
from dwc.passes import fuse_generators, strip_training  # noqa: F401
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
