"""POSO (personalised cold-start modules): hidden units scaled by gates on a personalisation code
pc of user-group features, `g(pc) = gamma * sigmoid(relu(pc W1 + b1) W2 + b2)` in (0, gamma), on
every layer of an MLP (POSO-MLP) or on every expert of an MMoE (POSO(MMoE)).

    h = poso(x, [64, 32], by = pc)
    e = poso_experts(x, 4, [64, 32], by = pc)

A `poso` stack lowers to Linear ops and the gate kind's Gate NUs, so fuse-gates runs the first
layers of its gates as one GEMM and fold-scenario-table serves the gates of a pc that reads only
scenario features from a per-cell table. `poso_experts` adds the ExpertGates op, whose
per-cell form is a ScenarioExpertGates. fold-scenario-gates (passes.py) multiplies a per-cell gate
table into the per-cell linear layer it feeds (a GatedIndexedLinear). The folded forms' types are
the markers of their `for_inference()` folds.
"""

from dwc.layers.kind import Kind
from dwc.layers.poso.codes import CODES
from dwc.layers.poso.lint import PosoCodeOnHugeVocabulary, PosoGateCannotAmplify
from dwc.layers.poso.lower import POSO, POSO_EXPERTS, lower_poso, lower_poso_experts
from dwc.layers.poso.op import ExpertGates, GatedIndexedLinear, ScenarioExpertGates
from dwc.layers.poso.torch import (
    emit_expert_gates,
    emit_gated_indexed_linear,
    emit_scenario_expert_gates,
    fold_gated_indexed_linear,
    fold_scenario_expert_gates,
)

KIND = Kind(
    name="poso",
    signatures=(POSO, POSO_EXPERTS),
    lower={"poso": lower_poso, "poso_experts": lower_poso_experts},
    ops=(ExpertGates, ScenarioExpertGates, GatedIndexedLinear),
    torch={ExpertGates: emit_expert_gates, ScenarioExpertGates: emit_scenario_expert_gates,
           GatedIndexedLinear: emit_gated_indexed_linear},
    folds={ScenarioExpertGates: fold_scenario_expert_gates,
           GatedIndexedLinear: fold_gated_indexed_linear},
    helpers={"poso": "dwc.layers.poso.runtime"},
    codes=CODES,
    lint_rules=(PosoCodeOnHugeVocabulary, PosoGateCannotAmplify),
)
