"""MMoE's shared experts and gate mixtures: `count` expert MLPs on one input (a value of kind
experts, B x E x H), and per task a softmax gate that mixes them. M2M's meta attention
(dwc/layers/meta_attention/) reads the same experts values.

    e = experts(x, 4, [64, 32])
    t1 = mix(e, x)
"""

from dwc.layers.experts.lower import EXPERTS, MIX, lower_experts, lower_mix
from dwc.layers.experts.op import Experts, Mix
from dwc.layers.experts.torch import emit_experts, emit_mix
from dwc.layers.kind import Kind

KIND = Kind(
    name="experts",
    signatures=(EXPERTS, MIX),
    lower={"experts": lower_experts, "mix": lower_mix},
    ops=(Experts, Mix),
    torch={Experts: emit_experts, Mix: emit_mix},
    helpers={"experts": "dwc.layers.experts.runtime", "mix": "dwc.layers.experts.runtime_mix"},
)
