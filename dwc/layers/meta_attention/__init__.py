"""M2M's meta attention (docs/models.md, 'M2M'): per task, the experts (dwc/layers/experts/) are
scored by a meta unit whose weights a Generator makes from the scenario representation S, and
mixed by softmax over the scores. When S depends on the scenario cell only, fold-scenario-layers
turns it into a ScenarioMetaAttention (`MetaAttention.per_cell_form`) whose per-cell layers
`for_inference()` computes once.

    r1 = meta_attention(e, by = s)
"""

from dwc.layers.kind import Kind
from dwc.layers.meta_attention.lower import SIGNATURE, lower
from dwc.layers.meta_attention.op import MetaAttention, ScenarioMetaAttention
from dwc.layers.meta_attention.torch import (
    emit_meta_attention,
    emit_scenario_meta_attention,
    fold_scenario_meta_attention,
)

KIND = Kind(
    name="meta_attention",
    signatures=(SIGNATURE,),
    lower={"meta_attention": lower},
    ops=(MetaAttention, ScenarioMetaAttention),
    torch={MetaAttention: emit_meta_attention,
           ScenarioMetaAttention: emit_scenario_meta_attention},
    folds={ScenarioMetaAttention: fold_scenario_meta_attention},
    helpers={"meta_attention": "dwc.layers.meta_attention.runtime",
             "scenario_meta_attention": "dwc.layers.meta_attention.runtime_scenario"},
)
