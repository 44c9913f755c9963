"""HMoE (hybrid of implicit and explicit mixture-of-experts, multi-scenario learning to rank):
MMoE's shared experts (dwc/layers/experts/) with a gate, tower and head per scenario, the heads
fused by weights read from the input, the other scenarios' paths behind a stop-gradient. The
value is the logit of each sample's own scenario head; only that head's fusion net runs.

    y = hmoe(x, by = scenario, experts = 4, expert = [256, 128], fuse = label)
"""

from dwc.layers.hmoe.codes import CODES
from dwc.layers.hmoe.lint import HmoeManyScenarios, HmoeSingleExpert
from dwc.layers.hmoe.lower import SIGNATURE, lower
from dwc.layers.hmoe.op import Hmoe
from dwc.layers.hmoe.torch import emit
from dwc.layers.kind import Kind

KIND = Kind(
    name="hmoe",
    signatures=(SIGNATURE,),
    lower={"hmoe": lower},
    ops=(Hmoe,),
    torch={Hmoe: emit},
    helpers={"hmoe": "dwc.layers.hmoe.runtime"},
    codes=CODES,
    lint_rules=(HmoeManyScenarios, HmoeSingleExpert),
)
