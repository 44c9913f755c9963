"""AdaSparse (CIKM 2022): an FCN whose units each domain prunes. Every layer's activations (and
the input) are multiplied by domain-aware factors pi = P_l(e), exactly 0 for a pruned unit, with
binarization, scaling or fusion pruners, an annealed slope alpha kept with the weights, and an
optional sparsity regulariser added to the training loss (`dwc_auxiliary_loss`).

    condition e = concat(domain)
    h = adasparse(x, [64, 32], by = e)

fold-scenario-table turns a pruner whose condition depends on the scenario cell alone into a
ScenarioPruner (the op type is the marker): a per-cell table of its factors, or, for a pruner that
also reads the activations, of the condition's share of its scores.
"""

from dwc.layers.adasparse.codes import CODES
from dwc.layers.adasparse.lint import AdasparseConditionNotPerDomain, AdasparsePrunerReadsActivations
from dwc.layers.adasparse.lower import SIGNATURE, lower
from dwc.layers.adasparse.op import AdaSparsePruner, ScenarioPruner
from dwc.layers.adasparse.torch import emit_pruner, emit_scenario_pruner, fold_scenario_pruner
from dwc.layers.kind import Kind

KIND = Kind(
    name="adasparse",
    signatures=(SIGNATURE,),
    lower={"adasparse": lower},
    ops=(AdaSparsePruner, ScenarioPruner),
    torch={AdaSparsePruner: emit_pruner, ScenarioPruner: emit_scenario_pruner},
    folds={ScenarioPruner: fold_scenario_pruner},
    helpers={"adasparse": "dwc.layers.adasparse.runtime"},
    codes=CODES,
    lint_rules=(AdasparseConditionNotPerDomain, AdasparsePrunerReadsActivations),
)
