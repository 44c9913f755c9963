"""HAMUR (hyper adapter for multi-domain recommendation): an adapter cell on a hidden value h whose
down and up maps are U H(z) V, the K x K core H generated per sample by a hyper-network on the
condition z and applied factor by factor, then a domain norm with per-domain statistics and a
residual.

    core = hamur_hypernet(by = z, rank = 16, hidden = [64])
    a = hamur(h, by = core, domain = scenario, bottleneck = 32)

Inference folds: fold-hamur-hypernet (passes.py) merges the hyper-network's batch norms into its
linears, and fold-hamur-domain-norm an adapter's domain norm into one scale and shift per
domain; when z reads scenario features only, fold-scenario-table makes H a per-cell table and
fold-scenario-layers multiplies each cell's maps out (`HamurAdapter.per_cell_form`) where that
costs fewer FLOPs than the factors.
"""

from dwc.layers.hamur.codes import CODES
from dwc.layers.hamur.lint import HamurCoreLargerThanMap, HamurRankNotLow
from dwc.layers.hamur.lower import HAMUR, HAMUR_HYPERNET, lower_hamur, lower_hamur_hypernet
from dwc.layers.hamur.op import (
    FoldedHamurAdapter,
    FoldedHamurHyperNetwork,
    HamurAdapter,
    HamurHyperNetwork,
    ScenarioHamurAdapter,
)
from dwc.layers.hamur.torch import (
    emit_adapter,
    emit_hypernet,
    emit_scenario_adapter,
    fold_adapter,
    fold_hypernet,
    fold_scenario_adapter,
)
from dwc.layers.kind import Kind

KIND = Kind(
    name="hamur",
    signatures=(HAMUR_HYPERNET, HAMUR),
    lower={"hamur_hypernet": lower_hamur_hypernet, "hamur": lower_hamur},
    ops=(HamurHyperNetwork, FoldedHamurHyperNetwork, HamurAdapter, FoldedHamurAdapter,
         ScenarioHamurAdapter),
    torch={HamurHyperNetwork: emit_hypernet, FoldedHamurHyperNetwork: emit_hypernet,
           HamurAdapter: emit_adapter, FoldedHamurAdapter: emit_adapter,
           ScenarioHamurAdapter: emit_scenario_adapter},
    folds={FoldedHamurHyperNetwork: fold_hypernet, FoldedHamurAdapter: fold_adapter,
           ScenarioHamurAdapter: fold_scenario_adapter},
    helpers={"hamur": "dwc.layers.hamur.runtime",
             "scenario_hamur": "dwc.layers.hamur.runtime_scenario"},
    codes=CODES,
    lint_rules=(HamurRankNotLow, HamurCoreLargerThanMap),
)
