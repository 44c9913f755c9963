"""M3oE (multi-domain multi-task mixture of experts): a STAR slot plus a skip path make the
shared representation h; E shared, D domain and T task expert MLPs read it; per (domain, task)
a gate over the shared experts reads stop_gradient(h), a two-level fusion adds the domain and
task experts with trained weights, and a tower makes the logit. The value is the sample's own
domain's T task logits; `slice` takes one per output.

    m = m3oe(x, by = scenario, tasks = 2, widths = [512, 256, 256, 64], experts = 4)
    output click = sigmoid(slice(m, 0)) loss = bce

For inference, fold-star merges the slot per domain (it is a StarLinear) and fold-m3oe
(passes.py) turns the fusion weights into constants (a FoldedM3oEFusion).
"""

from dwc.layers.kind import Kind
from dwc.layers.m3oe.codes import CODES
from dwc.layers.m3oe.lint import M3oESingleDomain, M3oESingleTask
from dwc.layers.m3oe.lower import SIGNATURE, lower
from dwc.layers.m3oe.op import FoldedM3oEFusion, M3oEFusion, M3oESlot, M3oETowers, NormExperts
from dwc.layers.m3oe.torch import (
    emit_experts,
    emit_folded_fusion,
    emit_fusion,
    emit_slot,
    emit_towers,
    fold_fusion,
)

KIND = Kind(
    name="m3oe",
    signatures=(SIGNATURE,),
    lower={"m3oe": lower},
    ops=(M3oESlot, NormExperts, M3oEFusion, FoldedM3oEFusion, M3oETowers),
    torch={M3oESlot: emit_slot, NormExperts: emit_experts, M3oEFusion: emit_fusion,
           FoldedM3oEFusion: emit_folded_fusion, M3oETowers: emit_towers},
    folds={FoldedM3oEFusion: fold_fusion},
    helpers={"m3oe": "dwc.layers.m3oe.runtime", "norm_experts": "dwc.layers.m3oe.runtime_experts",
             "m3oe_fusion": "dwc.layers.m3oe.runtime_fusion",
             "m3oe_towers": "dwc.layers.m3oe.runtime_towers"},
    codes=CODES,
    lint_rules=(M3oESingleTask, M3oESingleDomain),
)
